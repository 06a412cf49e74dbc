//! Host checks: small per-host state machines fed with each flow as it is applied, sliding with
//! flow time (never a batch timer), raising engaged alerts while their condition holds and
//! releasing them after (ntopng `src/host_checks/`; docs/checks.md "Host checks").
//!
//! * [`FlowFacts`] is what one record tells the checks about one of its hosts ([`facts`]).
//! * [`HostCheckState`] keeps the host's sliding counters ([`window`]) and which alerts are
//!   engaged; [`HostCheckState::evaluate`] turns them into engage/release events.
//!
//! Rates are sliding windows of two fixed buckets; distinct counts (peers, ports, servers,
//! domain names) are small linear-counting bitmaps, so a host costs a few hundred bytes whatever
//! it does.

pub mod facts;
pub mod window;

use serde::{Deserialize, Serialize};

use netwarden_api::alert::Roles;

pub use facts::{FlowFacts, Service};
pub use window::{Distinct, Window};

/// Thresholds of the host checks (ntopng defaults where ntopng has one; all are "greater
/// than").
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostChecksConfig {
    /// Unanswered SYNs per minute, sent (attacker) or received (victim).
    pub syn_scan: u32,
    /// FIN, Xmas and NULL probes (TCP flows opened without SYN, ACK or RST) per minute.
    pub fin_scan: u32,
    /// RST probes (TCP flows opened by a RST, without SYN) per minute.
    pub rst_scan: u32,
    /// New flows per second, as client (attacker) or as server (victim).
    pub flow_flood: u32,
    /// Half-open TCP flows (SYN, never the client's ACK) per second, averaged over a minute.
    pub syn_flood: u32,
    /// ICMP packets per second, averaged over a minute, sent or received.
    pub icmp_flood: u32,
    /// DNS query packets per second, averaged over a minute, sent or received.
    pub dns_flood: u32,
    /// Incomplete flows per minute as client.
    pub scan_detection: u32,
    /// Distinct server ports contacted as client within `contacts_window_secs`.
    pub server_ports_contacts: u32,
    /// Distinct hosts contacted as client within `contacts_window_secs`.
    pub host_scanner: u32,
    /// Distinct DNS servers contacted within `contacts_window_secs` (skipped for DNS servers).
    pub dns_server_contacts: u32,
    /// Distinct SMTP servers contacted (skipped for SMTP servers).
    pub smtp_server_contacts: u32,
    /// Distinct NTP servers contacted (skipped for NTP servers).
    pub ntp_server_contacts: u32,
    /// Distinct domain names (DNS query, TLS SNI, HTTP Host) asked within
    /// `contacts_window_secs` (skipped for DNS and SMTP servers).
    pub domain_names_contacts: u32,
    /// Window of the distinct-contacts checks, seconds (ntopng: 5-minute checks).
    pub contacts_window_secs: u64,
    /// Seconds `remote_connection` stays engaged after the last record of a remote-access flow.
    pub remote_connection_secs: u64,
    /// Client or server score.
    pub score_threshold: u32,
    /// Total score that makes a host dangerous when held for `dangerous_host_secs`.
    pub dangerous_host_score: u32,
    /// Seconds the score must stay above `dangerous_host_score` (ntopng: 5 runs of 60 s).
    pub dangerous_host_secs: u64,
}

impl Default for HostChecksConfig {
    fn default() -> Self {
        Self {
            syn_scan: 256,
            fin_scan: 256,
            rst_scan: 256,
            flow_flood: 256,
            syn_flood: 256,
            icmp_flood: 256,
            dns_flood: 256,
            scan_detection: 32,
            server_ports_contacts: 100,
            host_scanner: 256,
            dns_server_contacts: 5,
            smtp_server_contacts: 5,
            ntp_server_contacts: 5,
            domain_names_contacts: 250,
            contacts_window_secs: 300,
            remote_connection_secs: 120,
            score_threshold: 5000,
            dangerous_host_score: 1000,
            dangerous_host_secs: 300,
        }
    }
}

const NS: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * NS;
const SECOND: u64 = NS;

/// One host check's state change.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCheckEvent {
    /// Alert type (`syn_scan`...).
    pub alert_type: &'static str,
    /// Which side: `client` or `server` (the attacker and victim variants are distinct alerts).
    pub side: &'static str,
    /// Engaged (true) or released (false).
    pub engaged: bool,
    /// The value measured.
    pub value: u64,
    /// The threshold crossed.
    pub threshold: u64,
    /// Client share of the score, percent.
    pub client_pct: u8,
    /// Attacker/victim flags (client_* stand for the host).
    pub roles: Roles,
}

/// What a host is in an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Attacker,
    Victim,
    None,
}

/// One host check and side, with its bit in [`HostCheckState::engaged`].
struct Spec {
    alert_type: &'static str,
    side: &'static str,
    role: Role,
    client_pct: u8,
}

