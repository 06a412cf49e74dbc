//! Flow checks: `run(record, config)` → the flow's alerts, predominant first.
//!
//! Pure and deterministic (DESIGN.md §4): the same record and configuration always give the same
//! alerts, so the client and server copies of a record agree wherever they are processed.
//! Checks that need the whole flow (no data exchanged, goodput, TCP issues, reset) only look at
//! the final record; risk-driven alerts fire as soon as the risk is set.

use std::net::IpAddr;

use netwarden_api::alert::Roles;
use netwarden_api::flow::{FlowRecord, FlowSource, proto};
use netwarden_api::risk::{self, RiskInfo};

use crate::checks::{CheckDef, ChecksConfig, FlowAlert, ScoreKind, def};

/// TCP flag bits as carried in `DirectionStats::tcp_flags`.
mod tcp {
    pub const SYN: u32 = 0x02;
    pub const RST: u32 = 0x04;
    pub const ACK: u32 = 0x10;
}

/// Risks whose alert marks the client attacker and the server victim (REFERENCE.md §3).
const CLIENT_ATTACKS_SERVER: &[&str] = &[
    "url_possible_xss",
    "url_possible_sql_injection",
    "url_possible_rce_injection",
    "http_suspicious_user_agent",
    "http_suspicious_url",
    "http_suspicious_header",
    "numeric_ip_host",
    "dns_suspicious_traffic",
];
/// Risks whose alert marks the client attacker only.
const CLIENT_ATTACKER: &[&str] = &[
    "suspicious_dga_domain",
    "tls_suspicious_esni_usage",
    "known_protocol_on_non_standard_port",
];
/// Packets above which an unsafe-protocol server is an attacker too.
const UNSAFE_SERVER_PACKETS: u64 = 10;

/// The alerts of `record`, one per type, highest score first (the first is the predominant one;
/// ties broken by type name for determinism).
pub fn run(record: &FlowRecord, config: &ChecksConfig) -> Vec<FlowAlert> {
    let mut out = Vec::new();
    risk_alerts(record, config, &mut out);
    let (Some(client), Some(server)) = (record.client_addr(), record.server_addr()) else {
        sort(&mut out);
        return out;
    };
    let ctx = Ctx {
        r: record,
        cfg: config,
        client,
        server,
        cli_local: config.is_local(client),
        srv_local: config.is_local(server),
        category: record.l7.as_ref().map_or("", |l| l.category.as_str()),
        l4: u8::try_from(record.l4_proto).unwrap_or(0),
    };
    blocklisted(&ctx, &mut out);
    category_checks(&ctx, &mut out);
    tcp_checks(&ctx, &mut out);
    broadcast_non_udp(&ctx, &mut out);
    unexpected_servers(&ctx, &mut out);
    sort(&mut out);
    out
}

fn sort(out: &mut [FlowAlert]) {
    out.sort_by(|a, b| b.score.cmp(&a.score).then(a.alert_type.cmp(b.alert_type)));
}

struct Ctx<'a> {
    r: &'a FlowRecord,
    cfg: &'a ChecksConfig,
    client: IpAddr,
    server: IpAddr,
    cli_local: bool,
    srv_local: bool,
    category: &'a str,
    l4: u8,
}

impl Ctx<'_> {
    fn push(&self, out: &mut Vec<FlowAlert>, t: &str, roles: Roles, message: String) {
        self.push_scored(out, t, None, None, roles, message);
    }

    fn push_scored(
        &self,
        out: &mut Vec<FlowAlert>,
        t: &str,
        score: Option<u16>,
        pct: Option<u8>,
        roles: Roles,
        message: String,
    ) {
        let Some(d) = def(t) else { return };
        if !self.cfg.enabled(t) || out.iter().any(|a| a.alert_type == t) {
            return;
        }
        out.push(FlowAlert::new(
            d,
            score.unwrap_or(d.score),
            pct.unwrap_or(d.client_pct),
            roles,
            message,
        ));
    }

    fn flags(&self) -> (u32, u32) {
        (
            self.r.c2s.as_ref().map_or(0, |d| d.tcp_flags),
            self.r.s2c.as_ref().map_or(0, |d| d.tcp_flags),
        )
    }

    fn packet_source(&self) -> bool {
        self.r.source == FlowSource::Pcap as i32
    }

    fn hostname(&self) -> &str {
        let l7 = self.r.l7.as_ref();
        l7.map(|l| l.hostname.as_str())
            .filter(|h| !h.is_empty())
            .or_else(|| l7.and_then(|l| l.tls.as_ref()).map(|t| t.sni.as_str()))
            .unwrap_or("")
    }
}

