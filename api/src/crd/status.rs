//! The status every kind shares: conditions, the generation they describe, and where the
//! configuration applied (folded by the operator from the `nw-status` bucket).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator sets.
pub mod condition_types {
    /// The spec is valid and published to `nw-config`.
    pub const READY: &str = "Ready";
    /// The spec failed validation (the operator did not publish it).
    pub const INVALID: &str = "Invalid";
    /// Every targeted sensor or engine reported the current generation as applied.
    pub const APPLIED: &str = "Applied";
}

/// Condition reasons (CamelCase, as Kubernetes expects).
pub mod reasons {
    /// Validated and written to `nw-config`.
    pub const PUBLISHED: &str = "Published";
    /// A rule of the spec is violated; the message says which field and what to fix.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The spec passed validation.
    pub const VALID: &str = "Valid";
    /// The NATS KV bucket could not be written.
    pub const PUBLISH_FAILED: &str = "PublishFailed";
    /// A referenced Secret or key does not exist.
    pub const SECRET_MISSING: &str = "SecretMissing";
    /// Every reporter applied the current generation.
    pub const ALL_APPLIED: &str = "AllApplied";
    /// Some reporters failed or have not yet applied the current generation.
    pub const PARTIALLY_APPLIED: &str = "PartiallyApplied";
    /// No sensor or engine has reported yet.
    pub const NO_REPORTS: &str = "NoReports";
}

/// Status of every Netwarden kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Invalid` and `Applied` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Where the current generation applied, as `applied/reporting` (e.g. `12/12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_nodes: Option<String>,
    /// Number of sensors or engines that applied the current generation.
    #[serde(default)]
    pub applied_count: u32,
    /// Number of sensors or engines that reported on the current generation.
    #[serde(default)]
    pub reported_count: u32,
    /// Reporters that could not apply the current generation, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<NodeError>,
}

/// One node's (or engine replica's) failure to apply a configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeError {
    /// The node name (sensors) or replica name (engines).
    pub node: String,
    /// Why it could not apply (e.g. a BPF filter that does not compile).
    pub message: String,
}

/// `conditions` as Kubernetes lists them: a map keyed by `type`.
fn conditions_schema(generator: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}
