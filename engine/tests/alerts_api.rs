//! The alert routes over real HTTP: a corpus pcap's flows and a generated SYN scan go through
//! an in-process bus into the engine; the alerts are queried, filtered, summarised, drilled
//! into, and seen on `nw.alerts.<entity>.<type>`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{Bus, MemoryBus, Publisher, Subscriber};
use netwarden_api::flow::{FlowBatch, FlowRecord};
use netwarden_api::names::flows_subject;
use netwarden_sensor::pipeline::{self, SensorConfig};
use netwarden_testkit::testdata;
use serde_json::Value;
use tokio::sync::watch;

mod common;

const S: u64 = 1_000_000_000;

/// A SYN scan of 300 ports in 15 s starting at `t0`.
fn scan(t0: u64) -> Vec<FlowRecord> {
    (0..300u64)
        .map(|i| {
            common::syn(
                10_000 + i,
                "10.0.0.66",
                "10.0.0.10",
                1 + i as u32,
                t0 + i * 50_000_000,
            )
        })
        .collect()
}

struct Fixture {
    base: String,
    http: reqwest::Client,
    _shutdown: watch::Sender<bool>,
    published: Vec<String>,
    t0: u64,
}

impl Fixture {
    async fn start() -> Self {
        let bus = MemoryBus::default();
        let mut alerts = bus.subscribe("nw.alerts.>".into()).await.unwrap();
        let (tx, rx) = watch::channel(false);
        let dyn_bus: Arc<dyn Bus> = Arc::new(bus.clone());
        let launched = common::launch_engine(dyn_bus, rx).await;
        let (mut records, _) = pipeline::flows_from_pcap(
            &testdata("ndpi/sql_injection.pcap"),
            &SensorConfig::default(),
            false,
        )
        .unwrap();
        // The scan starts 10 s after the pcap's traffic (alerts age out relative to the newest).
        let t0 = records.iter().map(|r| r.last_seen_ns).max().unwrap() + 10 * S;
        records.extend(scan(t0));
        for (i, chunk) in records.chunks(100).enumerate() {
            let batch = FlowBatch {
                records: chunk.to_vec(),
                sensor: "n".into(),
                seq: i as u64,
            };
            bus.publish(flows_subject(0), batch.to_bytes())
                .await
                .unwrap();
        }
        let batches = records.len().div_ceil(100) as u64;
        common::wait_for("ingest to catch up", Duration::from_secs(30), async || {
            launched.engine.batches_ingested() >= batches
        })
        .await;
        let mut published = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(300), alerts.next()).await
        {
            published.push(m.subject);
        }
        Self {
            base: format!("http://{}", launched.addr),
            http: reqwest::Client::new(),
            _shutdown: tx,
            published,
            t0,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, json) = common::get_json(&self.http, &format!("{}{path}", self.base)).await;
        (status, json)
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, json) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {json}");
        json
    }
}

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn alert_routes_filter_page_drill_down_and_explain() {
    let f = Fixture::start().await;
    // Published on the bus, one subject per entity and type.
    assert!(
        f.published
            .contains(&"nw.alerts.flow.url_possible_sql_injection".to_owned()),
        "{:?}",
        f.published
    );
    assert!(
        f.published.contains(&"nw.alerts.host.syn_scan".to_owned()),
        "{:?}",
        f.published
    );

    let all = f.ok("/api/v2/alerts?limit=1000").await;
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 4, "{all:#}");

    // Severity ≥ error: SQL injection (150) and the scan detection (100).
    let sev = f.ok("/api/v2/alerts?severity=error&sort=-score").await;
    let t = types(&sev);
    assert_eq!(t[0], "url_possible_sql_injection", "{t:?}");
    assert!(t.contains(&"scan_detection".to_owned()));
    assert!(!t.contains(&"numeric_ip_host".to_owned()));

    // Host as attacker / victim.
    let att = f
        .ok("/api/v2/alerts?host=192.168.3.109&role=attacker")
        .await;
    let mut t = types(&att);
    t.sort();
    assert_eq!(t, ["numeric_ip_host", "url_possible_sql_injection"]);
    assert!(types(&att).contains(&"url_possible_sql_injection".to_owned()));
    let vic = f.ok("/api/v2/alerts?host=192.168.3.109&role=victim").await;
    assert_eq!(vic["total"], 0);
    let vic = f
        .ok("/api/v2/alerts?host=10.0.0.10&role=victim&type=syn_scan")
        .await;
    assert_eq!(vic["total"], 1, "{vic:#}");

    // Engaged host alerts, entity filter, paging.
    let eng = f.ok("/api/v2/alerts?state=engaged&entity=host").await;
    assert!(eng["total"].as_u64().unwrap() >= 3, "{eng:#}");
    let page = f.ok("/api/v2/alerts?limit=2&offset=1").await;
    assert_eq!(
        (
            page["total"].as_u64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(total), 2)
    );

    // Time range: everything is in the scan's second or the pcap's; far future gives nothing.
    let future = f.ok("/api/v2/alerts?from=2100-01-01T00:00:00Z").await;
    assert_eq!(future["total"], 0);
    let epoch = f
        .ok(&format!(
            "/api/v2/alerts?from={}&to={}",
            f.t0 / S,
            f.t0 / S + 60
        ))
        .await;
    assert!(epoch["total"].as_u64().unwrap() >= 3);

    // Summary.
    let sum = f.ok("/api/v2/alerts/summary?bucket=60").await;
    assert_eq!(sum["total"].as_u64(), Some(total));
    assert_eq!(sum["by_type"]["url_possible_sql_injection"], 1);
    assert!(sum["by_severity"]["error"].as_u64().unwrap() >= 2);
    assert!(!sum["over_time"].as_array().unwrap().is_empty());

    // Detail by id and by key, with the triggering flow and the drill-down links.
    let sqli = &f.ok("/api/v2/alerts?type=url_possible_sql_injection").await["items"][0];
    let detail = f.ok(&format!("/api/v2/alerts/{}", sqli["id"])).await;
    assert_eq!(detail["flow"]["client_ip"], "192.168.3.109");
    assert_eq!(detail["roles"]["client_attacker"], true);
    let by_key = f
        .ok(&format!("/api/v2/alerts/{}", sqli["key"].as_str().unwrap()))
        .await;
    assert_eq!(by_key["id"], detail["id"]);
    let flows_link = detail["links"]["host_flows"].as_str().unwrap();
    let flows = f.ok(flows_link).await;
    assert!(
        flows["total"].as_u64().unwrap() >= 1,
        "{flows_link}: {flows:#}"
    );

    // The score breakdown explains the points.
    let score = f.ok("/api/v2/hosts/10.0.0.66/score").await;
    let contribs = score["contributions"].as_array().unwrap();
    let sum_points: u64 = contribs.iter().map(|c| c["points"].as_u64().unwrap()).sum();
    assert_eq!(
        sum_points + score["omitted_points"].as_u64().unwrap(),
        score["score"]["total"].as_u64().unwrap(),
        "{score:#}"
    );
    assert!(
        contribs
            .iter()
            .any(|c| c["alert_type"] == "syn_scan" && c["entity"] == "host")
    );
    assert!(score["score"]["client_security"].as_u64().unwrap() >= 150);
    let ts = f
        .ok("/api/v2/hosts/10.0.0.66/timeseries?metric=score_as_client")
        .await;
    assert_eq!(ts["metric"], "score_as_client");

    // Bad input: clear 400s; unknown things: 404.
    for bad in [
        "/api/v2/alerts?severity=loud",
        "/api/v2/alerts?from=yesterday",
        "/api/v2/alerts?from=2000&to=1000",
        "/api/v2/alerts?role=attacker",
        "/api/v2/alerts?host=nothost",
        "/api/v2/alerts?sort=colour",
        "/api/v2/alerts?limit=0",
        "/api/v2/alerts?bogus=1",
        "/api/v2/alerts/summary?bucket=0",
        "/api/v2/hosts/10.0.0.66/timeseries?metric=nope",
    ] {
        let (status, body) = f.get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{bad}: {body}"
        );
    }
    assert_eq!(f.get("/api/v2/alerts/999999").await.0, 404);
    assert_eq!(f.get("/api/v2/hosts/10.99.99.99/score").await.0, 404);
}