const fn spec(alert_type: &'static str, side: &'static str, role: Role, pct: u8) -> Spec {
    Spec {
        alert_type,
        side,
        role,
        client_pct: pct,
    }
}

use Role::{Attacker, None as NoRole, Victim};

/// Every host check with its side; [`HostCheckState::values`] gives the values in this order.
const SPECS: [Spec; 25] = [
    spec("syn_scan", "client", Attacker, 100),
    spec("syn_scan", "server", Victim, 0),
    spec("fin_scan", "client", Attacker, 100),
    spec("fin_scan", "server", Victim, 0),
    spec("rst_scan", "client", Attacker, 100),
    spec("rst_scan", "server", Victim, 0),
    spec("flow_flood", "client", Attacker, 100),
    spec("flow_flood", "server", Victim, 0),
    spec("syn_flood", "client", Attacker, 100),
    spec("syn_flood", "server", Victim, 0),
    spec("icmp_flood", "client", Attacker, 100),
    spec("icmp_flood", "server", Victim, 0),
    spec("dns_flood", "client", Attacker, 100),
    spec("dns_flood", "server", Victim, 0),
    spec("scan_detection", "client", Attacker, 100),
    spec("server_ports_contacts", "client", Attacker, 100),
    spec("host_scanner", "client", Attacker, 100),
    spec("dns_server_contacts", "client", NoRole, 100),
    spec("smtp_server_contacts", "client", NoRole, 100),
    spec("ntp_server_contacts", "client", NoRole, 100),
    spec("domain_names_contacts", "client", NoRole, 50),
    spec("remote_connection", "client", NoRole, 50),
    spec("score_threshold", "client", Attacker, 100),
    spec("score_threshold", "server", Victim, 0),
    spec("dangerous_host", "client", Attacker, 100),
];

/// The host checks' state of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCheckState {
    /// Rates, each `[sent/as client, received/as server]`.
    syn: [Window; 2],
    fin: [Window; 2],
    rst: [Window; 2],
    flows: [Window; 2],
    half_open: [Window; 2],
    icmp: [Window; 2],
    dns: [Window; 2],
    incomplete: Window,
    ports: Distinct<4>,
    peers: Distinct<8>,
    /// DNS, SMTP and NTP servers contacted, by [`Service`].
    servers: [Distinct<2>; 3],
    names: Distinct<8>,
    /// Peers (either side) since the last series sample, for the `distinct_peers` series.
    period_peers: [u64; 8],
    /// Services this host answered as server ([`Service`] bits): skips its contacts checks.
    serves: u8,
    remote_until_ns: u64,
    dangerous_since: Option<u64>,
    engaged: u32,
}

impl HostCheckState {
    /// Counts one flow's facts.
    pub fn observe(&mut self, f: &FlowFacts, cfg: &HostChecksConfig) {
        let t = f.t_ns;
        let i = usize::from(!f.as_client);
        if f.unanswered_syn {
            self.syn[i].add(t, MINUTE);
        }
        if f.stealth_probe {
            self.fin[i].add(t, MINUTE);
        }
        if f.rst_probe {
            self.rst[i].add(t, MINUTE);
        }
        if f.half_open {
            self.half_open[i].add(t, MINUTE);
        }
        if f.new_flow {
            self.flows[i].add(t, SECOND);
        }
        if f.icmp_packets > 0 {
            self.icmp[i].add_n(t, MINUTE, f.icmp_packets);
        }
        if f.dns_queries > 0 {
            self.dns[i].add_n(t, MINUTE, f.dns_queries);
        }
        let peer = window::hash_ip(f.peer);
        if f.new_flow {
            let bit = (peer % 512) as usize;
            self.period_peers[bit / 64] |= 1 << (bit % 64);
        }
        if f.as_client {
            if f.incomplete {
                self.incomplete.add(t, MINUTE);
            }
            if f.new_flow {
                let w = cfg.contacts_window_secs.max(1).saturating_mul(NS);
                self.peers.add(peer, t, w);
                if let Some(port) = f.server_port {
                    self.ports.add(window::mix64(u64::from(port)), t, w);
                }
                if let Some(s) = f.service {
                    self.servers[s as usize].add(peer, t, w);
                }
                if f.domain != 0 {
                    self.names.add(f.domain, t, w);
                }
            }
        } else if let Some(s) = f.service
            && f.answered
        {
            self.serves |= 1 << s as u8;
        }
        if f.remote_access {
            self.remote_until_ns = self
                .remote_until_ns
                .max(t.saturating_add(cfg.remote_connection_secs.saturating_mul(NS)));
        }
    }

    /// Whether any alert is engaged.
    pub fn any_engaged(&self) -> bool {
        self.engaged != 0
    }

    /// Distinct peers (either side) since the last call, and starts a new period.
    pub fn take_period_peers(&mut self) -> u32 {
        let n = window::estimate(&self.period_peers);
        self.period_peers = [0; 8];
        n
    }

