//! Checks: what turns flow records and host state into alerts and score
//! (ntopng semantics, documented in docs/checks.md; DESIGN.md section 4).
//!
//! * [`flow`]: flow checks, pure deterministic functions of (record, config) → [`FlowAlert`]s
//!   with the client/server score split and attacker/victim flags. They run on every copy of a
//!   record (DESIGN.md §5) and agree because they are pure.
//! * [`host`]: host checks, small state machines per host sliding with flow time (scans, floods,
//!   contacts, remote connection, score threshold, dangerous host), engaged and released.
//! * [`net`] and [`blocklist`]: local networks, allow-lists and blocklists.
//!
//! This module decides *what* is wrong; `score` keeps the points, `alerts` keeps the rows,
//! `exclusions` decides what must not be reported. No I/O except the blocklist files.

pub mod blocklist;
pub mod flow;
pub mod host;
pub mod net;

use std::path::PathBuf;

use netwarden_api::alert::Roles;
use netwarden_api::risk::ScoreCategory;
use serde::{Deserialize, Serialize};

pub use blocklist::Blocklist;
pub use net::Cidr;

/// Largest score of one alert, and of its client and server parts (REFERENCE.md §0).
pub const MAX_ALERT_SCORE: u16 = 250;

/// What an alert's score counts towards: security, or network (everything that is not
/// security, as `Utils::mapAlertToScoreCategory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// Network health.
    Network,
    /// Attacks, malware, policy breaches.
    Security,
}

impl ScoreKind {
    /// The score kind of a catalogue category.
    pub const fn of(category: ScoreCategory) -> Self {
        match category {
            ScoreCategory::Security => Self::Security,
            ScoreCategory::Network | ScoreCategory::Other => Self::Network,
        }
    }
}

/// One alert raised by a flow check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowAlert {
    /// Alert type, snake_case (the risk key for risk-driven alerts).
    pub alert_type: &'static str,
    /// ntopng's flow alert id (for cross-reference).
    pub ntopng_id: u16,
    /// Score of the alert (capped at [`MAX_ALERT_SCORE`]).
    pub score: u16,
    /// Points for the client.
    pub client_score: u16,
    /// Points for the server.
    pub server_score: u16,
    /// Security or network.
    pub kind: ScoreKind,
    /// Attacker and victim flags.
    pub roles: Roles,
    /// Why, in words.
    pub message: String,
}

impl FlowAlert {
    /// An alert of `score` split `client_pct` to the client (`cli = score*pct/100`,
    /// `srv = score - cli`, REFERENCE.md §0).
    pub fn new(def: &CheckDef, score: u16, client_pct: u8, roles: Roles, message: String) -> Self {
        let score = score.min(MAX_ALERT_SCORE);
        let cli = score * u16::from(client_pct.min(100)) / 100;
        Self {
            alert_type: def.alert_type,
            ntopng_id: def.ntopng_id,
            score,
            client_score: cli,
            server_score: score - cli,
            kind: def.kind,
            roles,
            message,
        }
    }
}

/// A check that is not a catalogue risk: its defaults (REFERENCE.md §1a and §1c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CheckDef {
    /// Alert type, snake_case.
    pub alert_type: &'static str,
    /// ntopng's alert id.
    pub ntopng_id: u16,
    /// Default score.
    pub score: u16,
    /// Default client share in percent.
    pub client_pct: u8,
    /// Security or network.
    pub kind: ScoreKind,
    /// Whether the check runs without being enabled.
    pub default_enabled: bool,
    /// Flow or host check.
    pub host: bool,
}

macro_rules! def {
    ($t:literal, $id:literal, $score:literal, $pct:literal, $kind:ident, $on:literal, $host:literal) => {
        CheckDef {
            alert_type: $t,
            ntopng_id: $id,
            score: $score,
            client_pct: $pct,
            kind: ScoreKind::$kind,
            default_enabled: $on,
            host: $host,
        }
    };
}

