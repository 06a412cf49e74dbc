//! The analysis core on real traffic: corpus pcaps through the sensor pipeline into the
//! engine's state, asserting the alerts (with attackers and victims) and the scores; generated
//! records for the host checks; exclusions; determinism and shard independence.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use netwarden_api::alert::{Alert, AlertState, Entity};
use netwarden_api::flow::{FlowRecord, FlowUpdate, Role};
use netwarden_api::names::shard_of;
use netwarden_engine::alerts::AnalysisConfig;
use netwarden_engine::exclusions::{Exclusions, parse_yaml};
use netwarden_engine::hosts::HostKey;
use netwarden_engine::state::{State, StateConfig};
use netwarden_sensor::pipeline::{self, SensorConfig};
use netwarden_testkit::testdata;

mod common;

use common::syn;

fn corpus(name: &str) -> Vec<FlowRecord> {
    let (records, _) = pipeline::flows_from_pcap(
        &testdata(format!("ndpi/{name}")),
        &SensorConfig::default(),
        false,
    )
    .unwrap();
    records
}

fn run(records: Vec<FlowRecord>) -> State {
    // These scores are the checks'. The corpus captures are spliced over months, so the service
    // map would add `new_service` after its learning period (tests/servicemap*.rs test it).
    let mut s = State::new(&StateConfig {
        servicemap: netwarden_engine::servicemap::ServiceMapConfig {
            enabled: false,
            ..Default::default()
        },
        ..StateConfig::default()
    });
    s.apply_batch(records);
    s
}

fn alerts(s: &State) -> Vec<Alert> {
    s.analysis.store.iter().map(|r| r.alert.clone()).collect()
}

fn find<'a>(all: &'a [Alert], t: &str) -> Vec<&'a Alert> {
    all.iter().filter(|a| a.alert_type == t).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(s: &str) -> HostKey {
    HostKey { ip: ip(s), vlan: 0 }
}

fn accumulated(s: &State, h: &str) -> u64 {
    s.analysis
        .scores
        .host(&host(h))
        .map_or(0, |h| h.accumulated)
}

fn client_server(a: &Alert) -> (IpAddr, IpAddr) {
    let f = a.flow.as_ref().unwrap();
    (f.client_addr().unwrap(), f.server_addr().unwrap())
}

#[test]
fn sql_injection_names_the_attacker_and_the_victim() {
    let s = run(corpus("sql_injection.pcap"));
    let all = alerts(&s);
    let sqli = find(&all, "url_possible_sql_injection");
    assert_eq!(sqli.len(), 1, "{all:#?}");
    let a = sqli[0];
    assert_eq!(client_server(a), (ip("192.168.3.109"), ip("192.168.3.107")));
    assert!(a.roles.client_attacker && a.roles.server_victim && !a.roles.server_attacker);
    assert_eq!((a.score, a.client_score, a.server_score), (150, 135, 15));
    assert_eq!(a.severity, netwarden_api::alert::Severity::Error);
    assert_eq!(a.entity, Entity::Flow);
    // numeric_ip_host (10, c50) adds 5 to each side.
    assert_eq!(accumulated(&s, "192.168.3.109"), 140);
    assert_eq!(accumulated(&s, "192.168.3.107"), 20);
    // The breakdown explains every point: live score = sum of live contributions.
    let hs = s.analysis.scores.host(&host("192.168.3.109")).unwrap();
    let live: u64 = hs.contributions.iter().map(|c| u64::from(c.points)).sum();
    let settled: u64 = hs
        .gauges
        .client
        .iter()
        .chain(&hs.gauges.server)
        .map(netwarden_engine::score::Gauge::target)
        .sum();
    assert_eq!(live, settled);
    // Every point of the live score is explained, also while ended flows' points decay.
    for dt in [0, 10, 30, 59, 61] {
        let now = s.analysis.now_ns + dt * 1_000_000_000;
        let (items, omitted) = hs.breakdown(now);
        let sum: u64 = items.iter().map(|c| u64::from(c.points)).sum();
        assert_eq!(sum + omitted, hs.gauges.values(now).total, "+{dt}s");
    }
}

