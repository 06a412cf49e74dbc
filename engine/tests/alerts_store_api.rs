//! Acknowledging, deleting and validating alert requests, and the flow history, with the
//! in-memory store and with the persistent one (`--data`): the same input and the same requests
//! give the same answers in both.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use netwarden_api::bus::{Bus, MemoryBus, Publisher};
use netwarden_api::flow::{FlowBatch, FlowRecord};
use netwarden_api::names::flows_subject;
use netwarden_engine::state::StateConfig;
use netwarden_engine::store::db::StoreConfig;
use netwarden_sensor::pipeline::{self, SensorConfig};
use netwarden_testkit::testdata;
use serde_json::Value;
use tokio::sync::watch;

mod common;

const S: u64 = 1_000_000_000;

struct Fixture {
    base: String,
    http: reqwest::Client,
    _shutdown: watch::Sender<bool>,
    _data: Option<tempfile::TempDir>,
    t0: u64,
}

impl Fixture {
    async fn start(persistent: bool) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = persistent.then(|| tempfile::tempdir().unwrap());
        let store = data.as_ref().map(|d| StoreConfig::in_dir(d.path()));
        let bus = MemoryBus::default();
        let (tx, rx) = watch::channel(false);
        let dyn_bus: Arc<dyn Bus> = Arc::new(bus.clone());
        let launched = netwarden_engine::launch_with_store(
            dyn_bus,
            &StateConfig::default(),
            store.as_ref(),
            "127.0.0.1:0".parse().unwrap(),
            |_| {},
            rx,
        )
        .await
        .unwrap();
        let (mut records, _) = pipeline::flows_from_pcap(
            &testdata("ndpi/sql_injection.pcap"),
            &SensorConfig::default(),
            false,
        )
        .unwrap();
        let t0 = records.iter().map(|r| r.last_seen_ns).max().unwrap() + 10 * S;
        // A SYN scan of 300 ports in 15 s.
        records.extend((0..300u64).map(|i| -> FlowRecord {
            common::syn(
                10_000 + i,
                "10.0.0.66",
                "10.0.0.10",
                1 + i as u32,
                t0 + i * 50_000_000,
            )
        }));
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
        Self {
            base: format!("http://{}", launched.addr),
            http: reqwest::Client::new(),
            _shutdown: tx,
            _data: data,
            t0,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> (u16, String, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        (
            status,
            ctype,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, method: reqwest::Method, path: &str) -> Value {
        let (status, _, json) = self.send(method, path).await;
        assert_eq!(status, 200, "{path}: {json}");
        json
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(reqwest::Method::GET, path).await
    }
}

fn total(v: &Value) -> u64 {
    v["total"].as_u64().unwrap()
}

/// Runs the story on one fixture; returns every answer, to compare the two stores.
async fn story(f: &Fixture) -> Vec<Value> {
    use reqwest::Method;
    let mut seen = Vec::new();
    let all = f.get("/api/v2/alerts?limit=1000&sort=id").await;
    let n = total(&all);
    assert!(n >= 5, "{all:#}");
    seen.push(all.clone());

    // Bad requests: 400 problems that name what is wrong.
    let long = "x".repeat(600);
    let types = vec!["a"; 65].join(",");
    for bad in [
        "/api/v2/alerts?acknowledged=maybe".to_owned(),
        "/api/v2/alerts?type=syn_scan;drop".to_owned(),
        format!("/api/v2/alerts?type={types}"),
        format!("/api/v2/alerts?entity_value={long}"),
        format!("/api/v2/alerts?observation_point={long}"),
        "/api/v2/alerts?bucket=60".to_owned(),
        "/api/v2/alerts?entity=router".to_owned(),
        "/api/v2/alerts?state=asleep".to_owned(),
        "/api/v2/alerts/summary?limit=5".to_owned(),
        format!("/api/v2/alerts/{long}"),
        "/api/v2/flows/history?host=nothost".to_owned(),
        "/api/v2/flows/history?protocol=carrier-pigeon".to_owned(),
        "/api/v2/flows/history?from=10&to=5".to_owned(),
        "/api/v2/flows/history?sort=colour".to_owned(),
        "/api/v2/flows/history?state=ended".to_owned(),
    ] {
        let (status, ctype, body) = f.send(Method::GET, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(ctype, "application/problem+json", "{bad}");
        assert!(!body["detail"].as_str().unwrap().is_empty());
    }
    for (method, bad) in [
        (Method::DELETE, "/api/v2/alerts"),
        (Method::POST, "/api/v2/alerts/acknowledge"),
        (Method::DELETE, "/api/v2/alerts?all=true&type=syn_scan"),
        (
            Method::POST,
            "/api/v2/alerts/acknowledge?limit=3&type=syn_scan",
        ),
        (Method::DELETE, "/api/v2/alerts?all=maybe"),
    ] {
        let (status, _, body) = f.send(method.clone(), bad).await;
        assert_eq!(status, 400, "{method} {bad}: {body}");
    }
    assert_eq!(
        f.send(Method::POST, "/api/v2/alerts/999999/acknowledge")
            .await
            .0,
        404
    );
    assert_eq!(f.send(Method::DELETE, "/api/v2/alerts/999999").await.0, 404);
    assert_eq!(f.send(Method::PUT, "/api/v2/alerts/1").await.0, 405);
    assert_eq!(
        f.get("/api/v2/alerts?limit=1000").await,
        f.get("/api/v2/alerts?limit=1000").await
    );
    assert_eq!(
        total(&f.get("/api/v2/alerts?limit=1000").await),
        n,
        "bad requests changed nothing"
    );

    // Acknowledge one, by id.
    let sqli = f
        .get("/api/v2/alerts?type=url_possible_sql_injection")
        .await["items"][0]
        .clone();
    let id = sqli["id"].as_u64().unwrap();
    let acked = f
        .ok(Method::POST, &format!("/api/v2/alerts/{id}/acknowledge"))
        .await;
    assert_eq!(acked["acknowledged"], true);
    assert_eq!(acked["id"], id);
    let only = f.get("/api/v2/alerts?acknowledged=true").await;
    assert_eq!(total(&only), 1, "{only:#}");
    assert_eq!(only["items"][0]["id"], id);
    assert_eq!(
        total(&f.get("/api/v2/alerts?acknowledged=false").await),
        n - 1
    );
    // By filter: every host alert of the scanner; again: nothing left to acknowledge.
    let scanner = f.get("/api/v2/alerts?host=10.0.0.66&entity=host").await;
    let k = total(&scanner);
    assert!(k >= 2, "{scanner:#}");
    let r = f
        .ok(
            Method::POST,
            "/api/v2/alerts/acknowledge?host=10.0.0.66&entity=host",
        )
        .await;
    assert_eq!(r["acknowledged"], k);
    let r = f
        .ok(
            Method::POST,
            "/api/v2/alerts/acknowledge?host=10.0.0.66&entity=host",
        )
        .await;
    assert_eq!(r["acknowledged"], 0);
    assert_eq!(
        total(&f.get("/api/v2/alerts?acknowledged=true").await),
        k + 1
    );
    seen.push(f.get("/api/v2/alerts?limit=1000&sort=id").await);

    // Delete one, by id: gone, 404 after.
    let (status, _, _) = f
        .send(Method::DELETE, &format!("/api/v2/alerts/{id}"))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        f.send(Method::GET, &format!("/api/v2/alerts/{id}")).await.0,
        404
    );
    // By filter.
    let numeric = total(&f.get("/api/v2/alerts?type=numeric_ip_host").await);
    assert!(numeric >= 1);
    let r = f
        .ok(Method::DELETE, "/api/v2/alerts?type=numeric_ip_host")
        .await;
    assert_eq!(r["deleted"], numeric);
    assert_eq!(
        total(&f.get("/api/v2/alerts?type=numeric_ip_host").await),
        0
    );
    let left = f.get("/api/v2/alerts?limit=1000&sort=id").await;
    assert_eq!(total(&left), n - 1 - numeric);
    seen.push(left);

    // The summary counts what the list counts.
    let sum = f.get("/api/v2/alerts/summary?bucket=60").await;
    assert_eq!(sum["total"].as_u64(), Some(n - 1 - numeric));
    let buckets: u64 = sum["over_time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total"].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, n - 1 - numeric);
    let syn = total(&f.get("/api/v2/alerts?type=syn_scan").await);
    assert!(syn >= 1);
    assert_eq!(sum["by_type"]["syn_scan"], syn, "{sum:#}");
    seen.push(sum);

    // History: the scan's 300 flows, windowed and paged.
    let scan = f
        .get("/api/v2/flows/history?host=10.0.0.66&limit=1000")
        .await;
    assert_eq!(total(&scan), 300, "{scan:#}");
    let window = f
        .get(&format!(
            "/api/v2/flows/history?host=10.0.0.66&from={}&to={}&sort=first_seen",
            f.t0 / S,
            f.t0 / S + 4
        ))
        .await;
    // 50 ms apart from t0: those that start by the end of the window's last second.
    let to_ns = (f.t0 / S + 4) * S;
    let want = (0..300u64)
        .filter(|i| f.t0 + i * 50_000_000 <= to_ns)
        .count() as u64;
    assert!(want > 60 && want < 300);
    assert_eq!(total(&window), want, "{window:#}");
    assert_eq!(window["items"][0]["server_port"], 1);
    let page = f
        .get("/api/v2/flows/history?host=10.0.0.66&port=7&protocol=tcp")
        .await;
    assert_eq!(total(&page), 1);
    seen.push(scan);
    seen.push(window);
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_and_persistent_stores_answer_alike() {
    let memory = Fixture::start(false).await;
    let persistent = Fixture::start(true).await;
    let a = story(&memory).await;
    let b = story(&persistent).await;
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}
