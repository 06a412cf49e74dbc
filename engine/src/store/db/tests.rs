//! The store against the in-memory store it mirrors: same rows, same filter results, bounded by
//! its retention, and the same ids after a restart.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use netwarden_api::alert::{Alert, AlertState, Entity, Roles, Severity};
use netwarden_api::flow::{FlowRecord, FlowUpdate, ObservationPoint, ip_to_bytes};

use super::query;
use super::{Db, StoreConfig, StoreMetrics, Target};
use crate::alerts::AlertStore;
use crate::alerts::store::filter::{AlertFilter, AlertSortKey, HostRole};
use crate::store::history::{HistoryFilter, HistorySortKey};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

/// A deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const TYPES: [&str; 4] = [
    "syn_scan",
    "tls_self_signed",
    "dns_flood",
    "numeric_ip_host",
];
const POINTS: [&str; 3] = ["n1/eth0", "n1/eth1", "n2/eth0"];
const HOSTS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "192.168.1.9", "2001:db8::1"];

fn flow(id: u64, client: &str, server: &str, point: &str, t: u64) -> FlowRecord {
    let (sensor, interface) = point.split_once('/').unwrap();
    FlowRecord {
        flow_id: id,
        observation_point: Some(ObservationPoint {
            sensor: sensor.into(),
            interface: interface.into(),
            ..Default::default()
        }),
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 40_000 + (id % 1000) as u32,
        server_port: [53, 80, 443][(id % 3) as usize],
        l4_proto: if id.is_multiple_of(3) { 17 } else { 6 },
        first_seen_ns: t,
        last_seen_ns: t + (id % 7) * S,
        update: FlowUpdate::Final as i32,
        ..Default::default()
    }
}

fn alert(i: u64, rng: &mut Rng) -> Alert {
    let t = T0 + i * S;
    let score = *rng.pick(&[5u32, 20, 60, 120, 210, 260]);
    let point = (*rng.pick(&POINTS)).to_owned();
    let is_flow = rng.next().is_multiple_of(2);
    let (c, s) = (*rng.pick(&HOSTS), *rng.pick(&HOSTS));
    let bits = rng.next();
    Alert {
        key: format!("k{i}"),
        alert_type: (*rng.pick(&TYPES)).into(),
        entity: if is_flow { Entity::Flow } else { Entity::Host },
        entity_value: if is_flow {
            format!("{c} -> {s}")
        } else {
            c.into()
        },
        severity: Severity::from_score(score),
        score,
        client_score: score,
        server_score: 0,
        roles: Roles {
            client_attacker: bits & 1 != 0,
            client_victim: bits & 2 != 0,
            server_attacker: bits & 4 != 0,
            server_victim: bits & 8 != 0,
        },
        observation_point: point.clone(),
        first_seen_ns: t,
        last_seen_ns: t + (bits % 5) * S,
        count: 1,
        state: if is_flow {
            AlertState::Past
        } else {
            *rng.pick(&[AlertState::Engaged, AlertState::Released])
        },
        message: format!("alert {i} with \"quotes\" and ' and %_ wildcards"),
        flow: is_flow.then(|| Box::new(flow(i, c, s, &point, t))),
        anomaly: None,
    }
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::in_dir(dir)
}

/// An in-memory store attached to a fresh database holding `n` generated alerts.
async fn filled(dir: &std::path::Path, n: u64) -> (AlertStore, Arc<Db>) {
    let opened = Db::open(&config(dir), 1000, Arc::new(StoreMetrics::new())).unwrap();
    let mut mem = AlertStore::new(100_000, u64::MAX / 2, 0);
    mem.attach(opened.db.sink(), opened.recent_alerts, opened.next_alert_id);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..n {
        mem.upsert(alert(i, &mut rng));
    }
    opened.db.sync().await.unwrap();
    (mem, opened.db)
}