#[test]
fn emotet_download_server_is_the_attacker() {
    let s = run(corpus("emotet.pcap"));
    let all = alerts(&s);
    let bin = find(&all, "binary_application_transfer");
    let servers: Vec<IpAddr> = bin.iter().map(|a| client_server(a).1).collect();
    assert!(servers.contains(&ip("77.105.36.156")), "{servers:?}");
    for a in &bin {
        assert!(a.roles.server_attacker && !a.roles.client_attacker);
        assert_eq!((a.client_score, a.server_score), (75, 75));
    }
    let ua = find(&all, "http_suspicious_user_agent");
    assert_eq!(ua.len(), 1);
    assert_eq!(
        client_server(ua[0]),
        (ip("10.4.25.101"), ip("77.105.36.156"))
    );
    assert!(ua[0].roles.client_attacker && ua[0].roles.server_victim);
    assert_eq!(find(&all, "tls_selfsigned_certificate").len(), 1);
    // The infected host ranks first by points earned.
    let top = s
        .analysis
        .scores
        .hosts()
        .max_by_key(|(k, h)| (h.accumulated, std::cmp::Reverse(**k)))
        .unwrap();
    assert_eq!(top.0.ip, ip("10.4.25.101"));
    assert_eq!(top.1.accumulated, 340);
}

#[test]
fn malware_pcap_certificate_mismatch_and_no_data() {
    let s = run(corpus("malware.pcap"));
    let all = alerts(&s);
    let m = find(&all, "tls_certificate_mismatch");
    assert_eq!(m.len(), 1, "{all:#?}");
    assert_eq!((m[0].client_score, m[0].server_score), (50, 50));
    assert_eq!(client_server(m[0]).0, ip("192.168.7.7"));
    assert_eq!(find(&all, "tcp_no_data_exchanged").len(), 1);
    assert_eq!(accumulated(&s, "192.168.7.7"), 69);
}

#[test]
fn ssh_on_loopback_is_not_remote_access() {
    let s = run(corpus("ssh.pcap"));
    let all = alerts(&s);
    assert!(find(&all, "remote_access").is_empty(), "{all:#?}");
    let k = find(&all, "known_protocol_on_non_standard_port");
    assert_eq!(k.len(), 1);
    assert!(k[0].roles.client_attacker);
}

#[test]
fn same_input_twice_gives_the_same_alerts_and_scores() {
    let records = corpus("emotet.pcap");
    let (a, b) = (run(records.clone()), run(records));
    assert_eq!(alerts(&a), alerts(&b));
    let scores = |s: &State| {
        let mut v: Vec<(HostKey, u64)> = s
            .analysis
            .scores
            .hosts()
            .map(|(k, h)| (*k, h.accumulated))
            .collect();
        v.sort();
        v
    };
    assert_eq!(scores(&a), scores(&b));
}

#[test]
fn bus_copies_over_any_shard_count_give_the_same_scores_and_alerts() {
    let records = corpus("emotet.pcap");
    // With the service map on (its alerts come from the client copy alone).
    let plain = {
        let mut s = State::default();
        s.apply_batch(records.clone());
        s
    };
    let mut expect: Vec<(HostKey, u64)> = plain
        .analysis
        .scores
        .hosts()
        .map(|(k, h)| (*k, h.accumulated))
        .collect();
    expect.sort();
    for shards in [1, 4, 64] {
        let mut s = State::new(&StateConfig {
            shards,
            ..StateConfig::default()
        });
        let copies: Vec<FlowRecord> = records
            .iter()
            .flat_map(|r| {
                let (c, sv) = (r.client_addr().unwrap(), r.server_addr().unwrap());
                let mut v = vec![FlowRecord {
                    role: Role::Client as i32,
                    ..r.clone()
                }];
                if shard_of(c, shards) != shard_of(sv, shards) {
                    v.push(FlowRecord {
                        role: Role::Server as i32,
                        ..r.clone()
                    });
                }
                v
            })
            .collect();
        s.apply_batch(copies);
        let mut got: Vec<(HostKey, u64)> = s
            .analysis
            .scores
            .hosts()
            .map(|(k, h)| (*k, h.accumulated))
            .collect();
        got.sort();
        assert_eq!(got, expect, "shards = {shards}");
        assert_eq!(
            alerts(&s),
            alerts(&plain),
            "only the client copy stores flow alerts"
        );
    }
}