    fn serves(&self, s: Service) -> bool {
        self.serves & (1 << s as u8) != 0
    }

    /// Every check's (value, threshold) at `t_ns`, in [`SPECS`] order.
    fn values(
        &self,
        cfg: &HostChecksConfig,
        t: u64,
        client_score: u64,
        server_score: u64,
        dangerous_for: u64,
    ) -> [(u64, u64); 25] {
        let minute = window::Tick::new(t, MINUTE);
        let second = window::Tick::new(t, SECOND);
        let w = window::Tick::new(t, cfg.contacts_window_secs.max(1).saturating_mul(NS));
        let per_min = |x: &Window| u64::from(x.value_at(minute));
        let th = u64::from;
        let contacts = |s: Service, threshold: u32| {
            // A host that is itself such a server contacts others legitimately.
            let v = if self.serves(s) {
                0
            } else {
                u64::from(self.servers[s as usize].value_above(w, threshold))
            };
            (v, th(threshold))
        };
        let names = if self.serves(Service::Dns) || self.serves(Service::Smtp) {
            0
        } else {
            u64::from(self.names.value_above(w, cfg.domain_names_contacts))
        };
        let total = client_score + server_score;
        [
            (per_min(&self.syn[0]), th(cfg.syn_scan)),
            (per_min(&self.syn[1]), th(cfg.syn_scan)),
            (per_min(&self.fin[0]), th(cfg.fin_scan)),
            (per_min(&self.fin[1]), th(cfg.fin_scan)),
            (per_min(&self.rst[0]), th(cfg.rst_scan)),
            (per_min(&self.rst[1]), th(cfg.rst_scan)),
            (
                u64::from(self.flows[0].value_at(second)),
                th(cfg.flow_flood),
            ),
            (
                u64::from(self.flows[1].value_at(second)),
                th(cfg.flow_flood),
            ),
            (per_min(&self.half_open[0]), th(cfg.syn_flood) * 60),
            (per_min(&self.half_open[1]), th(cfg.syn_flood) * 60),
            (per_min(&self.icmp[0]), th(cfg.icmp_flood) * 60),
            (per_min(&self.icmp[1]), th(cfg.icmp_flood) * 60),
            (per_min(&self.dns[0]), th(cfg.dns_flood) * 60),
            (per_min(&self.dns[1]), th(cfg.dns_flood) * 60),
            (per_min(&self.incomplete), th(cfg.scan_detection)),
            (
                u64::from(self.ports.value_above(w, cfg.server_ports_contacts)),
                th(cfg.server_ports_contacts),
            ),
            (
                u64::from(self.peers.value_above(w, cfg.host_scanner)),
                th(cfg.host_scanner),
            ),
            contacts(Service::Dns, cfg.dns_server_contacts),
            contacts(Service::Smtp, cfg.smtp_server_contacts),
            contacts(Service::Ntp, cfg.ntp_server_contacts),
            (names, th(cfg.domain_names_contacts)),
            (u64::from(t < self.remote_until_ns), 0),
            (client_score, th(cfg.score_threshold)),
            (server_score, th(cfg.score_threshold)),
            (
                if dangerous_for > cfg.dangerous_host_secs {
                    total
                } else {
                    0
                },
                th(cfg.dangerous_host_score),
            ),
        ]
    }

    /// Evaluates every check at `t_ns` with the host's live client and server scores; returns
    /// the alerts that engage or release now.
    pub fn evaluate(
        &mut self,
        cfg: &HostChecksConfig,
        t_ns: u64,
        client_score: u64,
        server_score: u64,
        enabled: impl Fn(&str) -> bool,
    ) -> Vec<HostCheckEvent> {
        let total = client_score + server_score;
        if total > u64::from(cfg.dangerous_host_score) {
            self.dangerous_since.get_or_insert(t_ns);
        } else {
            self.dangerous_since = None;
        }
        let dangerous_for = self
            .dangerous_since
            .map_or(0, |s| t_ns.saturating_sub(s) / NS);
        let values = self.values(cfg, t_ns, client_score, server_score, dangerous_for);
        let mut out = Vec::new();
        for (i, (s, (value, threshold))) in SPECS.iter().zip(values).enumerate() {
            let bit = 1u32 << i;
            let was = self.engaged & bit != 0;
            // Cheap test first: `enabled` looks names up.
            if !was && value <= threshold {
                continue;
            }
            let now = value > threshold && enabled(s.alert_type);
            if was == now {
                continue;
            }
            self.engaged ^= bit;
            out.push(HostCheckEvent {
                alert_type: s.alert_type,
                side: s.side,
                engaged: now,
                value,
                threshold,
                client_pct: s.client_pct,
                roles: Roles {
                    client_attacker: s.role == Attacker,
                    client_victim: s.role == Victim,
                    ..Roles::default()
                },
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