fn filters() -> Vec<AlertFilter> {
    let ip = |s: &str| Some(s.parse().unwrap());
    let mut out = vec![
        AlertFilter::default(),
        AlertFilter {
            from: Some(T0 + 100 * S),
            to: Some(T0 + 200 * S),
            ..AlertFilter::default()
        },
        AlertFilter {
            severity: Some(Severity::Error),
            ..AlertFilter::default()
        },
        AlertFilter {
            types: vec!["syn_scan".into(), "dns_flood".into()],
            ..AlertFilter::default()
        },
        AlertFilter {
            entity: Some(Entity::Host),
            state: Some(AlertState::Engaged),
            ..AlertFilter::default()
        },
        AlertFilter {
            entity_value: Some("10.0.0.1".into()),
            ..AlertFilter::default()
        },
        AlertFilter {
            point: Some("n1".into()),
            ..AlertFilter::default()
        },
        AlertFilter {
            point: Some("n1/eth".into()),
            ..AlertFilter::default()
        },
        AlertFilter {
            point: Some("n2/eth0".into()),
            acknowledged: Some(false),
            ..AlertFilter::default()
        },
    ];
    for host in HOSTS {
        for role in [HostRole::Any, HostRole::Attacker, HostRole::Victim] {
            out.push(AlertFilter {
                host: ip(host),
                role,
                ..AlertFilter::default()
            });
        }
    }
    out
}

fn memory_ids(mem: &AlertStore, f: &AlertFilter) -> Vec<u64> {
    let mut ids: Vec<u64> = mem.iter().filter(|r| f.matches(r)).map(|r| r.id).collect();
    ids.sort_unstable();
    ids
}

fn sql_ids(db: &Db, f: &AlertFilter) -> (u64, Vec<u64>) {
    let (total, rows) = db
        .read_now(|c| query::alerts_page(c, f, AlertSortKey::Id, false, 0, 100_000))
        .unwrap();
    (total, rows.iter().map(|r| r.id).collect())
}

#[tokio::test]
async fn sql_filters_mean_what_the_memory_filters_mean() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, db) = filled(dir.path(), 400).await;
    for f in filters() {
        let want = memory_ids(&mem, &f);
        let (total, got) = sql_ids(&db, &f);
        assert_eq!(got, want, "{f:?}");
        assert_eq!(total, want.len() as u64);
        // Both the matching and the non-matching side are exercised.
        if f.point.as_deref() == Some("n1/eth") {
            assert!(want.is_empty(), "a point prefix ends at a `/`");
        } else if f != AlertFilter::default() {
            assert!(
                !want.is_empty() && want.len() < 400,
                "{f:?}: {}",
                want.len()
            );
        }
    }
    // Rows come back as they went in (flow blob and all).
    let (_, rows) = db
        .read_now(|c| {
            query::alerts_page(c, &AlertFilter::default(), AlertSortKey::Id, false, 0, 1000)
        })
        .unwrap();
    let mem_rows: Vec<_> = mem.iter().cloned().collect();
    assert_eq!(rows, mem_rows);

    // Acknowledge and delete by filter: the same rows on both sides.
    let ack = AlertFilter {
        severity: Some(Severity::Critical),
        ..AlertFilter::default()
    };
    let n_mem = mem.acknowledge_where(&ack) as u64;
    assert_eq!(
        db.acknowledge(Target::Filter(ack.clone())).await.unwrap(),
        n_mem
    );
    assert_eq!(
        db.acknowledge(Target::Filter(ack)).await.unwrap(),
        0,
        "already acknowledged"
    );
    let acked = AlertFilter {
        acknowledged: Some(true),
        ..AlertFilter::default()
    };
    assert_eq!(sql_ids(&db, &acked).1, memory_ids(&mem, &acked));
    let del = AlertFilter {
        types: vec!["numeric_ip_host".into()],
        ..AlertFilter::default()
    };
    let n_mem = mem.remove_where(&del) as u64;
    assert!(n_mem > 0);
    assert_eq!(db.delete(Target::Filter(del.clone())).await.unwrap(), n_mem);
    assert_eq!(sql_ids(&db, &del).0, 0);
    assert_eq!(
        db.delete(Target::Id(1)).await.unwrap(),
        u64::from(mem.remove(1).is_some())
    );
    assert_eq!(
        sql_ids(&db, &AlertFilter::default()).1,
        memory_ids(&mem, &AlertFilter::default())
    );
    db.close().await;
}

