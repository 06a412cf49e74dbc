//! The Netwarden CRD kinds (group `netwarden.io`, version `v1alpha1`, DESIGN.md section 8).
//!
//! Contracts only: the types, their schemas (doc comments become the CRD descriptions, CEL
//! rules travel as `x-kubernetes-validations`), the pure validation functions that mirror the
//! CEL rules (defence in depth and clear messages), and the shapes of the `nw-config` and
//! `nw-status` KV entries. Reconciling lives in the operator; applying lives in the sensor and
//! the engine. Nothing here does I/O.
//!
//! * [`AlertExclusion`] (namespaced): hosts, pairs, pods, domains or issuers excluded from alerts.
//! * [`NotificationEndpoint`] (namespaced): where alerts go; the target comes from a Secret.
//! * [`InterfacePolicy`] (cluster-scoped): what the sensors capture and collect on which nodes.
//! * [`ServicePolicy`] (namespaced): allowed and denied service-map edges, learning period.

mod alert_exclusion;
mod entry;
mod interface_policy;
mod notification_endpoint;
pub mod selector;
mod service_policy;
mod status;
pub mod validate;

pub use alert_exclusion::{
    AlertExclusion, AlertExclusionSpec, ExclusionScope, HostMatcher, HostSide, PairMatcher,
};
pub use entry::{
    CLUSTER_NAMESPACE, ConfigEntry, ConfigKind, ParsedConfigKey, StatusReport, config_key,
    entry_from_manifest, parse_config_key, parse_status_key, status_key,
};
pub use interface_policy::{
    FlowListener, FlowProtocol, InterfacePolicy, InterfacePolicySpec, Interfaces,
};
pub use notification_endpoint::{
    Batching, EndpointType, NotificationEndpoint, NotificationEndpointSpec, NotificationFilters,
    RateLimit, SecretKeyRef, Severity,
};
pub use selector::selector_matches;
pub use service_policy::{
    PortMatch, Protocol, ServicePolicy, ServicePolicySpec, ServiceRule, ServiceRuleAction,
};
pub use status::{ConfigStatus, NodeError, condition_types, reasons};
pub use validate::{FieldError, Validate};

/// The CRD group every Netwarden kind lives in.
pub const GROUP: &str = "netwarden.io";
/// The served (and stored) version of every kind.
pub const VERSION: &str = "v1alpha1";
/// The kinds, in the order the docs list them.
pub const KINDS: [&str; 4] = [
    "AlertExclusion",
    "NotificationEndpoint",
    "InterfacePolicy",
    "ServicePolicy",
];

/// The CustomResourceDefinition of every kind, in [`KINDS`] order (what `crdgen` writes).
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        AlertExclusion::crd(),
        NotificationEndpoint::crd(),
        InterfacePolicy::crd(),
        ServicePolicy::crd(),
    ]
}
