//! The shapes of the KV entries (DESIGN.md section 6):
//!
//! * `nw-config`: `<kind>.<namespace>.<name>` → [`ConfigEntry`] (JSON), written by the operator
//!   (or by `standalone --config`), read by sensors and engines.
//! * `nw-status`: `<kind>.<namespace>.<name>.<reporter>` → [`StatusReport`] (JSON), written by
//!   each sensor (reporter = node name) and engine (reporter = replica name), folded into the
//!   CR status by the operator.
//!
//! Key tokens: Kubernetes names and node names are DNS subdomains and may contain `.`, the NATS
//! token separator, but never `_`; so a `.` inside a name or reporter is written `_`, which keeps
//! every key exactly four (or five) tokens. Cluster-scoped kinds use the namespace token
//! [`CLUSTER_NAMESPACE`].

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::validate::Validate;
use super::{AlertExclusion, InterfacePolicy, NotificationEndpoint, ServicePolicy};

/// Namespace token of cluster-scoped kinds (`InterfacePolicy._cluster.<name>`).
pub const CLUSTER_NAMESPACE: &str = "_cluster";

/// A kind whose spec the operator publishes to `nw-config`.
pub trait ConfigKind {
    /// The kind name, first token of its keys.
    const KIND: &'static str;
    /// The spec type.
    type Spec: Validate + Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The spec of this object.
    fn config_spec(&self) -> &Self::Spec;
}

macro_rules! config_kind {
    ($kind:ident, $spec:ty) => {
        impl ConfigKind for $kind {
            const KIND: &'static str = stringify!($kind);
            type Spec = $spec;
            fn config_spec(&self) -> &$spec {
                &self.spec
            }
        }
    };
}
config_kind!(AlertExclusion, super::AlertExclusionSpec);
config_kind!(NotificationEndpoint, super::NotificationEndpointSpec);
config_kind!(InterfacePolicy, super::InterfacePolicySpec);
config_kind!(ServicePolicy, super::ServicePolicySpec);

/// One `nw-config` value: the validated spec and where it came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEntry<S> {
    /// `netwarden.io/v1alpha1`.
    pub api_version: String,
    /// The kind (`AlertExclusion`, …).
    pub kind: String,
    /// The namespace (absent for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object name.
    pub name: String,
    /// `metadata.generation` of the object; reporters echo it in [`StatusReport::generation`].
    pub generation: i64,
    /// The validated spec.
    pub spec: S,
}

/// One `nw-status` value: what one sensor or engine did with one `nw-config` entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The generation of the entry this report is about.
    pub generation: i64,
    /// Whether it applied.
    pub applied: bool,
    /// Why not (or what was applied, e.g. `capturing eth0, eth1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn encode(token: &str) -> String {
    token.replace('.', "_")
}

fn decode(token: &str) -> String {
    token.replace('_', ".")
}

/// The `nw-config` key of an object (`namespace` `None` for cluster-scoped kinds).
pub fn config_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{kind}.{}.{}",
        namespace.unwrap_or(CLUSTER_NAMESPACE),
        encode(name)
    )
}

