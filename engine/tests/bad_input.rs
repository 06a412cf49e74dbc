//! Bad input through the ingest core: flow records from 100,000 distinct spoofed sources with
//! time going backwards and zero or enormous counters. The host table and every per-host map of
//! the analysis stay within their bound (least recently seen evicted first), evictions are
//! counted in the metrics, nothing panics.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use netwarden_api::flow::{DirectionStats, FlowBatch, FlowRecord, FlowUpdate, ip_to_bytes};
use netwarden_engine::Engine;
use netwarden_engine::hosts::HostKey;
use netwarden_engine::ingest::ingest_batch;
use netwarden_engine::metrics::{EngineMetrics, Table, TableLabels};
use netwarden_engine::state::StateConfig;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
/// Spoofed sources (a debug build applies ~25,000 records/s here; `benches/analysis.rs` runs a
/// million in release).
const HOSTS: u64 = 100_000;
const CAP: usize = 1_000;

fn record(i: u64) -> FlowRecord {
    let src = std::net::Ipv4Addr::from(0x2000_0000 + i as u32);
    // Time jumps back and forth by up to a day; some records claim the year 1970 or 2500.
    let t = match i % 7 {
        0 => 0,
        1 => u64::MAX,
        k if k % 2 == 0 => T0 + (i % 86_400) * S,
        _ => T0 - (i % 86_400) * S,
    };
    let huge = i.is_multiple_of(3);
    FlowRecord {
        flow_id: i,
        client_ip: ip_to_bytes(src.into()),
        server_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
        client_port: (i % 65_536) as u32,
        server_port: 80,
        l4_proto: if i.is_multiple_of(2) { 6 } else { 1 },
        first_seen_ns: t,
        last_seen_ns: t.saturating_sub(S * (i % 5)), // sometimes before first_seen
        update: if i.is_multiple_of(11) {
            FlowUpdate::Periodic
        } else {
            FlowUpdate::Final
        } as i32,
        c2s: (!i.is_multiple_of(5)).then(|| DirectionStats {
            packets: if huge { u64::MAX } else { 0 },
            bytes: if huge { u64::MAX } else { 0 },
            goodput_bytes: u64::MAX,
            tcp_flags: (i % 256) as u32,
            retransmissions: u32::MAX,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn spoofed_hosts_and_absurd_records_keep_every_table_bounded() {
    let engine = Engine::new(
        &StateConfig {
            max_hosts: CAP,
            max_active_flows: 1_000,
            history: 100,
            ..StateConfig::default()
        },
        Arc::new(EngineMetrics::default()),
    );
    let mut i = 0;
    while i < HOSTS {
        let records: Vec<FlowRecord> = (i..(i + 10_000).min(HOSTS)).map(record).collect();
        i += records.len() as u64;
        ingest_batch(
            &engine,
            FlowBatch {
                records,
                sensor: "spoofed".into(),
                seq: i,
            },
        );
        engine.state.write().unwrap().analysis.drain_outbox();
    }
    let s = engine.read();
    assert_eq!(s.totals.records, HOSTS);
    assert!(s.hosts.len() <= CAP, "{}", s.hosts.len());
    assert!(s.analysis.scores.hosts().count() <= CAP);
    assert!(s.flows.active_len() <= 1_000 && s.flows.ended_len() <= 100);
    // The victim is seen by every record: least recently seen eviction keeps it.
    let victim = HostKey {
        ip: "10.0.0.1".parse().unwrap(),
        vlan: 0,
    };
    assert!(s.hosts.get(&victim).is_some());
    let evicted = engine
        .metrics
        .evictions
        .get_or_create(&TableLabels {
            table: Table::Hosts,
        })
        .get();
    // Every spoofed source but the last CAP - 1 was pushed out (and counted).
    assert!(evicted >= HOSTS - CAP as u64, "{evicted}");
    assert_eq!(engine.metrics.hosts.get(), s.hosts.len() as i64);
}