#[tokio::test]
async fn a_reopened_store_has_the_same_rows_and_never_reuses_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, db) = filled(dir.path(), 50).await;
    let before: Vec<_> = mem.iter().cloned().collect();
    // Delete the newest row: its id must not come back.
    db.delete(Target::Id(50)).await.unwrap();
    db.close().await;
    drop(db);

    let opened = Db::open(&config(dir.path()), 1000, Arc::new(StoreMetrics::new())).unwrap();
    assert_eq!(opened.recent_alerts, before[..49].to_vec());
    assert_eq!(opened.next_alert_id, 51);
    let mut mem = AlertStore::new(100_000, u64::MAX / 2, 0);
    mem.attach(opened.db.sink(), opened.recent_alerts, opened.next_alert_id);
    let mut rng = Rng(7);
    let next = mem.upsert(alert(1000, &mut rng));
    assert_eq!(next, crate::alerts::Upsert::Inserted(51));
    opened.db.close().await;
}

#[tokio::test]
async fn repeats_of_a_row_within_one_statement_keep_the_last_and_the_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let opened = Db::open(&config(dir.path()), 0, Arc::new(StoreMetrics::new())).unwrap();
    let sink = opened.db.sink();
    let mut rng = Rng(3);
    // 70 writes of 5 rows, interleaved with flows, so full multi-row statements carry several
    // versions of one row, and single-row statements finish the rest.
    let mut rows: Vec<crate::alerts::StoredAlert> = (0..5)
        .map(|i| crate::alerts::StoredAlert {
            id: i + 1,
            acknowledged: false,
            alert: alert(i, &mut rng),
        })
        .collect();
    for n in 0..70u64 {
        let r = &mut rows[(n % 5) as usize];
        r.alert.count = n + 1;
        r.acknowledged = n == 3;
        sink.alert(r);
        if n % 33 == 0 {
            sink.flow(&flow(n, "10.0.0.1", "10.0.0.2", "n1/eth0", T0));
        }
    }
    opened.db.sync().await.unwrap();
    let (total, got) = opened
        .db
        .read_now(|c| {
            query::alerts_page(c, &AlertFilter::default(), AlertSortKey::Id, false, 0, 10)
        })
        .unwrap();
    assert_eq!(total, 5);
    let counts: Vec<_> = got.iter().map(|r| r.alert.count).collect();
    assert_eq!(counts, vec![66, 67, 68, 69, 70]);
    let acked: Vec<_> = got.iter().map(|r| r.acknowledged).collect();
    assert_eq!(
        acked,
        vec![false, false, false, true, false],
        "acknowledged sticks"
    );
    assert_eq!(opened.db.read_now(query::row_counts).unwrap(), (5, 3));
    opened.db.close().await;
}

