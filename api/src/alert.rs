//! The alert model (DESIGN.md section 7; ntopng semantics, see docs/checks.md).
//!
//! Severity is derived from the score, as in ntopng: the score is what counts.

use serde::{Deserialize, Serialize};

use crate::flow::FlowRecord;

/// Alert severity, derived from the score ([`Severity::from_score`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Score below 1.
    None,
    /// Score 1..10.
    Info,
    /// Score 10..50.
    Notice,
    /// Score 50..100.
    Warning,
    /// Score 100..200.
    Error,
    /// Score 200..250.
    Critical,
    /// Score 250 and more.
    Emergency,
}

impl Severity {
    /// ntopng's `Utils::mapScoreToSeverity`.
    pub const fn from_score(score: u32) -> Self {
        match score {
            0 => Self::None,
            1..=9 => Self::Info,
            10..=49 => Self::Notice,
            50..=99 => Self::Warning,
            100..=199 => Self::Error,
            200..=249 => Self::Critical,
            _ => Self::Emergency,
        }
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// One flow.
    Flow,
    /// One host.
    Host,
    /// A capture interface.
    Interface,
    /// A local network (CIDR).
    Network,
    /// An observation point (exporter + domain, or sensor + interface).
    ObservationPoint,
    /// A service-map edge.
    ServiceMap,
}

impl Entity {
    /// Token used in subjects (`nw.alerts.<entity>.<type>`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Host => "host",
            Self::Interface => "interface",
            Self::Network => "network",
            Self::ObservationPoint => "observation_point",
            Self::ServiceMap => "service_map",
        }
    }
}

/// Life cycle of an alert: host alerts are engaged while their condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// A one-shot alert (flow alerts).
    #[default]
    Past,
    /// The condition holds now.
    Engaged,
    /// The condition held and no longer does.
    Released,
}

/// Who did what to whom in an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Roles {
    /// The client (or the host, for host alerts) is an attacker.
    pub client_attacker: bool,
    /// The client (or the host) is a victim.
    pub client_victim: bool,
    /// The server is an attacker.
    pub server_attacker: bool,
    /// The server is a victim.
    pub server_victim: bool,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Idempotent key: the same condition on the same entity always yields the same key,
    /// so a replay or a takeover never raises it twice.
    pub key: String,
    /// Alert type, snake_case (`tls_selfsigned_certificate`, `syn_scan`...).
    #[serde(rename = "type")]
    pub alert_type: String,
    /// What the alert is about.
    pub entity: Entity,
    /// Entity value: the host address, the flow's 5-tuple text, the interface name...
    pub entity_value: String,
    /// Derived from `score`.
    pub severity: Severity,
    /// Total score of the alert.
    pub score: u32,
    /// Client (or host) part of the score.
    pub client_score: u32,
    /// Server part of the score.
    pub server_score: u32,
    /// Attacker and victim flags.
    pub roles: Roles,
    /// Observation point id as text.
    pub observation_point: String,
    /// First time the condition was seen (ns since the epoch).
    pub first_seen_ns: u64,
    /// Last time the condition was seen (ns since the epoch).
    pub last_seen_ns: u64,
    /// How many times the condition was seen.
    pub count: u64,
    /// Engaged / released / past.
    pub state: AlertState,
    /// Explanation in words, for people.
    pub message: String,
    /// The triggering flow, for flow alerts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow: Option<Box<FlowRecord>>,
    /// For anomaly alerts: the value observed and the expected band.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub anomaly: Option<AnomalyBand>,
}

/// What an anomaly alert saw (Double Exponential Smoothing, nDPI `ndpi_des_*`; see docs/checks.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnomalyBand {
    /// The value observed.
    pub value: f64,
    /// The expected value (the forecast).
    pub expected: f64,
    /// Lowest normal value.
    pub lower: f64,
    /// Highest normal value.
    pub upper: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_ntopng_thresholds() {
        assert_eq!(Severity::from_score(0), Severity::None);
        assert_eq!(Severity::from_score(9), Severity::Info);
        assert_eq!(Severity::from_score(10), Severity::Notice);
        assert_eq!(Severity::from_score(50), Severity::Warning);
        assert_eq!(Severity::from_score(150), Severity::Error);
        assert_eq!(Severity::from_score(200), Severity::Critical);
        assert_eq!(Severity::from_score(250), Severity::Emergency);
    }
}
