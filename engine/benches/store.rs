//! The persistent store's throughput: alerts/s and ended flows/s written (queued by the state,
//! committed by the writer thread), with retention at work, and the latency of the API's
//! queries over a filled store. Prints one line per figure (docs/PERFORMANCE.md).
//!
//! `cargo bench -p netwarden-engine --bench store` (`NW_BENCH_ROWS=N` to change the row count;
//! `NW_BENCH_DIR=DIR` to put the database on another file system than the temp dir's).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use netwarden_api::alert::{Alert, AlertState, Entity, Roles, Severity};
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, ObservationPoint, ip_to_bytes};
use netwarden_engine::alerts::AlertStore;
use netwarden_engine::alerts::store::filter::{AlertFilter, AlertSortKey, HostRole};
use netwarden_engine::hosts::PointKey;
use netwarden_engine::store::db::metrics::TableLabel;
use netwarden_engine::store::db::{Db, StoreConfig, StoreMetrics, query};
use netwarden_engine::store::history::{HistoryFilter, HistorySortKey};
use netwarden_engine::store::{FlowKey, FlowStore};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_764_000_000 * S;

fn addr(i: u64) -> std::net::IpAddr {
    std::net::Ipv4Addr::from(0x0a00_0000 + (i % 5000) as u32).into()
}

