//! `NotificationEndpoint`: where the engine sends alerts, with filters, a rate limit and
//! batching. The target (webhook URL, token, SMTP address, syslog address) always comes from a
//! Secret: the CR, the `nw-config` entry, the status and the logs only ever hold the reference.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ConfigStatus;
use super::validate::{FieldError, Validate, check_label_value};

/// Sends matching alerts to one destination.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "netwarden.io",
    version = "v1alpha1",
    kind = "NotificationEndpoint",
    doc = "Sends matching Netwarden alerts to Slack, a webhook, Teams, Discord, Telegram, email or syslog",
    namespaced,
    status = "ConfigStatus",
    shortname = "nwne",
    category = "netwarden",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Min severity","type":"string","jsonPath":".spec.filters.minSeverity"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.appliedNodes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationEndpointSpec {
    /// The kind of destination.
    #[serde(rename = "type")]
    pub endpoint_type: EndpointType,
    /// The Secret key (in this CR's namespace) holding the target: a webhook URL for slack,
    /// webhook, teams and discord; `<bot token>:<chat id>` for telegram; an address for email
    /// (SMTP settings in the engine's config); `udp://host:514` or `tcp://host:514` for syslog.
    pub secret_key_ref: SecretKeyRef,
    /// Which alerts are sent.
    #[serde(default)]
    pub filters: NotificationFilters,
    /// At most this many notifications are sent; the rest are counted and summarised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Alerts are grouped into one notification per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
}

/// A key of a Secret in the CR's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Destination kinds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum EndpointType {
    /// Slack incoming webhook.
    Slack,
    /// Generic JSON webhook (POST).
    Webhook,
    /// Microsoft Teams workflow webhook.
    Teams,
    /// Discord webhook.
    Discord,
    /// Telegram bot.
    Telegram,
    /// Email over SMTP.
    Email,
    /// Syslog (RFC 5424, ECS-shaped JSON message).
    Syslog,
}

/// Alert severities, lowest first.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Notice.
    #[default]
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Emergency.
    Emergency,
}

/// Which alerts an endpoint receives. Every listed filter must match; an empty list matches all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!(has(self.attackerOnly) && has(self.victimOnly) && self.attackerOnly && self.victimOnly)").message("attackerOnly and victimOnly cannot both be true"))]
pub struct NotificationFilters {
    /// Alerts below this severity are not sent.
    #[serde(default)]
    pub min_severity: Severity,
    /// Alert type names (empty: all types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_types: Vec<String>,
    /// Alert entities: flow, host, interface, network, observationPoint, serviceMap (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    /// Kubernetes namespaces of the alert's hosts (empty: all, including hosts outside the cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only alerts where a host of the selected namespaces is the attacker.
    #[serde(default)]
    pub attacker_only: bool,
    /// Only alerts where a host of the selected namespaces is the victim.
    #[serde(default)]
    pub victim_only: bool,
}

/// A token bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Notifications per minute, sustained.
    #[x_kube(validation = Rule::new("self > 0").message("must be positive"))]
    pub per_minute: u32,
    /// Notifications allowed in a burst above the sustained rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    10
}

/// Grouping of alerts into one message.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Batching {
    /// At most this many alerts per message.
    #[serde(default = "default_max_alerts")]
    #[x_kube(validation = Rule::new("self > 0").message("must be positive"))]
    pub max_alerts: u32,
    /// Waits at most this long (seconds) for more alerts before sending.
    #[serde(default = "default_linger")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 3600").message("must be between 1 and 3600 seconds"))]
    pub linger_seconds: u32,
}

fn default_max_alerts() -> u32 {
    50
}

fn default_linger() -> u32 {
    30
}

const ENTITIES: [&str; 6] = [
    "flow",
    "host",
    "interface",
    "network",
    "observationPoint",
    "serviceMap",
];

impl Validate for NotificationEndpointSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.secret_key_ref.name.is_empty() {
            errors.push(FieldError::new(
                "spec.secretKeyRef.name",
                "name the Secret holding the target",
            ));
        }
        if self.secret_key_ref.key.is_empty() {
            errors.push(FieldError::new(
                "spec.secretKeyRef.key",
                "name the key of the Secret holding the target",
            ));
        }
        let f = &self.filters;
        if f.attacker_only && f.victim_only {
            errors.push(FieldError::new(
                "spec.filters",
                "attackerOnly and victimOnly cannot both be true",
            ));
        }
        for (i, e) in f.entities.iter().enumerate() {
            if !ENTITIES.contains(&e.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.filters.entities[{i}]"),
                    format!("{e:?} is not one of {}", ENTITIES.join(", ")),
                ));
            }
        }
        for (i, ns) in f.namespaces.iter().enumerate() {
            if ns.is_empty()
                || ns.len() > 63
                || check_label_value(ns).is_err()
                || ns.bytes().any(|b| b.is_ascii_uppercase())
            {
                errors.push(FieldError::new(
                    format!("spec.filters.namespaces[{i}]"),
                    format!("{ns:?} is not a namespace name"),
                ));
            }
        }
        if let Some(rate) = &self.rate_limit
            && rate.per_minute == 0
        {
            errors.push(FieldError::new(
                "spec.rateLimit.perMinute",
                "must be positive",
            ));
        }
        if let Some(batch) = &self.batching {
            if batch.max_alerts == 0 {
                errors.push(FieldError::new(
                    "spec.batching.maxAlerts",
                    "must be positive",
                ));
            }
            if batch.linger_seconds == 0 || batch.linger_seconds > 3600 {
                errors.push(FieldError::new(
                    "spec.batching.lingerSeconds",
                    "must be between 1 and 3600 seconds",
                ));
            }
        }
        errors
    }
}