/// Turns a current database back into the version-1 layout: the index on the key text, no
/// `key_id`, every address a blob (`unhex` of the integer's 8 hex digits).
fn downgrade_to_v1(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "DROP INDEX alerts_key_id;
         ALTER TABLE alerts DROP COLUMN key_id;
         CREATE INDEX alerts_key ON alerts(key);
         UPDATE alerts SET client_ip = unhex(printf('%08x', client_ip))
             WHERE typeof(client_ip) = 'integer';
         UPDATE alerts SET server_ip = unhex(printf('%08x', server_ip))
             WHERE typeof(server_ip) = 'integer';
         UPDATE flows SET client_ip = unhex(printf('%08x', client_ip))
             WHERE typeof(client_ip) = 'integer';
         UPDATE flows SET server_ip = unhex(printf('%08x', server_ip))
             WHERE typeof(server_ip) = 'integer';
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let blobs: i64 = c
        .query_row(
            "SELECT count(*) FROM alerts WHERE typeof(client_ip) = 'blob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(blobs > 0, "the version-1 file has blob addresses");
}

#[tokio::test]
async fn a_version_1_database_is_migrated_and_answers_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, db) = filled(dir.path(), 200).await;
    for i in 0..20u64 {
        db.sink()
            .flow(&flow(i, "10.0.0.1", "2001:db8::1", "n1/eth0", T0 + i * S));
    }
    db.close().await;
    drop(db);
    let path = config(dir.path()).db_path();
    downgrade_to_v1(&path);

    let opened = Db::open(&config(dir.path()), 1000, Arc::new(StoreMetrics::new())).unwrap();
    let db = opened.db;
    let version: i64 = db
        .read_now(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    for f in filters() {
        assert_eq!(sql_ids(&db, &f).1, memory_ids(&mem, &f), "{f:?}");
    }
    // Found by key through the new index, the newest row of the key.
    let row = mem.iter().nth(17).unwrap().clone();
    let found = db
        .read_now(move |c| query::alert_by_key(c, &row.alert.key))
        .unwrap();
    assert_eq!(found.as_ref(), mem.iter().nth(17));
    assert!(
        db.read_now(|c| query::alert_by_key(c, "k-none"))
            .unwrap()
            .is_none()
    );
    let host = HistoryFilter {
        host: Some("10.0.0.1".parse().unwrap()),
        ..HistoryFilter::default()
    };
    let (n, _) = db
        .read_now(move |c| query::history_page(c, &host, HistorySortKey::LastSeen, true, 0, 5))
        .unwrap();
    assert_eq!(n, 20);
    db.close().await;
}

#[tokio::test]
async fn a_database_from_a_newer_engine_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, db) = filled(dir.path(), 3).await;
    db.close().await;
    drop(db);
    let c = rusqlite::Connection::open(config(dir.path()).db_path()).unwrap();
    c.execute_batch("PRAGMA user_version = 99;").unwrap();
    drop(c);
    let Err(err) = Db::open(&config(dir.path()), 10, Arc::new(StoreMetrics::new())) else {
        panic!("a newer database was opened");
    };
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains("schema version 99, newer than this engine's 2"),
        "{text}"
    );
}

#[tokio::test]
async fn retention_bounds_rows_age_and_bytes_under_a_long_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_alerts: 1_000,
        max_flows: 2_000,
        max_age_secs: 3 * 3600,
        max_bytes: 1 << 40,
        queue: 1 << 20,
        ..config(dir.path())
    };
    let metrics = Arc::new(StoreMetrics::new());
    let opened = Db::open(&cfg, 0, Arc::clone(&metrics)).unwrap();
    let sink = opened.db_sink();
    let db = opened.db;
    let mut rng = Rng(3);
    // 20,000 alerts and 20,000 flows, one per second of flow time (5.5 hours).
    for i in 0..20_000u64 {
        let mut a = alert(i, &mut rng);
        a.state = AlertState::Past;
        sink.alert(&crate::alerts::StoredAlert {
            id: i + 1,
            acknowledged: false,
            alert: a,
        });
        sink.flow(&flow(i, "10.0.0.1", "10.0.0.2", "n1/eth0", T0 + i * S));
        if i % 2_000 == 0 {
            db.sync().await.unwrap();
            let (alerts, flows) = db.read_now(query::row_counts).unwrap();
            assert!(alerts <= 1_000 && flows <= 2_000, "{alerts} {flows} at {i}");
        }
    }
    db.sync().await.unwrap();
    let (alerts, flows) = db.read_now(query::row_counts).unwrap();
    assert_eq!((alerts, flows), (1_000, 2_000));
    // The newest rows stay.
    let (_, newest) = db
        .read_now(|c| {
            query::history_page(
                c,
                &HistoryFilter::default(),
                HistorySortKey::FirstSeen,
                true,
                0,
                1,
            )
        })
        .unwrap();
    assert_eq!(newest[0].flow_id, 19_999);
    let dropped: u64 = ["alerts", "flows"]
        .iter()
        .map(|t| {
            metrics
                .dropped
                .get_or_create(&super::metrics::TableLabel { table: t })
                .get()
        })
        .sum();
    assert_eq!(dropped, 0);
    db.close().await;

    // Age: with a one-hour bound, nothing older than an hour before the newest row is left.
    let cfg = StoreConfig {
        max_age_secs: 3600,
        ..cfg
    };
    let opened = Db::open(&cfg, 0, Arc::new(StoreMetrics::new())).unwrap();
    let sink = opened.db_sink();
    sink.flow(&flow(1, "10.0.0.1", "10.0.0.2", "n1/eth0", T0 + 20_000 * S));
    opened.db.sync().await.unwrap();
    let cutoff = T0 + 20_000 * S - 3600 * S;
    let old = HistoryFilter {
        to: Some(cutoff - 10 * S),
        ..HistoryFilter::default()
    };
    // Retention runs at most a second after the write; wait for it without timing anything.
    let mut left = u64::MAX;
    for _ in 0..100 {
        sink.flow(&flow(2, "10.0.0.1", "10.0.0.2", "n1/eth0", T0 + 20_000 * S));
        opened.db.sync().await.unwrap();
        left = opened
            .db
            .read_now(|c| query::history_page(c, &old, HistorySortKey::LastSeen, true, 0, 1))
            .unwrap()
            .0;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "flows older than the age bound remain");
    opened.db.close().await;
}