#[allow(clippy::fn_params_excessive_bools)]
const fn roles(ca: bool, cv: bool, sa: bool, sv: bool) -> Roles {
    Roles {
        client_attacker: ca,
        client_victim: cv,
        server_attacker: sa,
        server_victim: sv,
    }
}

/// Every catalogue risk that ntopng maps to an alert (REFERENCE.md §1b).
fn risk_alerts(r: &FlowRecord, cfg: &ChecksConfig, out: &mut Vec<FlowAlert>) {
    for id in r.risk_ids() {
        let Some(info) = risk::by_id(id) else {
            continue;
        };
        let Some(ntopng_id) = info.ntopng_alert_id else {
            continue;
        };
        if cfg.disable.iter().any(|d| d == info.key) {
            continue;
        }
        let roles = risk_roles(info, r);
        let detail = r
            .risk_details
            .iter()
            .find(|d| d.risk == u32::from(id))
            .map(|d| format!(": {}", d.detail))
            .unwrap_or_default();
        let d = CheckDef {
            alert_type: info.key,
            ntopng_id,
            score: info.score(),
            client_pct: info.client_pct,
            kind: ScoreKind::of(info.category),
            default_enabled: true,
            host: false,
        };
        out.push(FlowAlert::new(
            &d,
            d.score,
            d.client_pct,
            roles,
            format!("{}{detail}", info.name),
        ));
    }
}

fn risk_roles(info: &RiskInfo, r: &FlowRecord) -> Roles {
    let key = info.key;
    if CLIENT_ATTACKS_SERVER.contains(&key) {
        roles(true, false, false, true)
    } else if CLIENT_ATTACKER.contains(&key) {
        roles(true, false, false, false)
    } else if key == "unsafe_protocol" {
        let srv_packets = r.s2c.as_ref().map_or(0, |d| d.packets);
        roles(true, false, srv_packets > UNSAFE_SERVER_PACKETS, false)
    } else if key == "binary_application_transfer" {
        roles(false, false, true, false)
    } else {
        Roles::default()
    }
}

/// Blocklisted peers and malware category (REFERENCE.md §1a: ids 1, 9, 13).
fn blocklisted(c: &Ctx<'_>, out: &mut Vec<FlowAlert>) {
    let bl = &c.cfg.blocklist;
    let host = c.hostname();
    let cli_bad = bl.has_ip(c.client);
    let srv_bad = bl.has_ip(c.server) || bl.has_domain(host);
    if cli_bad && !srv_bad && c.srv_local {
        let replied = c.r.s2c.as_ref().is_some_and(|d| d.packets > 0);
        c.push_scored(
            out,
            "blacklisted_client_contact",
            (!replied).then_some(10),
            None,
            roles(true, false, false, true),
            format!(
                "blocklisted client {} contacted local host {}",
                c.client, c.server
            ),
        );
    }
    if srv_bad && c.cli_local {
        let icmp = matches!(c.l4, proto::ICMP | proto::ICMPV6);
        let what = if bl.has_ip(c.server) {
            c.server.to_string()
        } else {
            host.to_owned()
        };
        c.push_scored(
            out,
            "blacklisted_server_contact",
            icmp.then_some(10),
            None,
            roles(true, false, true, false),
            format!(
                "local host {} contacted blocklisted server {what}",
                c.client
            ),
        );
    }
    if c.category.eq_ignore_ascii_case("malware") && !cli_bad && !srv_bad {
        c.push(
            out,
            "blacklisted_flow",
            roles(true, false, true, false),
            "flow category is Malware".into(),
        );
    }
}