#[test]
fn exclusions_suppress_exactly_what_they_match() {
    let yaml = r"
kind: AlertExclusion
metadata: {name: pentest}
spec:
  pairs: [{client: 192.168.3.109, server: 192.168.3.107}]
  alertTypes: [url_possible_sql_injection]
";
    let mut s = State::default();
    s.configure_analysis(
        AnalysisConfig::default(),
        Exclusions {
            rules: parse_yaml("x.yaml", yaml).unwrap(),
        },
    );
    s.apply_batch(corpus("sql_injection.pcap"));
    let all = alerts(&s);
    assert!(find(&all, "url_possible_sql_injection").is_empty());
    assert_eq!(find(&all, "numeric_ip_host").len(), 1, "other types stay");
    assert_eq!(
        accumulated(&s, "192.168.3.109"),
        5,
        "an excluded alert adds no score"
    );
    assert_eq!(s.analysis.counters.excluded, 1);
}

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

#[test]
fn a_syn_scan_of_1000_ports_engages_then_releases() {
    let mut s = State::default();
    // 1,000 ports in 20 s: 50 flows/s (no flow flood), far above 256 unanswered SYNs/min.
    let scan: Vec<FlowRecord> = (0..1000u64)
        .map(|i| {
            syn(
                i,
                "10.0.0.66",
                "10.0.0.10",
                1 + i as u32,
                T0 + i * 20_000_000,
            )
        })
        .collect();
    s.apply_batch(scan);
    let engaged: Vec<Alert> = alerts(&s)
        .into_iter()
        .filter(|a| a.entity == Entity::Host && a.state == AlertState::Engaged)
        .collect();
    let kinds: Vec<(&str, &str, bool)> = engaged
        .iter()
        .map(|a| {
            (
                a.alert_type.as_str(),
                a.entity_value.as_str(),
                a.roles.client_attacker,
            )
        })
        .collect();
    assert!(
        kinds.contains(&("syn_scan", "10.0.0.66", true)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("syn_scan", "10.0.0.10", false)),
        "the victim side: {kinds:?}"
    );
    assert!(
        kinds.contains(&("scan_detection", "10.0.0.66", true)),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k.0 == "flow_flood"), "{kinds:?}");
    let victim = engaged
        .iter()
        .find(|a| a.entity_value == "10.0.0.10")
        .unwrap();
    assert!(victim.roles.client_victim && victim.client_score == 0 && victim.server_score == 50);
    // The host alerts' points are in the score breakdown.
    let scanner = s.analysis.scores.host(&host("10.0.0.66")).unwrap();
    assert!(
        scanner
            .contributions
            .iter()
            .any(|c| c.alert_type == "syn_scan" && c.points == 50)
    );
    let before = s
        .analysis
        .scores
        .values(&host("10.0.0.66"), s.analysis.now_ns)
        .total;
    // Ten minutes of quiet flow time later (another host's flow moves the clock): the
    // per-minute windows and the two five-minute buckets of the ports contacted are empty.
    s.apply_batch(vec![syn(5000, "10.0.0.1", "10.0.0.2", 80, T0 + 620 * S)]);
    let still: Vec<Alert> = alerts(&s)
        .into_iter()
        .filter(|a| a.entity == Entity::Host && a.state == AlertState::Engaged)
        .collect();
    assert!(still.is_empty(), "{still:#?}");
    let released = alerts(&s)
        .into_iter()
        .filter(|a| a.state == AlertState::Released)
        .count();
    assert!(
        released >= 4,
        "syn_scan ×2, scan_detection, server_ports_contacts"
    );
    assert!(
        s.analysis
            .scores
            .values(&host("10.0.0.66"), s.analysis.now_ns + 61 * S)
            .total
            < before
    );
    // Replaying the same scan gives the same keys: no duplicate rows while engaged.
    let keys: std::collections::BTreeSet<String> = alerts(&s).into_iter().map(|a| a.key).collect();
    assert_eq!(keys.len(), s.analysis.store.len());
}