#[tokio::test]
async fn the_size_bound_holds_and_the_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 2 << 20;
    let cfg = StoreConfig {
        max_bytes,
        queue: 1 << 20,
        ..config(dir.path())
    };
    let metrics = Arc::new(StoreMetrics::new());
    let opened = Db::open(&cfg, 0, Arc::clone(&metrics)).unwrap();
    let sink = opened.db_sink();
    for i in 0..30_000u64 {
        let mut f = flow(i, "10.0.0.1", "10.0.0.2", "n1/eth0", T0 + i * S);
        f.tunnel = "x".repeat(100);
        sink.flow(&f);
    }
    opened.db.sync().await.unwrap();
    let deleted = metrics
        .deleted
        .get_or_create(&super::metrics::DeleteLabels {
            table: "flows",
            reason: "size",
        })
        .get();
    assert!(deleted > 0, "the size bound never triggered");
    opened.db.close().await;
    // Checked once per batch: the bound plus at most one batch (8192 rows of ~300 bytes).
    let size = std::fs::metadata(cfg.db_path()).unwrap().len();
    assert!(
        size <= max_bytes + (3 << 20),
        "{size} bytes on disk for a {max_bytes} bound"
    );
    let (_, flows) = Db::open(&cfg, 0, Arc::new(StoreMetrics::new()))
        .unwrap()
        .db
        .read_now(query::row_counts)
        .unwrap();
    assert!(flows > 1_000 && flows < 30_000, "{flows} flows kept");
}

#[tokio::test]
async fn a_configuration_reload_keeps_the_rows_ids_and_the_link_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mem, db) = filled(dir.path(), 20).await;
    // What `State::configure_analysis` does: a fresh store adopts the old one.
    let mut fresh = AlertStore::new(10, u64::MAX / 2, 0);
    fresh.adopt(mem);
    assert!(fresh.is_persistent());
    assert_eq!(fresh.len(), 10, "within the new store's own bound");
    let mut rng = Rng(11);
    assert_eq!(
        fresh.upsert(alert(500, &mut rng)),
        crate::alerts::Upsert::Inserted(21)
    );
    db.sync().await.unwrap();
    let (total, ids) = sql_ids(&db, &AlertFilter::default());
    assert_eq!(total, 21, "the database keeps what memory let go");
    assert_eq!(ids.last(), Some(&21));
    db.close().await;
}
