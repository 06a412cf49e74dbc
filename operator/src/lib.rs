//! Netwarden operator: reconciles the `netwarden.io` CRDs (`AlertExclusion`,
//! `NotificationEndpoint`, `InterfacePolicy`, `ServicePolicy`) into validated configuration
//! in the NATS KV bucket `nw-config`, and folds `nw-status` back into each CR's status.
//!
//! This crate is a skeleton for now: the CRD types, reconcilers, config and directory
//! publishers and `crdgen` are the operator issue's work. What exists is the error type and
//! the names the reconcilers will use, so the binary and the workspace layout are in place.

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A part of the operator that is not built yet was asked for.
    #[error("{0} is not implemented yet (see the operator issue)")]
    NotYet(&'static str),
}

/// Result alias of the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CRD group every Netwarden kind lives in.
pub const GROUP: &str = "netwarden.io";
/// The served version of every kind.
pub const VERSION: &str = "v1alpha1";
/// The kinds the operator reconciles.
pub const KINDS: [&str; 4] = ["AlertExclusion", "NotificationEndpoint", "InterfacePolicy", "ServicePolicy"];

/// The config-bucket key of a namespaced object (`<kind>.<namespace>.<name>`, DESIGN.md section 6).
pub fn config_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}.{namespace}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_follow_the_design() {
        assert_eq!(config_key("AlertExclusion", "payments", "noisy-dga"), "AlertExclusion.payments.noisy-dga");
        assert_eq!(netwarden_api::names::CONFIG_BUCKET, "nw-config");
    }
}