#[test]
fn a_flow_flood_engages_on_the_client() {
    let mut s = State::default();
    let flood: Vec<FlowRecord> = (0..400u64)
        .map(|i| {
            let mut r = syn(i, "10.0.0.7", "10.0.0.8", 80, T0 + i * 1_000_000);
            r.s2c.as_mut().unwrap().tcp_flags = 0x12;
            r.c2s.as_mut().unwrap().tcp_flags = 0x1a;
            r
        })
        .collect();
    s.apply_batch(flood);
    let all = alerts(&s);
    let ff = find(&all, "flow_flood");
    assert!(
        ff.iter()
            .any(|a| a.entity_value == "10.0.0.7" && a.roles.client_attacker),
        "{ff:#?}"
    );
    assert!(
        ff.iter()
            .any(|a| a.entity_value == "10.0.0.8" && a.roles.client_victim),
        "{ff:#?}"
    );
    assert!(
        find(&all, "syn_scan").is_empty(),
        "answered SYNs are no scan"
    );
}

/// A record of a flow from `client` that is still running (`end` false) or ends now.
fn flow_at(id: u64, client: &str, t: u64, end: bool) -> FlowRecord {
    let mut r = syn(id, client, "10.0.0.200", 443, t);
    r.first_seen_ns = t;
    r.update = if end {
        FlowUpdate::Final
    } else {
        FlowUpdate::Periodic
    } as i32;
    r.s2c.as_mut().unwrap().tcp_flags = 0x12;
    r.c2s.as_mut().unwrap().tcp_flags = 0x1a;
    r
}

#[test]
fn des_flags_a_jump_in_active_flows_after_a_steady_baseline() {
    let mut s = State::default();
    let period = 300 * S;
    let mut id = 0;
    let mut open: Vec<(u64, u64)> = Vec::new();
    // 30 periods of ~10 active flows: each period 10 flows start and the previous 10 end.
    for k in 0..30u64 {
        let t = T0 + k * period + 10 * S;
        let mut batch = Vec::new();
        for (fid, start) in open.drain(..) {
            let mut r = flow_at(fid, "10.0.0.5", start, true);
            r.last_seen_ns = t;
            batch.push(r);
        }
        for j in 0..10 {
            id += 1;
            batch.push(flow_at(id, "10.0.0.5", t + j * S, false));
            open.push((id, t + j * S));
        }
        s.apply_batch(batch);
    }
    let series = s
        .analysis
        .series(&host("10.0.0.5"), "active_flows_as_client")
        .unwrap();
    assert!(series.len() >= 28, "{}", series.len());
    assert!(series.iter().skip(1).all(|p| !p.anomaly), "{series:?}");
    assert!(find(&alerts(&s), "flow_anomaly").is_empty());
    // Then 200 more flows stay open (2 per second: no flow flood) ...
    let t = T0 + 30 * period + 10 * S;
    let burst: Vec<FlowRecord> = (0..200u64)
        .map(|j| flow_at(100_000 + j, "10.0.0.5", t + j * S / 2, false))
        .collect();
    s.apply_batch(burst);
    // ... and the next sample sees them.
    s.apply_batch(vec![flow_at(
        999_999,
        "10.0.0.9",
        T0 + 31 * period + 20 * S,
        true,
    )]);
    let all = alerts(&s);
    let fa = find(&all, "flow_anomaly");
    let client: Vec<_> = fa.iter().filter(|a| a.entity_value == "10.0.0.5").collect();
    assert_eq!(client.len(), 1, "{all:#?}");
    assert!(
        client[0].message.contains("active_flows_as_client"),
        "{}",
        client[0].message
    );
    assert_eq!((client[0].client_score, client[0].server_score), (50, 0));
    let band = client[0].anomaly.unwrap();
    assert!(
        band.value > band.upper && band.lower <= band.expected,
        "{band:?}"
    );
    // The server saw the same jump, as server.
    let server: Vec<_> = fa
        .iter()
        .filter(|a| a.entity_value == "10.0.0.200")
        .collect();
    assert_eq!(server.len(), 1);
    assert!(server[0].message.contains("active_flows_as_server"));
    let last = *s
        .analysis
        .series(&host("10.0.0.5"), "active_flows_as_client")
        .unwrap()
        .last()
        .unwrap();
    assert!(last.anomaly && last.value > last.upper, "{last:?}");
    assert!(find(&all, "flow_flood").is_empty());
}

