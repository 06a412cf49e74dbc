use std::net::{IpAddr, Ipv4Addr};

use super::*;

/// A time on a minute and a five-minute boundary, so buckets start with the tests.
const T0: u64 = 1_700_000_100 * NS;

fn on(_: &str) -> bool {
    true
}

fn peer(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i))
}

/// A final record's facts of a flow from (`as_client`) or to the host, `t_ns` after `T0`.
fn facts(as_client: bool, t_ns: u64) -> FlowFacts {
    FlowFacts {
        as_client,
        new_flow: true,
        t_ns: T0 + t_ns,
        peer: peer(1),
        ..FlowFacts::default()
    }
}

/// Feeds `n` flows spread evenly over `secs` seconds, each built by `f(i, base facts)`.
fn feed(
    s: &mut HostCheckState,
    cfg: &HostChecksConfig,
    n: u64,
    secs: u64,
    as_client: bool,
    f: impl Fn(u64, &mut FlowFacts),
) {
    for i in 0..n {
        let mut x = facts(as_client, i * secs * NS / n);
        f(i, &mut x);
        s.observe(&x, cfg);
    }
}

fn types(ev: &[HostCheckEvent]) -> Vec<(&'static str, &'static str, bool)> {
    ev.iter()
        .map(|e| (e.alert_type, e.side, e.engaged))
        .collect()
}

#[test]
fn syn_scan_engages_as_attacker_then_releases() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    // 300 unanswered SYNs over 30 s: spread so that the flow flood does not fire.
    feed(&mut s, &cfg, 300, 30, true, |_, f| {
        f.unanswered_syn = true;
        f.incomplete = true;
    });
    let ev = s.evaluate(&cfg, T0 + 30 * NS, 0, 0, on);
    let syn = ev.iter().find(|e| e.alert_type == "syn_scan").unwrap();
    assert!(syn.engaged && syn.roles.client_attacker && !syn.roles.client_victim);
    assert_eq!((syn.value, syn.threshold, syn.client_pct), (300, 256, 100));
    assert!(ev.iter().any(|e| e.alert_type == "scan_detection"));
    assert!(!ev.iter().any(|e| e.alert_type == "flow_flood"), "{ev:?}");
    // Same state, evaluated again: nothing new (idempotent).
    assert!(s.evaluate(&cfg, T0 + 30 * NS, 0, 0, on).is_empty());
    // Three minutes later the window is empty: released.
    let ev = s.evaluate(&cfg, T0 + 210 * NS, 0, 0, on);
    assert!(ev.iter().all(|e| !e.engaged));
    assert!(ev.iter().any(|e| e.alert_type == "syn_scan"));
    assert!(!s.any_engaged());
}

#[test]
fn syn_scan_victim_side_and_below_threshold() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 200, 20, false, |_, f| f.unanswered_syn = true);
    assert!(
        s.evaluate(&cfg, T0 + 20 * NS, 0, 0, on).is_empty(),
        "200 is below 256"
    );
    for i in 0..100u64 {
        let mut f = facts(false, 20 * NS + i * 100_000_000);
        f.unanswered_syn = true;
        s.observe(&f, &cfg);
    }
    let ev = s.evaluate(&cfg, T0 + 30 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("syn_scan", "server", true)]);
    assert!(ev[0].roles.client_victim && ev[0].client_pct == 0);
}

#[test]
fn fin_and_rst_scans_name_both_sides() {
    let cfg = HostChecksConfig::default();
    for (check, set) in [
        (
            "fin_scan",
            (|f: &mut FlowFacts| f.stealth_probe = true) as fn(&mut FlowFacts),
        ),
        ("rst_scan", |f: &mut FlowFacts| f.rst_probe = true),
    ] {
        for as_client in [true, false] {
            let mut s = HostCheckState::default();
            feed(&mut s, &cfg, 256, 40, as_client, |_, f| set(f));
            assert!(
                s.evaluate(&cfg, T0 + 40 * NS, 0, 0, on).is_empty(),
                "{check}: 256 is not above 256"
            );
            feed(&mut s, &cfg, 2, 1, as_client, |_, f| {
                f.t_ns += 40 * NS;
                set(f);
            });
            let ev = s.evaluate(&cfg, T0 + 41 * NS, 0, 0, on);
            let side = if as_client { "client" } else { "server" };
            assert_eq!(types(&ev), [(check, side, true)], "{check}");
            assert_eq!(ev[0].roles.client_attacker, as_client);
            assert_eq!(ev[0].roles.client_victim, !as_client);
        }
    }
}

