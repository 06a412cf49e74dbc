//! `AlertExclusion`: which hosts, host pairs, pods, domains or certificate issuers are excluded
//! from which alert types. The engine drops matching alerts (and their score) before storing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::status::ConfigStatus;
use super::validate::{
    FieldError, Validate, check_domain_pattern, check_label_selector, parse_ip_or_cidr,
    selector_is_empty,
};

/// Excludes matching hosts or flows from some (or all) alert types.
///
/// At least one matcher is required. A flow or host is excluded when ANY matcher matches it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "netwarden.io",
    version = "v1alpha1",
    kind = "AlertExclusion",
    doc = "Excludes hosts, host pairs, pods, domains or certificate issuers from some or all alert types (netwarden.io)",
    namespaced,
    status = "ConfigStatus",
    shortname = "nwax",
    category = "netwarden",
    printcolumn = r#"{"name":"Scope","type":"string","jsonPath":".spec.scope"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.appliedNodes"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(
    "(has(self.hosts) && size(self.hosts) > 0) || (has(self.pairs) && size(self.pairs) > 0) || has(self.podSelector) || (has(self.domains) && size(self.domains) > 0) || (has(self.certificateIssuers) && size(self.certificateIssuers) > 0)"
).message("at least one matcher is required: hosts, pairs, podSelector, domains or certificateIssuers"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertExclusionSpec {
    /// Hosts by IP address or CIDR, matched as the flow's client, server or either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub hosts: Vec<HostMatcher>,
    /// Client and server networks that must match together (a client talking to a server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub pairs: Vec<PairMatcher>,
    /// Pods selected by labels, in this CR's namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Server names (TLS SNI, HTTP Host, DNS query): `example.com` or `*.example.com` (subdomains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub domains: Vec<String>,
    /// TLS certificate issuer distinguished names, matched exactly (e.g. `CN=Corp Internal CA,O=Corp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_issuers: Vec<String>,
    /// Which alerts are excluded: flow alerts, host alerts, or both.
    #[serde(default)]
    pub scope: ExclusionScope,
    /// Alert type names from the risk and check catalogue (e.g. `ndpi_suspicious_dga_domain`),
    /// or `all` for every type.
    #[schemars(length(min = 1, max = 256))]
    pub alert_types: Vec<String>,
    /// When the exclusion stops applying (RFC 3339). Absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Why this exclusion exists (shown in the UI and the audit trail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A host matcher: an address or network, and which side of the flow it must be on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostMatcher {
    /// An IP address (`10.1.2.3`) or CIDR (`10.0.0.0/8`, `2001:db8::/32`).
    #[x_kube(validation = Rule::new("isIP(self) || isCIDR(self)").message("must be an IP address or a CIDR such as 10.0.0.0/8"))]
    #[schemars(length(max = 64))]
    pub cidr: String,
    /// The side of the flow the host must be on.
    #[serde(default)]
    pub side: HostSide,
}

/// A client network talking to a server network.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairMatcher {
    /// Client address or CIDR.
    #[x_kube(validation = Rule::new("isIP(self) || isCIDR(self)").message("must be an IP address or a CIDR such as 10.0.0.0/8"))]
    #[schemars(length(max = 64))]
    pub client: String,
    /// Server address or CIDR.
    #[x_kube(validation = Rule::new("isIP(self) || isCIDR(self)").message("must be an IP address or a CIDR such as 10.0.0.0/8"))]
    #[schemars(length(max = 64))]
    pub server: String,
}

/// Which side of a flow a host matcher applies to.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "camelCase")]
pub enum HostSide {
    /// The host opened the flow.
    Client,
    /// The host accepted the flow.
    Server,
    /// Either side.
    #[default]
    Either,
}

/// Which alerts an exclusion removes.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "camelCase")]
pub enum ExclusionScope {
    /// Flow alerts only.
    Flow,
    /// Host alerts only.
    Host,
    /// Flow and host alerts.
    #[default]
    Both,
}

impl AlertExclusionSpec {
    /// Whether the exclusion covers every alert type.
    pub fn all_types(&self) -> bool {
        self.alert_types.iter().any(|t| t == "all")
    }
}

impl Validate for AlertExclusionSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let has_matcher = !self.hosts.is_empty()
            || !self.pairs.is_empty()
            || self.pod_selector.is_some()
            || !self.domains.is_empty()
            || !self.certificate_issuers.is_empty();
        if !has_matcher {
            errors.push(FieldError::new(
                "spec",
                "at least one matcher is required: hosts, pairs, podSelector, domains or certificateIssuers",
            ));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if let Err(e) = parse_ip_or_cidr(&host.cidr) {
                errors.push(FieldError::new(format!("spec.hosts[{i}].cidr"), e));
            }
        }
        for (i, pair) in self.pairs.iter().enumerate() {
            for (side, value) in [("client", &pair.client), ("server", &pair.server)] {
                if let Err(e) = parse_ip_or_cidr(value) {
                    errors.push(FieldError::new(format!("spec.pairs[{i}].{side}"), e));
                }
            }
        }
        if let Some(selector) = &self.pod_selector {
            if selector_is_empty(selector) {
                errors.push(FieldError::new(
                    "spec.podSelector",
                    "an empty selector would match every pod of the namespace; list matchLabels or matchExpressions",
                ));
            }
            errors.extend(check_label_selector("spec.podSelector", selector));
        }
        for (i, domain) in self.domains.iter().enumerate() {
            if let Err(e) = check_domain_pattern(domain) {
                errors.push(FieldError::new(format!("spec.domains[{i}]"), e));
            }
        }
        for (i, issuer) in self.certificate_issuers.iter().enumerate() {
            if issuer.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("spec.certificateIssuers[{i}]"),
                    "must not be empty",
                ));
            }
        }
        if self.alert_types.is_empty() {
            errors.push(FieldError::new(
                "spec.alertTypes",
                "list at least one alert type, or `all`",
            ));
        }
        for (i, t) in self.alert_types.iter().enumerate() {
            if t.is_empty()
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                errors.push(FieldError::new(
                    format!("spec.alertTypes[{i}]"),
                    format!("{t:?} is not an alert type name (snake_case, e.g. ndpi_suspicious_dga_domain) or `all`"),
                ));
            }
        }
        errors
    }
}
