//! Periodicity (issue 9 §3): beacons generated with the engine's record types every 60 s ± 5 s
//! jitter are found periodic with the right period and raise `periodic_flow`; the beacon
//! slowing to 120 s raises `periodicity_changed` ("changed"); silence makes it "no longer
//! periodic"; irregular traffic is never periodic.
#![allow(clippy::unwrap_used)]

use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, L7Info, ip_to_bytes};
use netwarden_engine::periodicity::{Change, Detector, PeriodKey, PeriodStatus};
use netwarden_engine::state::{State, StateConfig};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC;

fn beacon(id: u64, client: &str, server: &str, start_ns: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        ip_version: 4,
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 50_000 + u32::try_from(id).unwrap(),
        server_port: 443,
        l4_proto: 6,
        first_seen_ns: start_ns,
        last_seen_ns: start_ns + 200_000_000,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 6,
            bytes: 900,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 5,
            bytes: 4200,
            ..Default::default()
        }),
        l7: Some(L7Info {
            app_protocol: "TLS".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A deterministic jitter in [-5 s, +5 s] (a 64-bit LCG).
struct Jitter(u64);

impl Jitter {
    fn next_ns(&mut self) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let unit = i64::try_from((self.0 >> 33) % 10_001).unwrap() - 5000;
        unit * 1_000_000
    }
}

fn key() -> PeriodKey {
    PeriodKey {
        client: "10.0.0.5".parse().unwrap(),
        server: "203.0.113.9".parse().unwrap(),
        port: 443,
        l4: 6,
        vlan: 0,
    }
}

/// The detector of the test's pair (it lives in the edge's slot).
fn pair(s: &State) -> Option<Detector> {
    s.servicemap
        .periodic_pairs()
        .find(|(k, _)| *k == key())
        .map(|(_, d)| *d)
}

fn messages(s: &State, alert_type: &str) -> Vec<(u64, String)> {
    s.analysis
        .store
        .iter()
        .filter(|a| a.alert.alert_type == alert_type)
        .map(|a| {
            (
                a.alert.flow.as_ref().unwrap().flow_id,
                a.alert.message.clone(),
            )
        })
        .collect()
}

#[test]
fn beacons_are_found_with_their_period_and_a_period_change_is_flagged() {
    let mut s = State::new(&StateConfig::default());
    let mut jitter = Jitter(7);
    let mut id = 0;
    let mut t = T0;
    // 15 beacons every 60 s ± 5 s.
    for _ in 0..15 {
        id += 1;
        let start = t.saturating_add_signed(jitter.next_ns());
        s.apply_batch(vec![beacon(id, "10.0.0.5", "203.0.113.9", start)]);
        t += 60 * SEC;
    }
    let d = pair(&s).unwrap();
    assert_eq!(d.status, PeriodStatus::Periodic);
    let period = d.period() as f64 / SEC as f64;
    assert!((57.0..=63.0).contains(&period), "period {period}");
    assert!(d.jitter() <= 5 * SEC, "jitter {}", d.jitter());
    assert!(d.observations >= 10, "{d:?}");
    let periodic = messages(&s, "periodic_flow");
    // Periodic after 4 consistent intervals (the 5th beacon): beacons 5..=15 carry the risk.
    assert_eq!(periodic.iter().map(|m| m.0).min(), Some(5), "{periodic:?}");
    assert_eq!(periodic.len(), 11);
    assert!(
        periodic[0].1.contains("Periodic Flow: every"),
        "{}",
        periodic[0].1
    );
    let changes = messages(&s, "periodicity_changed");
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].1.contains("periodic: periodic every"),
        "{}",
        changes[0].1
    );

    // The beacon slows to 120 s ± 5 s.
    for _ in 0..8 {
        id += 1;
        t += 60 * SEC;
        let start = t.saturating_add_signed(jitter.next_ns());
        s.apply_batch(vec![beacon(id, "10.0.0.5", "203.0.113.9", start)]);
        t += 60 * SEC;
    }
    let changes = messages(&s, "periodicity_changed");
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes
            .iter()
            .any(|c| c.1.contains("changed: period changed from")),
        "{changes:?}"
    );
    let d = pair(&s).unwrap();
    let period = d.period() as f64 / SEC as f64;
    assert!((115.0..=125.0).contains(&period), "period {period}");
    assert!(d.is_periodic());
    let change = s
        .servicemap
        .periodicity
        .recent
        .iter()
        .find_map(|c| match c.change {
            Change::Changed { from_ns, to_ns } => Some((from_ns, to_ns)),
            _ => None,
        })
        .unwrap();
    assert!(change.0 < 64 * SEC && change.1 > 110 * SEC, "{change:?}");

    // Silence, while other traffic keeps flow time moving: no longer periodic, then forgotten.
    for i in 0..5 {
        id += 1;
        t += 900 * SEC;
        s.apply_batch(vec![beacon(id, "10.0.0.7", "198.51.100.1", t + i)]);
    }
    let kinds: Vec<&str> = s
        .servicemap
        .periodicity
        .recent
        .iter()
        .filter(|c| c.key == key())
        .map(|c| c.change.words())
        .collect();
    assert_eq!(kinds, ["periodic", "changed", "no longer periodic"]);
    assert!(pair(&s).is_none());
    assert_eq!(s.servicemap.periodicity.counters.expired, 1);
}

#[test]
fn irregular_flows_are_not_periodic() {
    let mut s = State::new(&StateConfig::default());
    let mut t = T0;
    let gaps = [3, 41, 7, 95, 14, 2, 63, 5, 33, 122, 9, 4, 70, 18, 250, 6];
    for (i, g) in gaps.iter().enumerate() {
        t += g * SEC;
        s.apply_batch(vec![beacon(i as u64 + 1, "10.0.0.5", "203.0.113.9", t)]);
    }
    assert!(!pair(&s).unwrap().is_periodic());
    assert!(messages(&s, "periodic_flow").is_empty());
}
