//! One test that triggers each flow check and one that does not; roles and splits.

use netwarden_api::flow::{DirectionStats, FlowUpdate, L7Info, ip_to_bytes};
use netwarden_api::risk;

use super::*;
use crate::checks::{Blocklist, CHECKS};

const SYN_ACK_PSH: u32 = 0x02 | 0x10 | 0x08;

fn rec(client: &str, server: &str, l4: u8, sport: u32) -> FlowRecord {
    FlowRecord {
        flow_id: 1,
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 50000,
        server_port: sport,
        l4_proto: u32::from(l4),
        source: FlowSource::Pcap as i32,
        update: FlowUpdate::Final as i32,
        first_seen_ns: 1_000,
        last_seen_ns: 2_000,
        c2s: Some(DirectionStats {
            packets: 10,
            bytes: 2000,
            goodput_bytes: 1500,
            tcp_flags: SYN_ACK_PSH,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 10,
            bytes: 8000,
            goodput_bytes: 7000,
            tcp_flags: SYN_ACK_PSH,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn healthy() -> FlowRecord {
    rec("10.0.0.1", "93.184.216.34", proto::TCP, 443)
}

fn types(alerts: &[FlowAlert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.alert_type).collect()
}

fn all_on() -> ChecksConfig {
    ChecksConfig {
        enable: CHECKS.iter().map(|c| c.alert_type.to_owned()).collect(),
        ..ChecksConfig::default()
    }
}

fn with_risk(key: &str) -> FlowRecord {
    let mut r = healthy();
    r.set_risk(risk::by_key(key).unwrap().id, Some("detail".into()));
    r
}

#[test]
fn a_healthy_flow_raises_nothing_even_with_every_check_on() {
    assert!(run(&healthy(), &all_on()).is_empty());
}

#[test]
fn every_mapped_risk_raises_its_alert_with_the_catalogue_score_and_split() {
    let cfg = ChecksConfig::default();
    for info in risk::CATALOGUE {
        let r = with_risk(info.key);
        let alerts = run(&r, &cfg);
        if info.ntopng_alert_id.is_none() {
            assert!(alerts.is_empty(), "{} is not mapped in ntopng", info.key);
            continue;
        }
        assert_eq!(alerts.len(), 1, "{}: {alerts:?}", info.key);
        let a = &alerts[0];
        let (cli, srv) = info.split();
        assert_eq!(
            (a.alert_type, a.score, a.client_score, a.server_score),
            (info.key, info.score(), cli, srv)
        );
        assert_eq!(a.kind, ScoreKind::of(info.category));
        assert!(a.message.contains("detail"));
    }
}

#[test]
fn risk_roles_follow_the_reference_table() {
    let cfg = ChecksConfig::default();
    let role = |k: &str| run(&with_risk(k), &cfg)[0].roles;
    assert_eq!(
        role("url_possible_sql_injection"),
        roles(true, false, false, true)
    );
    assert_eq!(
        role("dns_suspicious_traffic"),
        roles(true, false, false, true)
    );
    assert_eq!(
        role("suspicious_dga_domain"),
        roles(true, false, false, false)
    );
    assert_eq!(
        role("binary_application_transfer"),
        roles(false, false, true, false)
    );
    assert_eq!(role("tls_selfsigned_certificate"), Roles::default());
    // Unsafe protocol: the server is an attacker too once it sent more than 10 packets.
    assert_eq!(role("unsafe_protocol"), roles(true, false, false, false));
    let mut r = with_risk("unsafe_protocol");
    r.s2c.as_mut().unwrap().packets = 11;
    assert_eq!(run(&r, &cfg)[0].roles, roles(true, false, true, false));
}

#[test]
fn predominant_first_and_one_alert_per_type() {
    let mut r = with_risk("tls_selfsigned_certificate");
    r.set_risk(risk::by_key("url_possible_xss").unwrap().id, None);
    r.set_risk(risk::by_key("numeric_ip_host").unwrap().id, None);
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(
        types(&a),
        [
            "url_possible_xss",
            "tls_selfsigned_certificate",
            "numeric_ip_host"
        ]
    );
    let xss = &a[0];
    assert_eq!((xss.client_score, xss.server_score), (135, 15));
}

#[test]
fn disabled_risks_and_checks_do_not_run() {
    let cfg = ChecksConfig {
        disable: vec!["tls_selfsigned_certificate".into()],
        ..ChecksConfig::default()
    };
    assert!(run(&with_risk("tls_selfsigned_certificate"), &cfg).is_empty());
    assert_eq!(cfg.unknown_names(), Vec::<String>::new());
    let bad = ChecksConfig {
        enable: vec!["no_such_check".into()],
        ..ChecksConfig::default()
    };
    assert_eq!(bad.unknown_names(), ["no_such_check"]);
}

#[test]
fn low_goodput() {
    let mut r = healthy();
    r.c2s.as_mut().unwrap().goodput_bytes = 100;
    r.s2c.as_mut().unwrap().goodput_bytes = 100;
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(types(&a), ["low_goodput"]);
    assert_eq!(
        (a[0].score, a[0].client_score, a[0].kind),
        (10, 5, ScoreKind::Network)
    );
    // Not on a periodic update, not for SSH, not without a handshake.
    r.update = FlowUpdate::Periodic as i32;
    assert!(run(&r, &ChecksConfig::default()).is_empty());
    r.update = FlowUpdate::Final as i32;
    r.l7 = Some(L7Info {
        app_protocol: "SSH".into(),
        ..Default::default()
    });
    assert!(run(&r, &ChecksConfig::default()).is_empty());
}

#[test]
fn tcp_zero_window_and_no_data() {
    let mut r = healthy();
    r.s2c.as_mut().unwrap().zero_window = 2;
    assert_eq!(
        types(&run(&r, &ChecksConfig::default())),
        ["tcp_zero_window"]
    );
    let mut r = healthy();
    r.c2s.as_mut().unwrap().goodput_bytes = 0;
    r.s2c.as_mut().unwrap().goodput_bytes = 0;
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(types(&a), ["tcp_no_data_exchanged"]);
    assert_eq!((a[0].client_score, a[0].server_score), (9, 1));
    // NetFlow records do not count packets precisely enough: packet-only checks skip them.
    r.source = FlowSource::Netflow9 as i32;
    assert!(run(&r, &ChecksConfig::default()).is_empty());
}

#[test]
fn tcp_reset_and_packet_issues_are_off_by_default() {
    let mut r = healthy();
    r.s2c.as_mut().unwrap().tcp_flags |= 0x04;
    r.c2s.as_mut().unwrap().retransmissions = 3;
    assert!(run(&r, &ChecksConfig::default()).is_empty());
    assert_eq!(
        types(&run(&r, &all_on())),
        ["tcp_packets_issues", "tcp_flow_reset"]
    );
    r.c2s.as_mut().unwrap().retransmissions = 1;
    assert_eq!(
        types(&run(&r, &all_on())),
        ["tcp_flow_reset"],
        "10% is below 15%"
    );
}

#[test]
fn remote_to_local_insecure_protocol() {
    let mut r = rec("203.0.113.5", "192.168.1.10", proto::TCP, 23);
    r.set_risk(risk::by_key("unsafe_protocol").unwrap().id, None);
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(
        types(&a),
        ["remote_to_local_insecure_proto", "unsafe_protocol"]
    );
    assert_eq!(a[0].roles, roles(true, false, false, true));
    // Local to remote: no.
    let mut r = rec("192.168.1.10", "203.0.113.5", proto::TCP, 23);
    r.set_risk(risk::by_key("unsafe_protocol").unwrap().id, None);
    assert_eq!(
        types(&run(&r, &ChecksConfig::default())),
        ["unsafe_protocol"]
    );
}

#[test]
fn remote_access_across_the_edge_only() {
    let mut r = rec("10.0.0.1", "198.51.100.1", proto::TCP, 3389);
    r.l7 = Some(L7Info {
        app_protocol: "RDP".into(),
        category: "RemoteAccess".into(),
        ..Default::default()
    });
    assert_eq!(types(&run(&r, &ChecksConfig::default())), ["remote_access"]);
    r.server_ip = ip_to_bytes("10.0.0.2".parse().unwrap());
    assert!(run(&r, &ChecksConfig::default()).is_empty());
}

#[test]
fn broadcast_non_udp() {
    let r = rec("10.0.0.1", "10.255.255.255", proto::TCP, 80);
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(types(&a), ["broadcast_non_udp_traffic"]);
    assert!(a[0].roles.client_attacker);
    let r = rec("10.0.0.1", "255.255.255.255", proto::UDP, 67);
    assert!(run(&r, &ChecksConfig::default()).is_empty());
}

#[test]
fn unexpected_servers_with_allow_lists() {
    let mut cfg = ChecksConfig {
        enable: vec![
            "unexpected_dns_server".into(),
            "unexpected_ntp_server".into(),
        ],
        dns_servers: vec!["10.0.0.53".parse().unwrap()],
        ..ChecksConfig::default()
    };
    let dns = rec("10.0.0.1", "8.8.8.8", proto::UDP, 53);
    let a = run(&dns, &cfg);
    assert_eq!(types(&a), ["unexpected_dns_server"]);
    assert!(a[0].roles.client_attacker);
    let ok = rec("10.0.0.1", "10.0.0.53", proto::UDP, 53);
    assert!(run(&ok, &cfg).is_empty());
    assert_eq!(
        types(&run(&rec("10.0.0.1", "1.2.3.4", proto::UDP, 123), &cfg)),
        ["unexpected_ntp_server"]
    );
    cfg.enable.clear();
    assert!(run(&dns, &cfg).is_empty(), "off by default");
}

#[test]
fn blocklisted_contacts() {
    let cfg = ChecksConfig {
        blocklist: Blocklist::from_entries(["198.51.100.66", "evil.example", "203.0.113.0/24"]),
        ..ChecksConfig::default()
    };
    let r = rec("10.0.0.1", "198.51.100.66", proto::TCP, 443);
    let a = run(&r, &cfg);
    assert_eq!(types(&a), ["blacklisted_server_contact"]);
    assert_eq!(
        (a[0].score, a[0].client_score, a[0].server_score),
        (200, 180, 20)
    );
    assert_eq!(a[0].roles, roles(true, false, true, false));
    let mut icmp = rec("10.0.0.1", "198.51.100.66", proto::ICMP, 0);
    icmp.s2c = None;
    assert_eq!(run(&icmp, &cfg)[0].score, 10);
    let mut by_name = healthy();
    by_name.l7 = Some(L7Info {
        hostname: "cdn.evil.example".into(),
        ..Default::default()
    });
    assert_eq!(types(&run(&by_name, &cfg)), ["blacklisted_server_contact"]);
    let inbound = rec("203.0.113.9", "10.0.0.1", proto::TCP, 22);
    let a = run(&inbound, &cfg);
    assert_eq!(types(&a), ["blacklisted_client_contact"]);
    assert_eq!(
        (a[0].score, a[0].roles),
        (50, roles(true, false, false, true))
    );
    let mut unanswered = inbound.clone();
    unanswered.s2c = None;
    assert_eq!(run(&unanswered, &cfg)[0].score, 10);
    assert!(run(&healthy(), &cfg).is_empty());
}

#[test]
fn malware_category_and_mining() {
    let mut r = healthy();
    r.l7 = Some(L7Info {
        category: "Malware".into(),
        ..Default::default()
    });
    let a = run(&r, &ChecksConfig::default());
    assert_eq!(types(&a), ["blacklisted_flow"]);
    r.l7 = Some(L7Info {
        category: "Mining".into(),
        ..Default::default()
    });
    assert_eq!(types(&run(&r, &ChecksConfig::default())), ["web_mining"]);
}

#[test]
fn deterministic() {
    let mut r = with_risk("tls_selfsigned_certificate");
    r.c2s.as_mut().unwrap().goodput_bytes = 1;
    let cfg = ChecksConfig::default();
    assert_eq!(run(&r, &cfg), run(&r.clone(), &cfg));
}

#[test]
fn absurd_counters_do_not_panic() {
    let mut r = healthy();
    for d in [r.c2s.as_mut().unwrap(), r.s2c.as_mut().unwrap()] {
        d.packets = u64::MAX;
        d.bytes = u64::MAX;
        d.goodput_bytes = u64::MAX;
        d.retransmissions = u32::MAX;
        d.zero_window = u32::MAX;
    }
    r.first_seen_ns = u64::MAX;
    r.last_seen_ns = 0;
    let a = run(&r, &all_on());
    assert!(a.iter().any(|a| a.alert_type == "tcp_zero_window"), "{a:?}");
    let empty = FlowRecord::default();
    assert!(run(&empty, &all_on()).is_empty());
}
