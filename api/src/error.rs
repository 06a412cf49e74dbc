//! The crate's error type.

/// Errors raised by the contracts crate (decoding and the bus).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `FlowBatch` could not be decoded.
    #[error("cannot decode flow batch on subject {subject} ({len} bytes)")]
    Decode {
        /// Subject the payload arrived on.
        subject: String,
        /// Payload length.
        len: usize,
        /// What prost said.
        #[source]
        source: prost::DecodeError,
    },
    /// Connecting to NATS failed.
    #[error("cannot connect to NATS at {url}")]
    Connect {
        /// The server URL (credentials are never part of it in our configs).
        url: String,
        /// What async-nats said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// Publishing on the bus failed.
    #[error("cannot publish on {subject}: {reason}")]
    Publish {
        /// Target subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Subscribing on the bus failed.
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe {
        /// Subject or pattern.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Flushing the bus failed.
    #[error("cannot flush the bus: {0}")]
    Flush(String),
    /// A key-value bucket operation failed.
    #[error("KV bucket {bucket}: {reason}")]
    Kv {
        /// The bucket.
        bucket: String,
        /// What failed, and why.
        reason: String,
    },
    /// The bus was closed.
    #[error("the bus is closed")]
    Closed,
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