/// The `nw-status` key of one reporter's report on an object.
pub fn status_key(kind: &str, namespace: Option<&str>, name: &str, reporter: &str) -> String {
    format!("{}.{}", config_key(kind, namespace, name), encode(reporter))
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedConfigKey {
    /// The kind.
    pub kind: String,
    /// The namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// The object name.
    pub name: String,
}

/// Decodes a `nw-config` key (`None` when it is not four… three tokens of a known shape).
pub fn parse_config_key(key: &str) -> Option<ParsedConfigKey> {
    let mut parts = key.split('.');
    let (kind, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || kind.is_empty() || ns.is_empty() || name.is_empty() {
        return None;
    }
    Some(ParsedConfigKey {
        kind: kind.to_string(),
        namespace: (ns != CLUSTER_NAMESPACE).then(|| ns.to_string()),
        name: decode(name),
    })
}

/// Decodes a `nw-status` key into the object and the reporter.
pub fn parse_status_key(key: &str) -> Option<(ParsedConfigKey, String)> {
    let (object, reporter) = key.rsplit_once('.')?;
    if reporter.is_empty() {
        return None;
    }
    Some((parse_config_key(object)?, decode(reporter)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_dotted_names() {
        let key = config_key("AlertExclusion", Some("payments"), "noisy.dga");
        assert_eq!(key, "AlertExclusion.payments.noisy_dga");
        let parsed = parse_config_key(&key).unwrap();
        assert_eq!(parsed.name, "noisy.dga");
        assert_eq!(parsed.namespace.as_deref(), Some("payments"));
        let key = status_key(
            "InterfacePolicy",
            None,
            "default",
            "ip-10-0-0-1.ec2.internal",
        );
        assert_eq!(
            key,
            "InterfacePolicy._cluster.default.ip-10-0-0-1_ec2_internal"
        );
        let (parsed, reporter) = parse_status_key(&key).unwrap();
        assert_eq!(parsed.namespace, None);
        assert_eq!(reporter, "ip-10-0-0-1.ec2.internal");
        assert!(parse_config_key("a.b").is_none());
        assert!(parse_config_key("a.b.c.d").is_none());
    }
}

fn build_entry<S: Validate + Serialize + DeserializeOwned>(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    generation: i64,
    spec: &serde_json::Value,
) -> Result<(String, Vec<u8>), String> {
    let spec: S =
        serde_json::from_value(spec.clone()).map_err(|e| format!("{kind} {name}: spec: {e}"))?;
    let errors = spec.validate();
    if !errors.is_empty() {
        return Err(format!(
            "{kind} {name}: {}",
            super::validate::describe(&errors)
        ));
    }
    let entry = ConfigEntry {
        api_version: format!("{}/{}", super::GROUP, super::VERSION),
        kind: kind.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
        generation,
        spec,
    };
    let json = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
    Ok((config_key(kind, namespace, name), json))
}

/// The `nw-config` key and entry (JSON) of a CR manifest, for `standalone --config DIR`, which
/// has no API server and no operator: the same validation, the same entry shape, so the engine
/// and sensor code that reads `nw-config` cannot tell the difference. `doc` is one parsed YAML
/// document (`apiVersion`, `kind`, `metadata`, `spec`). Namespaced kinds without a namespace
/// land in `default`; `generation` is `metadata.generation` or 1.
pub fn entry_from_manifest(doc: &serde_json::Value) -> Result<(String, Vec<u8>), String> {
    let kind = doc["kind"].as_str().ok_or("no kind")?;
    if doc["apiVersion"].as_str() != Some("netwarden.io/v1alpha1") {
        return Err(format!("{kind}: apiVersion must be netwarden.io/v1alpha1"));
    }
    let name = doc["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or(format!("{kind}: no metadata.name"))?;
    let generation = doc["metadata"]["generation"].as_i64().unwrap_or(1);
    let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
    let spec = &doc["spec"];
    match kind {
        "AlertExclusion" => {
            build_entry::<super::AlertExclusionSpec>(kind, Some(namespace), name, generation, spec)
        }
        "NotificationEndpoint" => build_entry::<super::NotificationEndpointSpec>(
            kind,
            Some(namespace),
            name,
            generation,
            spec,
        ),
        "InterfacePolicy" => {
            build_entry::<super::InterfacePolicySpec>(kind, None, name, generation, spec)
        }
        "ServicePolicy" => {
            build_entry::<super::ServicePolicySpec>(kind, Some(namespace), name, generation, spec)
        }
        other => Err(format!("unknown kind {other}")),
    }
}

#[cfg(test)]
mod manifest_tests {
    use super::*;

    #[test]
    fn manifests_become_the_entries_the_operator_writes() {
        let doc = serde_json::json!({
            "apiVersion": "netwarden.io/v1alpha1", "kind": "InterfacePolicy",
            "metadata": {"name": "workers"},
            "spec": {"interfaces": {"include": ["eth*"]}}
        });
        let (key, json) = entry_from_manifest(&doc).unwrap();
        assert_eq!(key, "InterfacePolicy._cluster.workers");
        let entry: ConfigEntry<crate::crd::InterfacePolicySpec> =
            serde_json::from_slice(&json).unwrap();
        assert_eq!(
            (entry.generation, entry.spec.snaplen, entry.namespace),
            (1, 1600, None)
        );
        let bad = serde_json::json!({
            "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion",
            "metadata": {"name": "x"}, "spec": {"alertTypes": ["all"]}
        });
        assert!(
            entry_from_manifest(&bad)
                .unwrap_err()
                .contains("at least one matcher")
        );
    }
}