/// Categories of the `remote_access` check (and of the `remote_connection` host check).
fn remote_access_category(cat: &str) -> bool {
    [
        "RemoteAccess",
        "VPN",
        "Download",
        "Download-FileTransfer-FileSharing",
    ]
    .iter()
    .any(|k| cat.eq_ignore_ascii_case(k))
}

/// Whether `record` is a remote-access session across the network edge (what the
/// `remote_access` flow check fires on, whether or not that check runs).
pub fn is_remote_access(record: &FlowRecord, config: &ChecksConfig) -> bool {
    let cat = record.l7.as_ref().map_or("", |l| l.category.as_str());
    if !remote_access_category(cat) {
        return false;
    }
    let (Some(c), Some(s)) = (record.client_addr(), record.server_addr()) else {
        return false;
    };
    !(config.is_local(c) && config.is_local(s))
}

/// Remote-to-local insecure protocol, remote access, web mining.
fn category_checks(c: &Ctx<'_>, out: &mut Vec<FlowAlert>) {
    let cat = c.category;
    let bad_category =
        cat.eq_ignore_ascii_case("malware") || cat.eq_ignore_ascii_case("banned_site");
    let unsafe_proto = risk::by_key("unsafe_protocol").is_some_and(|i| c.r.has_risk(i.id));
    if !c.cli_local && c.srv_local && (unsafe_proto || bad_category) {
        c.push(
            out,
            "remote_to_local_insecure_proto",
            roles(true, false, false, true),
            format!(
                "remote client {} used an insecure protocol ({}) on local server {}",
                c.client,
                crate::state::l7_name(c.r),
                c.server
            ),
        );
    }
    if remote_access_category(cat) && !(c.cli_local && c.srv_local) {
        c.push(
            out,
            "remote_access",
            Roles::default(),
            format!(
                "{cat} session ({}) across the network edge",
                crate::state::l7_name(c.r)
            ),
        );
    }
    if cat.eq_ignore_ascii_case("mining") {
        c.push(
            out,
            "web_mining",
            roles(true, false, false, false),
            "cryptocurrency mining traffic".into(),
        );
    }
}