#[test]
fn flow_flood_within_a_second() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    for i in 0..300u64 {
        s.observe(&facts(true, 5 * NS + i * 1_000_000), &cfg);
    }
    let t = T0 + 5 * NS + 300_000_000;
    let ev = s.evaluate(&cfg, t, 0, 0, on);
    assert_eq!(types(&ev), [("flow_flood", "client", true)]);
    assert_eq!(ev[0].value, 300);
    assert!(!s.evaluate(&cfg, t, 0, 0, |t| t != "flow_flood")[0].engaged);
    // 200 new flows in a second is no flood.
    let mut quiet = HostCheckState::default();
    for i in 0..200u64 {
        quiet.observe(&facts(false, i * 5_000_000), &cfg);
    }
    assert!(quiet.evaluate(&cfg, T0 + NS, 0, 0, on).is_empty());
}

#[test]
fn syn_flood_is_a_per_second_rate_over_a_minute() {
    let cfg = HostChecksConfig::default();
    // 200 half-open flows per second for a minute: below 256/s.
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 12_000, 60, false, |_, f| {
        f.half_open = true;
        f.new_flow = false;
    });
    assert!(s.evaluate(&cfg, T0 + 60 * NS, 0, 0, on).is_empty());
    // 1,000 per second for 20 s, spoofed clients: the server is the victim.
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 20_000, 20, false, |_, f| {
        f.half_open = true;
        f.new_flow = false;
    });
    let ev = s.evaluate(&cfg, T0 + 20 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("syn_flood", "server", true)]);
    assert_eq!((ev[0].value, ev[0].threshold), (20_000, 256 * 60));
}

#[test]
fn icmp_and_dns_floods_count_packets_of_every_record() {
    let cfg = HostChecksConfig::default();
    for check in ["icmp_flood", "dns_flood"] {
        let set = |f: &mut FlowFacts, n: u64| {
            if check == "icmp_flood" {
                f.icmp_packets = n;
            } else {
                f.dns_queries = n;
            }
            f.new_flow = false;
        };
        // One long flow whose periodic records carry 4,000 packets every 2 s (2,000/s).
        let mut s = HostCheckState::default();
        feed(&mut s, &cfg, 10, 20, true, |_, f| set(f, 4000));
        let ev = s.evaluate(&cfg, T0 + 20 * NS, 0, 0, on);
        assert_eq!(types(&ev), [(check, "client", true)], "{check}");
        assert!(ev[0].roles.client_attacker);
        // 100 per second is normal.
        let mut s = HostCheckState::default();
        feed(&mut s, &cfg, 60, 60, false, |_, f| set(f, 100));
        assert!(
            s.evaluate(&cfg, T0 + 60 * NS, 0, 0, on).is_empty(),
            "{check}"
        );
    }
}

#[test]
fn too_many_ports_and_peers_contacted() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    // 120 ports on one server: a port sweep, but one peer.
    feed(&mut s, &cfg, 120, 100, true, |i, f| {
        f.server_port = Some(1000 + i as u16);
    });
    let ev = s.evaluate(&cfg, T0 + 100 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("server_ports_contacts", "client", true)]);
    assert!((110..=130).contains(&ev[0].value), "{}", ev[0].value);
    // 300 hosts on one port.
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 300, 100, true, |i, f| {
        f.server_port = Some(443);
        f.peer = peer(i as u32);
    });
    let ev = s.evaluate(&cfg, T0 + 100 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("host_scanner", "client", true)]);
    // 80 ports and 200 peers: neither.
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 200, 100, true, |i, f| {
        f.server_port = Some(1000 + (i % 80) as u16);
        f.peer = peer(i as u32);
    });
    assert!(s.evaluate(&cfg, T0 + 100 * NS, 0, 0, on).is_empty());
    // As server, ports and peers are not "contacted".
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 300, 100, false, |i, f| {
        f.server_port = Some(i as u16);
        f.peer = peer(i as u32);
    });
    assert!(s.evaluate(&cfg, T0 + 100 * NS, 0, 0, on).is_empty());
    // Five minutes of quiet and both windows are empty: released.
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 300, 10, true, |i, f| f.peer = peer(i as u32));
    assert!(s.evaluate(&cfg, T0 + 10 * NS, 0, 0, on)[0].engaged);
    let ev = s.evaluate(&cfg, T0 + 700 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("host_scanner", "client", false)]);
}

