//! The crate's error type.

use std::net::SocketAddr;

/// Errors raised by the engine library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus (NATS or in-process) failed.
    #[error("bus error")]
    Bus(#[from] netwarden_api::Error),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The sensor pipeline (standalone mode) failed.
    #[error("sensor pipeline failed")]
    Sensor(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing the report failed.
    #[error("cannot write the report")]
    Report(#[source] std::io::Error),
    /// The configuration (`--config DIR`) is invalid.
    #[error("invalid configuration")]
    Config(#[source] crate::exclusions::LoadError),
    /// Encoding the JSON report failed.
    #[error("cannot encode the JSON report")]
    ReportJson(#[source] serde_json::Error),
    /// The persistent store (`--data DIR`) could not be opened.
    #[error("persistent store")]
    Store(#[source] crate::store::db::StoreError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