/// TCP checks on the final record (packet sources for the ones that need packets).
fn tcp_checks(c: &Ctx<'_>, out: &mut Vec<FlowAlert>) {
    if c.l4 != proto::TCP {
        return;
    }
    let r = c.r;
    let (cf, sf) = c.flags();
    let (c2s, s2c) = (r.c2s.unwrap_or_default(), r.s2c.unwrap_or_default());
    if c.packet_source() && (c2s.zero_window > 0 || s2c.zero_window > 0) {
        c.push(
            out,
            "tcp_zero_window",
            Roles::default(),
            format!(
                "TCP zero window (client {}, server {})",
                c2s.zero_window, s2c.zero_window
            ),
        );
    }
    if !r.is_final() {
        return;
    }
    // Saturating: exporters send absurd counters too.
    let goodput = c2s.goodput_bytes.saturating_add(s2c.goodput_bytes);
    let bytes = c2s.bytes.saturating_add(s2c.bytes);
    let packets = c2s.packets.saturating_add(s2c.packets);
    if c.packet_source() && goodput == 0 {
        c.push(
            out,
            "tcp_no_data_exchanged",
            Roles::default(),
            format!("TCP flow ended after {packets} packets without payload"),
        );
    }
    let handshake = cf & tcp::SYN != 0 && sf & (tcp::SYN | tcp::ACK) == (tcp::SYN | tcp::ACK);
    let exempt = {
        let l7 = crate::state::l7_name(r);
        c.category.eq_ignore_ascii_case("chat") || l7.contains("SSH") || l7.contains("Telnet")
    };
    if c.packet_source() && handshake && packets > 3 && goodput > 0 && !exempt {
        let ratio = u128::from(goodput) * 100 / u128::from(bytes.max(1));
        if ratio <= u128::from(c.cfg.low_goodput_pct) {
            c.push(
                out,
                "low_goodput",
                Roles::default(),
                format!("goodput {ratio}% of {bytes} bytes"),
            );
        }
    }
    let reset = (cf | sf) & tcp::RST != 0;
    let rst_only = reset && (cf | sf) & !(tcp::RST | tcp::ACK) == 0;
    if reset {
        c.push(
            out,
            "tcp_flow_reset",
            Roles::default(),
            if rst_only {
                "RST-only TCP flow"
            } else {
                "TCP flow reset"
            }
            .into(),
        );
    }
    let pct = u64::from(c.cfg.tcp_issues_pct);
    let issue = |n: u32, p: u64| p > 0 && u128::from(n) * 100 > u128::from(pct) * u128::from(p);
    let over = [
        ("retransmissions", c2s.retransmissions, s2c.retransmissions),
        ("out-of-order", c2s.out_of_order, s2c.out_of_order),
        ("lost", c2s.lost, s2c.lost),
    ]
    .into_iter()
    .filter(|(_, a, b)| issue(*a, c2s.packets) || issue(*b, s2c.packets))
    .map(|(n, a, b)| format!("{n} {a}/{b}"))
    .collect::<Vec<_>>();
    if !over.is_empty() {
        c.push(
            out,
            "tcp_packets_issues",
            Roles::default(),
            format!("TCP issues above {pct}% of packets: {}", over.join(", ")),
        );
    }
}

/// Non-UDP traffic to a broadcast or multicast address.
fn broadcast_non_udp(c: &Ctx<'_>, out: &mut Vec<FlowAlert>) {
    if c.l4 == proto::UDP || matches!(c.l4, proto::IGMP | proto::ICMPV6) {
        return;
    }
    let broadcast = match c.server {
        IpAddr::V4(v4) => {
            v4.is_broadcast()
                || v4.is_multicast()
                || c.cfg.local_networks.iter().any(|n| match n.addr {
                    IpAddr::V4(net) if n.prefix < 31 => {
                        u32::from(net) | (u32::MAX >> n.prefix) == u32::from(v4)
                    }
                    _ => false,
                })
        }
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    if broadcast {
        c.push(
            out,
            "broadcast_non_udp_traffic",
            roles(true, false, false, false),
            format!(
                "{} traffic to broadcast/multicast {}",
                proto::name(c.l4),
                c.server
            ),
        );
    }
}

/// DHCP/DNS/SMTP/NTP servers not on their allow-list.
fn unexpected_servers(c: &Ctx<'_>, out: &mut Vec<FlowAlert>) {
    let l7 = crate::state::l7_name(c.r);
    let port = u16::try_from(c.r.server_port).unwrap_or(0);
    let udp = c.l4 == proto::UDP;
    let cases: [(&str, bool, &[crate::checks::Cidr]); 4] = [
        (
            "unexpected_dhcp_server",
            udp && (port == 67 || l7 == "DHCP"),
            &c.cfg.dhcp_servers,
        ),
        (
            "unexpected_dns_server",
            port == 53 || l7.starts_with("DNS"),
            &c.cfg.dns_servers,
        ),
        (
            "unexpected_smtp_server",
            !udp && (matches!(port, 25 | 465 | 587) || l7.starts_with("SMTP")),
            &c.cfg.smtp_servers,
        ),
        (
            "unexpected_ntp_server",
            udp && (port == 123 || l7 == "NTP"),
            &c.cfg.ntp_servers,
        ),
    ];
    for (t, is_service, allowed) in cases {
        if is_service && c.cfg.enabled(t) && !crate::checks::net::in_any(allowed, c.server) {
            c.push(
                out,
                t,
                roles(true, false, false, false),
                format!(
                    "{} answered as {l7} server and is not on the allow-list",
                    c.server
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