/// Every check that is not a catalogue risk, flow checks first. Catalogue risks are checks too:
/// their type is the risk key and they are all enabled by default.
pub static CHECKS: &[CheckDef] = &[
    def!("blacklisted_flow", 1, 200, 90, Security, true, false),
    def!(
        "blacklisted_client_contact",
        9,
        50,
        50,
        Security,
        true,
        false
    ),
    def!(
        "blacklisted_server_contact",
        13,
        200,
        90,
        Security,
        true,
        false
    ),
    def!("low_goodput", 12, 10, 50, Network, true, false),
    def!("tcp_packets_issues", 19, 100, 50, Network, false, false),
    def!("tcp_zero_window", 36, 10, 90, Network, true, false),
    def!("tcp_no_data_exchanged", 56, 10, 90, Network, true, false),
    def!("tcp_flow_reset", 100, 10, 90, Network, false, false),
    def!(
        "remote_to_local_insecure_proto",
        38,
        100,
        90,
        Security,
        true,
        false
    ),
    def!("remote_access", 57, 10, 50, Security, true, false),
    def!("web_mining", 27, 50, 90, Security, true, false),
    def!(
        "broadcast_non_udp_traffic",
        67,
        100,
        90,
        Network,
        true,
        false
    ),
    // Device types (engine/src/devices): the client share drops to 10% when the server broke it.
    def!(
        "device_protocol_not_allowed",
        5,
        100,
        90,
        Security,
        true,
        false
    ),
    def!(
        "unexpected_dhcp_server",
        32,
        100,
        90,
        Security,
        false,
        false
    ),
    def!("unexpected_dns_server", 33, 100, 90, Security, false, false),
    def!(
        "unexpected_smtp_server",
        34,
        100,
        90,
        Security,
        false,
        false
    ),
    def!("unexpected_ntp_server", 35, 100, 90, Security, false, false),
    // Service map (docs/servicemap.md): ntopng's LateralMovement (58) and PeriodicityChanged
    // (59); a new edge after learning has no ntopng id.
    // All their points go to the client: only the client copy of a record feeds the map, so
    // every bus copy agrees on the server's score.
    def!("lateral_movement", 58, 50, 100, Security, true, false),
    def!("periodicity_changed", 59, 1, 100, Network, true, false),
    def!("new_service", 4100, 10, 100, Security, true, false),
    def!("syn_scan", 5, 50, 100, Security, true, true),
    def!("fin_scan", 21, 50, 100, Security, true, true),
    def!("rst_scan", 25, 50, 100, Security, true, true),
    def!("flow_flood", 4, 50, 100, Security, true, true),
    def!("syn_flood", 6, 250, 100, Security, true, true),
    def!("icmp_flood", 18, 50, 100, Security, true, true),
    def!("dns_flood", 22, 50, 100, Security, true, true),
    def!("scan_detection", 20, 100, 100, Security, true, true),
    def!("server_ports_contacts", 29, 50, 100, Security, true, true),
    def!("host_scanner", 28, 100, 100, Security, true, true),
    def!("dns_server_contacts", 2, 10, 100, Security, false, true),
    def!("smtp_server_contacts", 1, 10, 100, Security, false, true),
    def!("ntp_server_contacts", 3, 10, 100, Security, false, true),
    def!("domain_names_contacts", 7, 10, 50, Network, false, true),
    def!("remote_connection", 12, 10, 50, Security, false, true),
    def!("score_threshold", 17, 150, 100, Security, true, true),
    def!("dangerous_host", 14, 100, 100, Security, true, true),
    def!("score_anomaly", 11, 50, 100, Security, true, true),
    def!("flow_anomaly", 10, 50, 100, Network, true, true),
    // Distinct peers per period out of the band (ntopng: contacts behaviour).
    def!("contacts_anomaly", 4097, 50, 100, Network, true, true),
    // Observation-point (interface/exporter) traffic behaviour; ntopng: iface rx/tx anomalies.
    def!("traffic_anomaly", 4096, 50, 0, Network, true, true),
];

/// The definition of a non-risk check.
pub fn def(alert_type: &str) -> Option<&'static CheckDef> {
    CHECKS.iter().find(|c| c.alert_type == alert_type)
}

