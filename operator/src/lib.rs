//! Netwarden operator: reconciles the `netwarden.io` CRDs (`AlertExclusion`,
//! `NotificationEndpoint`, `InterfacePolicy`, `ServicePolicy`) into validated configuration
//! in the NATS KV bucket `nw-config`, and folds `nw-status` back into each CR's status.
//!
//! * [`crdgen`]: the generated CRD YAML (`crds/`).
//! * [`controller`]: the reconcilers (kube-rs runtime `Controller`, one per kind): validate →
//!   publish → fold status → server-side apply the status → events; a finalizer removes the
//!   KV entry on delete.
//! * [`desired`]: pure functions from an object and the reports to its KV entry and status.
//! * [`leader`]: leader election with a `coordination.k8s.io` Lease (two replicas can run).
//! * [`telemetry`]: `/metrics` (reconcile counts, errors, durations), `/healthz`, `/readyz`.
//! * [`store`]: the KV side (`nw-config` writes, `nw-status` reads) over async-nats or in memory.
//!
//! * [`directory`]: the `nw-directory` publisher (IP → Pod/Service/Node identity from one
//!   watch per kind) and the reporters each CR is expected to be applied by.

pub mod controller;
pub mod crdgen;
pub mod desired;
pub mod directory;
pub mod leader;
pub mod store;
pub mod telemetry;

pub use netwarden_api::crd::{GROUP, KINDS, VERSION};

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    /// Adding or removing the finalizer, or the reconcile behind it, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The KV store could not be read or written.
    #[error("KV {bucket}: {reason}")]
    Kv {
        /// The bucket.
        bucket: &'static str,
        /// What failed.
        reason: String,
    },
    /// Serialising YAML or JSON failed.
    #[error("cannot serialise: {0}")]
    Yaml(String),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The object has no name or namespace where one is required.
    #[error("object without {0}")]
    MissingMeta(&'static str),
}

/// Result alias of the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The field manager of the operator's server-side applies, and its event reporter name.
pub const MANAGER: &str = "netwarden-operator";

/// The finalizer the operator puts on every object it published.
pub const FINALIZER: &str = "netwarden.io/config-cleanup";