#[test]
fn time_going_backwards_and_absurd_records_keep_state_bounded() {
    let mut s = State::new(&StateConfig {
        max_hosts: 100,
        max_active_flows: 100,
        history: 10,
        shards: 64,
        ..StateConfig::default()
    });
    let mut records = Vec::new();
    for i in 0..5000u64 {
        // Spoofed sources, time jumping back and forth, zero and enormous counters.
        let src = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).to_string();
        let t = if i % 2 == 0 { T0 + i * S } else { T0 - i * S };
        let mut r = syn(i, &src, "10.255.0.1", 80, t);
        if i % 3 == 0 {
            r.c2s.as_mut().unwrap().bytes = u64::MAX;
            r.c2s.as_mut().unwrap().goodput_bytes = u64::MAX;
        }
        if i % 5 == 0 {
            r.c2s = None;
            r.s2c = None;
        }
        records.push(r);
    }
    s.apply_batch(records);
    assert!(s.hosts.len() <= 100);
    assert!(s.analysis.scores.hosts().count() <= 100);
    assert!(s.analysis.store.len() <= 100_000);
    assert_eq!(s.totals.records, 5000);
}

#[test]
fn flows_never_seen_ending_give_their_points_back_when_pushed_out() {
    let mut s = State::new(&StateConfig {
        max_active_flows: 10,
        ..StateConfig::default()
    });
    let risk = netwarden_api::risk::by_key("numeric_ip_host").unwrap().id;
    let records: Vec<FlowRecord> = (0..1500u64)
        .map(|i| {
            let mut r = flow_at(i, "10.0.0.77", T0 + i * S, false);
            r.set_risk(risk, None);
            r
        })
        .collect();
    s.apply_batch(records);
    let hs = s.analysis.scores.host(&host("10.0.0.77")).unwrap();
    let settled: u64 = hs
        .gauges
        .client
        .iter()
        .map(netwarden_engine::score::Gauge::target)
        .sum();
    // 1,500 flows raised 5 points each; at most 2,048 flow sides are tracked (1,024 per side
    // here), so the points of the oldest flows left with them.
    // The score also crossed 5,000 (score_threshold, 150) and stayed above 1,000 for over
    // 5 minutes (dangerous_host, 100).
    assert_eq!(hs.accumulated, 7500 + 150 + 100, "{:?}", hs.accumulated_by);
    assert!(settled <= 1024 * 5 + 250, "{settled}");
    assert!(settled > 0);
}