/// Configuration of every check (standalone: `checks:` in the engine config; cluster: the
/// `nw-config` KV). Defaults are REFERENCE.md's.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// Networks counted as local (in a cluster: pod, service and node CIDRs). Default: RFC 1918,
    /// IPv6 ULA and link-local.
    pub local_networks: Vec<Cidr>,
    /// Checks to run although off by default (`tcp_flow_reset`, `unexpected_dns_server`...).
    pub enable: Vec<String>,
    /// Checks (or risk keys) not to run.
    pub disable: Vec<String>,
    /// `low_goodput` fires at or below this goodput ratio, percent.
    pub low_goodput_pct: u8,
    /// `tcp_packets_issues` fires above this share of retransmitted, out-of-order or lost
    /// packets, percent.
    pub tcp_issues_pct: u8,
    /// Allowed DHCP servers (`unexpected_dhcp_server`).
    pub dhcp_servers: Vec<Cidr>,
    /// Allowed DNS servers (`unexpected_dns_server`).
    pub dns_servers: Vec<Cidr>,
    /// Allowed SMTP servers (`unexpected_smtp_server`).
    pub smtp_servers: Vec<Cidr>,
    /// Allowed NTP servers (`unexpected_ntp_server`).
    pub ntp_servers: Vec<Cidr>,
    /// Blocklist files (addresses, CIDRs and domains; reloaded when they change).
    pub blocklist_files: Vec<PathBuf>,
    /// Host check thresholds.
    pub host: host::HostChecksConfig,
    /// The loaded blocklist (from `blocklist_files`, or built in memory).
    #[serde(skip)]
    pub blocklist: Blocklist,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        Self {
            local_networks: net::default_local_networks(),
            enable: Vec::new(),
            disable: Vec::new(),
            low_goodput_pct: 60,
            tcp_issues_pct: 15,
            dhcp_servers: Vec::new(),
            dns_servers: Vec::new(),
            smtp_servers: Vec::new(),
            ntp_servers: Vec::new(),
            blocklist_files: Vec::new(),
            host: host::HostChecksConfig::default(),
            blocklist: Blocklist::default(),
        }
    }
}

impl ChecksConfig {
    /// Whether the check `alert_type` runs.
    pub fn enabled(&self, alert_type: &str) -> bool {
        if self.disable.iter().any(|d| d == alert_type) {
            return false;
        }
        def(alert_type).is_none_or(|d| d.default_enabled)
            || self.enable.iter().any(|e| e == alert_type)
    }

    /// Whether `ip` is local.
    pub fn is_local(&self, ip: std::net::IpAddr) -> bool {
        net::in_any(&self.local_networks, ip)
    }

    /// Loads the blocklist files named in the configuration.
    #[must_use]
    pub fn with_blocklists_loaded(mut self) -> Self {
        if !self.blocklist_files.is_empty() {
            self.blocklist = Blocklist::load(&self.blocklist_files);
        }
        self
    }

    /// Names in `enable`/`disable` that are neither a check nor a risk key.
    pub fn unknown_names(&self) -> Vec<String> {
        self.enable
            .iter()
            .chain(&self.disable)
            .filter(|n| def(n).is_none() && netwarden_api::risk::by_key(n).is_none())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_list_every_check_and_every_risk() {
        let doc = include_str!("../../../docs/checks.md");
        for c in CHECKS {
            assert!(
                doc.contains(&format!("| `{}` |", c.alert_type)),
                "{}",
                c.alert_type
            );
        }
        for r in netwarden_api::risk::CATALOGUE {
            assert!(doc.contains(&format!("| `{}` |", r.key)), "{}", r.key);
        }
    }

    #[test]
    fn enable_and_disable() {
        let mut cfg = ChecksConfig::default();
        assert!(cfg.enabled("low_goodput") && !cfg.enabled("tcp_flow_reset"));
        assert!(cfg.enabled("url_possible_xss"), "risks are on by default");
        cfg.enable.push("tcp_flow_reset".into());
        cfg.disable.push("low_goodput".into());
        assert!(!cfg.enabled("low_goodput") && cfg.enabled("tcp_flow_reset"));
    }
}
