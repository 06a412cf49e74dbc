//! `ServicePolicy`: service-map rules. After the learning period the engine raises an alert
//! for every new edge a `deny` rule matches, or that no `allow` rule matches when
//! `defaultAction` is `deny`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ConfigStatus;
use super::validate::{FieldError, Validate, check_label_selector};

/// Allowed and denied client → server edges of the service map, in this namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "netwarden.io",
    version = "v1alpha1",
    kind = "ServicePolicy",
    doc = "Allowed and denied service-map edges of a namespace, enforced by the Netwarden engine after a learning period",
    namespaced,
    status = "ConfigStatus",
    shortname = "nwsp",
    category = "netwarden",
    printcolumn = r#"{"name":"Default","type":"string","jsonPath":".spec.defaultAction"}"#,
    printcolumn = r#"{"name":"Learning","type":"string","jsonPath":".spec.learningPeriod"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.appliedNodes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePolicySpec {
    /// Rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub rules: Vec<ServiceRule>,
    /// What happens to an edge no rule matches once learning is over.
    #[serde(default)]
    pub default_action: ServiceRuleAction,
    /// How long new edges are learned as allowed before rules are enforced (`30m`, `24h`, `7d`).
    #[serde(default = "default_learning_period")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(s|m|h|d)$')").message("must be a number followed by s, m, h or d (e.g. 24h)"))]
    pub learning_period: String,
}

fn default_learning_period() -> String {
    "24h".into()
}

/// One service-map rule. Absent selectors match every pod of the namespace (and, for the
/// client, hosts outside the cluster).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.client) || has(self.server) || (has(self.ports) && size(self.ports) > 0)").message("a rule needs a client, a server or ports"))]
pub struct ServiceRule {
    /// Allow or deny.
    pub action: ServiceRuleAction,
    /// Client pods (this namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<LabelSelector>,
    /// Server pods (this namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<LabelSelector>,
    /// Server ports and protocols (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ports: Vec<PortMatch>,
}

/// A server port and protocol.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMatch {
    /// Port number.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("must be a port number 1-65535"))]
    pub port: u16,
    /// L4 protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// L4 protocols.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// Rule verdicts.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRuleAction {
    /// The edge is expected.
    #[default]
    Allow,
    /// The edge raises an alert.
    Deny,
}

/// Parses `30s`, `15m`, `24h`, `7d` into seconds.
pub fn parse_period(text: &str) -> Option<u64> {
    let unit = match text.as_bytes().last()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

impl ServicePolicySpec {
    /// The learning period in seconds (`None` when it does not parse; see [`Validate`]).
    pub fn learning_seconds(&self) -> Option<u64> {
        parse_period(&self.learning_period)
    }
}

impl Validate for ServicePolicySpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.learning_seconds().is_none() {
            errors.push(FieldError::new(
                "spec.learningPeriod",
                format!(
                    "{:?} must be a number followed by s, m, h or d (e.g. 24h)",
                    self.learning_period
                ),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.client.is_none() && rule.server.is_none() && rule.ports.is_empty() {
                errors.push(FieldError::new(
                    format!("spec.rules[{i}]"),
                    "a rule needs a client, a server or ports",
                ));
            }
            for (side, selector) in [("client", &rule.client), ("server", &rule.server)] {
                if let Some(selector) = selector {
                    errors.extend(check_label_selector(
                        &format!("spec.rules[{i}].{side}"),
                        selector,
                    ));
                }
            }
            for (j, port) in rule.ports.iter().enumerate() {
                if port.port == 0 {
                    errors.push(FieldError::new(
                        format!("spec.rules[{i}].ports[{j}].port"),
                        "must be a port number 1-65535",
                    ));
                }
            }
        }
        errors
    }
}