/// An ended TCP flow like the sensor's (counters, an observation point, no DPI).
fn flow(i: u64) -> FlowRecord {
    FlowRecord {
        flow_id: i,
        observation_point: Some(ObservationPoint {
            sensor: "node-1".into(),
            interface: "eth0".into(),
            ..Default::default()
        }),
        ip_version: 4,
        client_ip: ip_to_bytes(addr(i)),
        server_ip: ip_to_bytes(addr(i * 7 + 1)),
        client_port: 30_000 + (i % 30_000) as u32,
        server_port: 443,
        l4_proto: 6,
        first_seen_ns: T0 + i * 1_000_000,
        last_seen_ns: T0 + i * 1_000_000 + 20 * S,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 12,
            bytes: 2_400,
            tcp_flags: 0x1b,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 10,
            bytes: 9_000,
            tcp_flags: 0x1b,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A flow alert with its flow embedded (the common, and biggest, kind of row). Its key is a
/// 64-bit hash in hex like the engine's, so keys arrive in random order.
fn alert(i: u64) -> Alert {
    let f = flow(i);
    Alert {
        key: format!(
            "{:016x}",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
        ),
        alert_type: ["tls_self_signed_certificate", "syn_scan", "numeric_ip_host"]
            [(i % 3) as usize]
            .into(),
        entity: Entity::Flow,
        entity_value: format!(
            "{}:{} -> {}:443 TCP",
            addr(i),
            f.client_port,
            addr(i * 7 + 1)
        ),
        severity: Severity::Warning,
        score: 60,
        client_score: 54,
        server_score: 6,
        roles: Roles {
            client_attacker: true,
            server_victim: true,
            ..Roles::default()
        },
        observation_point: "node-1/eth0".into(),
        first_seen_ns: f.first_seen_ns,
        last_seen_ns: f.last_seen_ns,
        count: 1,
        state: AlertState::Past,
        message: "tls_self_signed_certificate (10.0.0.1:40000 -> 10.0.0.8:443 TCP): self-signed"
            .into(),
        flow: Some(Box::new(f)),
        anomaly: None,
    }
}

/// CPU seconds used by the whole process so far (all threads: producer and writer), from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of the file are the 12th and 13th after the command name.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// Rows per second of wall time and per CPU-second.
fn rates(rows: u64, wall: std::time::Duration, cpu: f64) -> String {
    format!(
        "{:.0}/s wall, {:.0} per CPU-second",
        rows as f64 / wall.as_secs_f64(),
        rows as f64 / cpu.max(0.01)
    )
}

fn dropped(m: &StoreMetrics, table: &'static str) -> u64 {
    m.dropped.get_or_create(&TableLabel { table }).get()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rows: u64 = std::env::var("NW_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let base = std::env::var_os("NW_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = StoreConfig {
        queue: usize::try_from(rows).unwrap() + 1,
        ..StoreConfig::in_dir(dir.path())
    };
    println!(
        "store bench: {rows} rows per run, database in {}",
        dir.path().display()
    );

    // 1. Alerts: upserted into the in-memory store, which hands each row to the writer.
    let metrics = Arc::new(StoreMetrics::new());
    let opened = Db::open(&config, 0, Arc::clone(&metrics)).unwrap();
    let db = Arc::clone(&opened.db);
    let mut mem = AlertStore::new(100_000, u64::MAX / 2, 0);
    mem.attach(opened.db.sink(), opened.recent_alerts, opened.next_alert_id);
    let alerts: Vec<Alert> = (0..rows).map(alert).collect();
    let cpu = cpu_secs();
    let start = Instant::now();
    for a in alerts {
        mem.upsert(a);
    }
    let queued = start.elapsed();
    rt.block_on(db.sync()).unwrap();
    let done = start.elapsed();
    println!(
        "alerts: {} written (queued by the state at {:.0}/s), dropped {}",
        rates(rows, done, cpu_secs() - cpu),
        rows as f64 / queued.as_secs_f64(),
        dropped(&metrics, "alerts")
    );

    // 2. Ended flows into the history, through the flow store.
    let mut flows = FlowStore::new(1024, 100_000);
    flows.attach(opened.db.sink());
    let records: Vec<FlowRecord> = (0..rows).map(flow).collect();
    let cpu = cpu_secs();
    let start = Instant::now();
    for r in records {
        let key = FlowKey {
            point: PointKey(1),
            flow_id: r.flow_id,
        };
        flows.apply(key, r);
    }
    rt.block_on(db.sync()).unwrap();
    let done = start.elapsed();
    println!(
        "flows: {} written into the history, dropped {}",
        rates(rows, done, cpu_secs() - cpu),
        dropped(&metrics, "flows")
    );

    // 3. Queries over the filled store (what the API runs after its barrier).
    let host = addr(42);
    let timed = |name: &str, f: &dyn Fn(&rusqlite::Connection) -> rusqlite::Result<u64>| {
        let _ = db.read_now(f).unwrap();
        let start = Instant::now();
        let n = db.read_now(f).unwrap();
        println!(
            "query {name}: {:.2} ms ({n} matching)",
            start.elapsed().as_secs_f64() * 1e3
        );
    };
    timed("alerts newest page", &|c| {
        query::alerts_page(c, &AlertFilter::default(), AlertSortKey::Time, true, 0, 100)
            .map(|r| r.0)
    });
    timed("alerts by host as attacker", &|c| {
        let f = AlertFilter {
            host: Some(host),
            role: HostRole::Attacker,
            ..AlertFilter::default()
        };
        query::alerts_page(c, &f, AlertSortKey::Time, true, 0, 100).map(|r| r.0)
    });
    timed("alerts summary (1 h buckets)", &|c| {
        query::alert_groups(c, &AlertFilter::default(), 3600 * S).map(|g| g.len() as u64)
    });
    timed("alerts summary of the newest tenth (1 h buckets)", &|c| {
        let f = AlertFilter {
            from: Some(T0 + rows * 9 / 10 * 1_000_000),
            ..AlertFilter::default()
        };
        query::alert_groups(c, &f, 3600 * S).map(|g| g.len() as u64)
    });
    timed("alert by key", &|c| {
        query::alert_by_key(c, &alert(rows / 2).key).map(|r| r.map_or(0, |_| 1))
    });
    timed("history of one host", &|c| {
        let f = HistoryFilter {
            host: Some(host),
            ..HistoryFilter::default()
        };
        query::history_page(c, &f, HistorySortKey::LastSeen, true, 0, 100).map(|r| r.0)
    });
    timed("history time window", &|c| {
        let f = HistoryFilter {
            from: Some(T0 + 100 * S),
            to: Some(T0 + 110 * S),
            ..HistoryFilter::default()
        };
        query::history_page(c, &f, HistorySortKey::LastSeen, true, 0, 100).map(|r| r.0)
    });
    rt.block_on(db.close());
    let size = std::fs::metadata(config.db_path()).unwrap().len();
    println!(
        "database: {:.1} MiB for {rows} alerts + {rows} flows ({:.0} bytes per row)",
        size as f64 / f64::from(1 << 20),
        size as f64 / (2 * rows) as f64
    );

    // 4. Steady state under retention: a 100,000-row bound, rows beyond it deleted as it goes.
    let small = StoreConfig {
        max_alerts: 100_000,
        max_flows: 100_000,
        ..StoreConfig::in_dir(dir.path().join("small"))
    };
    let small = StoreConfig {
        queue: config.queue,
        ..small
    };
    let metrics = Arc::new(StoreMetrics::new());
    let opened = Db::open(&small, 0, Arc::clone(&metrics)).unwrap();
    let sink = opened.db.sink();
    let rows_alerts: Vec<_> = (0..rows)
        .map(|i| netwarden_engine::alerts::StoredAlert {
            id: i + 1,
            acknowledged: false,
            alert: alert(i),
        })
        .collect();
    let cpu = cpu_secs();
    let start = Instant::now();
    for r in &rows_alerts {
        sink.alert(r);
    }
    rt.block_on(opened.db.sync()).unwrap();
    let done = start.elapsed();
    let (a, _) = opened.db.read_now(query::row_counts).unwrap();
    println!(
        "alerts under a 100,000-row bound: {} written, {a} rows kept",
        rates(rows, done, cpu_secs() - cpu)
    );

    // 5. A producer faster than the disk with the default queue: drops are counted, ingest
    //    never waits.
    let metrics = Arc::new(StoreMetrics::new());
    let bounded = StoreConfig::in_dir(dir.path().join("bounded"));
    let opened = Db::open(&bounded, 0, Arc::clone(&metrics)).unwrap();
    let sink = opened.db.sink();
    let start = Instant::now();
    for r in &rows_alerts {
        sink.alert(r);
    }
    let queued = start.elapsed();
    rt.block_on(opened.db.sync()).unwrap();
    println!(
        "default queue ({}), flat-out producer: queued at {:.0}/s, dropped {} of {rows}",
        bounded.queue,
        rows as f64 / queued.as_secs_f64(),
        dropped(&metrics, "alerts")
    );
    rt.block_on(opened.db.close());
}