#[test]
fn server_contacts_unless_the_host_serves_them() {
    let cfg = HostChecksConfig::default();
    for (service, check) in [
        (Service::Dns, "dns_server_contacts"),
        (Service::Smtp, "smtp_server_contacts"),
        (Service::Ntp, "ntp_server_contacts"),
    ] {
        let mut s = HostCheckState::default();
        feed(&mut s, &cfg, 5, 10, true, |i, f| {
            f.service = Some(service);
            f.peer = peer(i as u32);
        });
        assert!(
            s.evaluate(&cfg, T0 + 10 * NS, 0, 0, on).is_empty(),
            "5 is fine"
        );
        feed(&mut s, &cfg, 6, 10, true, |i, f| {
            f.service = Some(service);
            f.peer = peer(100 + i as u32);
        });
        let ev = s.evaluate(&cfg, T0 + 10 * NS, 0, 0, on);
        assert_eq!(types(&ev), [(check, "client", true)]);
        // 11 servers, estimated in 128 bits (two collide here).
        assert!((9..=12).contains(&ev[0].value), "{}", ev[0].value);
        assert_eq!(ev[0].threshold, 5);
        assert!(!ev[0].roles.client_attacker && !ev[0].roles.client_victim);
        // The host answers that service itself: a resolver or relay, released.
        let mut x = facts(false, 11 * NS);
        x.service = Some(service);
        x.answered = true;
        s.observe(&x, &cfg);
        let ev = s.evaluate(&cfg, T0 + 11 * NS, 0, 0, on);
        assert_eq!(types(&ev), [(check, "client", false)]);
    }
}

#[test]
fn domain_names_contacts() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 200, 60, true, |i, f| {
        f.domain = window::hash_name(&format!("host{i}.example"));
    });
    assert!(s.evaluate(&cfg, T0 + 60 * NS, 0, 0, on).is_empty());
    feed(&mut s, &cfg, 200, 60, true, |i, f| {
        f.domain = window::hash_name(&format!("other{i}.example"));
    });
    let ev = s.evaluate(&cfg, T0 + 60 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("domain_names_contacts", "client", true)]);
    assert_eq!(ev[0].client_pct, 50);
}

#[test]
fn remote_connection_while_a_session_lasts() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    s.observe(&facts(true, 0), &cfg);
    assert!(s.evaluate(&cfg, T0, 0, 0, on).is_empty());
    for t in [0, 60, 120] {
        let mut f = facts(true, t * NS);
        f.remote_access = true;
        s.observe(&f, &cfg);
    }
    let ev = s.evaluate(&cfg, T0 + 120 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("remote_connection", "client", true)]);
    assert!(s.evaluate(&cfg, T0 + 239 * NS, 0, 0, on).is_empty());
    let ev = s.evaluate(&cfg, T0 + 241 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("remote_connection", "client", false)]);
}

#[test]
fn score_threshold_and_dangerous_host() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    let ev = s.evaluate(&cfg, 0, 100, 5001, on);
    assert_eq!(types(&ev), [("score_threshold", "server", true)]);
    assert!(ev[0].roles.client_victim);
    assert!(
        s.evaluate(&cfg, 200 * NS, 100, 5001, on).is_empty(),
        "not sustained yet"
    );
    let ev = s.evaluate(&cfg, 301 * NS, 100, 5001, on);
    assert_eq!(types(&ev), [("dangerous_host", "client", true)]);
    assert!(ev[0].roles.client_attacker);
    let ev = s.evaluate(&cfg, 302 * NS, 0, 0, on);
    assert_eq!(ev.iter().filter(|e| !e.engaged).count(), 2);
    // 999 for an hour is not dangerous.
    let mut s = HostCheckState::default();
    assert!(s.evaluate(&cfg, 0, 999, 0, on).is_empty());
    assert!(s.evaluate(&cfg, 3600 * NS, 999, 0, on).is_empty());
}

#[test]
fn period_peers_count_and_reset() {
    let cfg = HostChecksConfig::default();
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 40, 10, true, |i, f| {
        f.peer = peer(i as u32 % 20);
    });
    assert_eq!(s.take_period_peers(), 20);
    assert_eq!(s.take_period_peers(), 0);
}

#[test]
fn thresholds_are_configurable() {
    let cfg: HostChecksConfig =
        serde_saphyr::from_str("{syn_flood: 10, dns_server_contacts: 1}").unwrap();
    assert_eq!(
        (cfg.syn_flood, cfg.dns_server_contacts, cfg.fin_scan),
        (10, 1, 256)
    );
    assert!(serde_saphyr::from_str::<HostChecksConfig>("{syn_floods: 1}").is_err());
    let mut s = HostCheckState::default();
    feed(&mut s, &cfg, 601, 60, true, |_, f| f.half_open = true);
    let ev = s.evaluate(&cfg, T0 + 60 * NS, 0, 0, on);
    assert_eq!(types(&ev), [("syn_flood", "client", true)]);
}
