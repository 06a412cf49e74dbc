//! The engine hot-reloads `nw-config` from a real nats-server (issue 6): an `AlertExclusion`
//! put into the bucket stops the excluded alerts for new flows and is reported applied in
//! `nw-status`; bad entries are reported and never stop the engine; deleting the exclusion
//! brings the alerts back. The pick-up time is measured and printed (the bound asserted is
//! generous: CI machines are busy).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, Kv, NatsBus, NatsKv, Publisher};
use netwarden_api::crd::{StatusReport, entry_from_manifest, status_key};
use netwarden_api::flow::{FlowBatch, FlowSource};
use netwarden_api::names::{CONFIG_BUCKET, STATUS_BUCKET, flows_subject};
use netwarden_engine::config::{self, ConfigMetrics};
use netwarden_testkit::NatsServer;
use serde_json::Value;
use tokio::sync::watch;

mod common;

const REPLICA: &str = "engine-0.test";

fn now_ns() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

struct Fixture {
    base: String,
    http: reqwest::Client,
    bus: NatsBus,
    engine: netwarden_engine::Engine,
    config: NatsKv,
    status: NatsKv,
    next_id: u64,
    seq: u64,
    _shutdown: watch::Sender<bool>,
    _nats: NatsServer,
}

impl Fixture {
    async fn start() -> Self {
        // reqwest is built without a default TLS provider (the engine picks ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = NatsServer::start();
        let bus = NatsBus::connect(NatsOptions {
            wait_for_connection: true,
            ..NatsOptions::new(nats.url(), "engine-test")
        })
        .await
        .unwrap();
        let (tx, rx) = watch::channel(false);
        let launched =
            common::launch_engine(Arc::new(bus.clone()) as Arc<dyn Bus>, rx.clone()).await;
        bus.flush().await.unwrap();
        let _live = config::spawn_nats(
            launched.engine.clone(),
            &bus,
            REPLICA,
            Arc::new(ConfigMetrics::default()),
            Arc::new(config::exclusions::NoDirectory),
            None,
            rx,
        );
        // What the operator would use: its own connection.
        let operator = NatsBus::connect(NatsOptions {
            wait_for_connection: true,
            ..NatsOptions::new(nats.url(), "operator-test")
        })
        .await
        .unwrap();
        let config = NatsKv::open(operator.client().clone(), CONFIG_BUCKET)
            .await
            .unwrap();
        let status = NatsKv::open(operator.client().clone(), STATUS_BUCKET)
            .await
            .unwrap();
        Self {
            base: format!("http://{}", launched.addr),
            http: reqwest::Client::new(),
            bus,
            engine: launched.engine,
            config,
            status,
            next_id: 1,
            seq: 0,
            _shutdown: tx,
            _nats: nats,
        }
    }

    /// Publishes one unanswered SYN from `client` and waits until the engine applied it.
    async fn syn_from(&mut self, client: &str) {
        self.next_id += 1;
        let mut record = common::syn(self.next_id, client, "10.0.0.10", 443, now_ns());
        // Captured packets: the TCP checks apply (no payload → tcp_no_data_exchanged).
        record.source = FlowSource::Pcap as i32;
        let batch = FlowBatch {
            records: vec![record],
            sensor: "n".into(),
            seq: self.seq,
        };
        self.seq += 1;
        let before = self.engine.batches_ingested();
        self.bus
            .publish(flows_subject(0), batch.to_bytes())
            .await
            .unwrap();
        let engine = self.engine.clone();
        common::wait_for("the batch", Duration::from_secs(30), async || {
            engine.batches_ingested() > before
        })
        .await;
    }

    async fn alert_types(&self, host: &str) -> Vec<String> {
        let (status, _, page) = common::get_json(
            &self.http,
            &format!("{}/api/v2/alerts?host={host}&limit=100", self.base),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn put_manifest(&self, doc: Value) -> String {
        let (key, json) = entry_from_manifest(&doc).unwrap();
        self.config.put(&key, Bytes::from(json)).await.unwrap();
        key
    }

    /// Waits for this replica's report on `kind.ns.name` to satisfy `done`; returns it and
    /// how long it took.
    async fn report(
        &self,
        ns: &str,
        name: &str,
        done: impl Fn(&StatusReport) -> bool,
    ) -> (StatusReport, Duration) {
        let key = status_key("AlertExclusion", Some(ns), name, REPLICA);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        loop {
            if let Some(v) = self.status.get(&key).await.unwrap() {
                let report: StatusReport = serde_json::from_slice(&v).unwrap();
                if done(&report) {
                    return (report, started.elapsed());
                }
            }
            assert!(Instant::now() < deadline, "no matching report under {key}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn exclusion(generation: i64, cidr: &str) -> Value {
    serde_json::json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion",
        "metadata": {"name": "lab.scanner", "namespace": "lab", "generation": generation},
        "spec": {"hosts": [{"cidr": cidr, "side": "client"}], "alertTypes": ["all"],
                 "reason": "the lab's scanner"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_hot_reload_from_nats_kv_and_report_status() {
    let mut f = Fixture::start().await;

    // Before: a SYN from the scanner raises flow alerts.
    f.syn_from("10.9.1.1").await;
    let before = f.alert_types("10.9.1.1").await;
    assert!(!before.is_empty(), "an unanswered SYN raises a flow alert");

    // The exclusion arrives: reported applied, generation echoed.
    let started = Instant::now();
    f.put_manifest(exclusion(1, "10.9.0.0/16")).await;
    let (report, _) = f.report("lab", "lab.scanner", |r| r.generation == 1).await;
    let took = started.elapsed();
    eprintln!("engine: AlertExclusion put → applied report in {took:?}");
    assert!(report.applied, "{report:?}");
    assert!(took < Duration::from_secs(10));

    // New flows from the excluded network raise nothing; others still do.
    let excluded_before = f.engine.read().analysis.counters.excluded;
    f.syn_from("10.9.1.2").await;
    assert_eq!(f.alert_types("10.9.1.2").await, Vec::<String>::new());
    assert!(f.engine.read().analysis.counters.excluded > excluded_before);
    f.syn_from("10.8.1.1").await;
    assert_eq!(f.alert_types("10.8.1.1").await, before, "not excluded");
    // Alerts raised before the exclusion stay.
    assert_eq!(f.alert_types("10.9.1.1").await, before);

    // A new generation narrows it: 10.9.1.3 is outside and alerts again.
    f.put_manifest(exclusion(2, "10.9.1.2/32")).await;
    f.report("lab", "lab.scanner", |r| r.generation == 2 && r.applied)
        .await;
    f.syn_from("10.9.1.3").await;
    assert_eq!(f.alert_types("10.9.1.3").await, before);

    // Garbage under a key: ignored, reported, the engine carries on with what it had.
    f.config
        .put(
            "AlertExclusion.lab.broken",
            Bytes::from_static(b"{\"generation\": 4, \"spec\":"),
        )
        .await
        .unwrap();
    let (broken, _) = f.report("lab", "broken", |_| true).await;
    assert!(!broken.applied);
    assert_eq!(broken.generation, 0, "unparsable: no generation known");
    assert!(broken.message.unwrap().contains("not a valid entry"));
    // An entry that parses but does not validate: the field and the fix are named.
    let mut bad = serde_json::json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion", "namespace": "lab",
        "name": "wide", "generation": 3,
        "spec": {"hosts": [{"cidr": "10.0.0.0/33"}], "alertTypes": ["all"]}
    });
    f.config
        .put("AlertExclusion.lab.wide", Bytes::from(bad.to_string()))
        .await
        .unwrap();
    let (wide, _) = f.report("lab", "wide", |_| true).await;
    assert_eq!((wide.applied, wide.generation), (false, 3));
    assert!(wide.message.unwrap().contains("spec.hosts[0].cidr"));
    f.syn_from("10.9.1.2").await;
    assert!(f.alert_types("10.9.1.2").await.is_empty(), "still excluded");
    // Fixed: applied, and the error is gone.
    bad["spec"]["hosts"][0]["cidr"] = "10.7.0.0/16".into();
    bad["generation"] = 4.into();
    f.config
        .put("AlertExclusion.lab.wide", Bytes::from(bad.to_string()))
        .await
        .unwrap();
    let (wide, _) = f.report("lab", "wide", |r| r.generation == 4).await;
    assert!(wide.applied && wide.message.is_none(), "{wide:?}");

    // Deleted: the report goes, and new flows alert again.
    f.config
        .delete("AlertExclusion.lab.lab_scanner")
        .await
        .unwrap();
    let key = status_key("AlertExclusion", Some("lab"), "lab.scanner", REPLICA);
    common::wait_for("the report to go", Duration::from_secs(10), async || {
        f.status.get(&key).await.unwrap().is_none()
    })
    .await;
    f.syn_from("10.9.1.2").await;
    // The same 5-tuple at a new time is a new flow: it alerts now.
    assert!(!f.alert_types("10.9.1.2").await.is_empty());

    // The engine still answers.
    let (status, _, _) = common::get_json(&f.http, &format!("{}/readyz", f.base)).await;
    assert_eq!(status, 200);
}

/// `standalone --config DIR`: the directory plays the operator through the same path; an edit
/// of a file is picked up while the engine runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_directory_is_followed_through_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exclusions.yaml");
    let manifest = |cidr: &str| {
        format!(
            "apiVersion: netwarden.io/v1alpha1\nkind: AlertExclusion\nmetadata: {{name: lab, namespace: lab}}\nspec: {{hosts: [{{cidr: \"{cidr}\"}}], alertTypes: [all]}}\n---\nkind: Analysis\nspec: {{}}\n"
        )
    };
    std::fs::write(&file, manifest("10.9.0.0/16")).unwrap();
    let bus = netwarden_api::bus::MemoryBus::default();
    let (_tx, rx) = watch::channel(false);
    let launched = common::launch_engine(Arc::new(bus) as Arc<dyn Bus>, rx.clone()).await;
    let engine = launched.engine.clone();
    let metrics = Arc::new(ConfigMetrics::default());
    let live = config::start_dir(engine.clone(), dir.path(), Arc::clone(&metrics), rx).await;
    // Applied before start_dir returns: a replay starts with its exclusions in force.
    assert_eq!(*live.applied.borrow(), 1);
    let excluded = |ip: &str| {
        engine
            .read()
            .analysis
            .exclusions
            .host_excluded("syn_scan", ip.parse().unwrap(), 0)
    };
    assert!(excluded("10.9.1.1") && !excluded("10.8.1.1"));
    assert_eq!(metrics.exclusions.get(), 1);

    let started = Instant::now();
    std::fs::write(&file, manifest("10.8.0.0/16")).unwrap();
    common::wait_for("the edit to apply", Duration::from_secs(10), async || {
        excluded("10.8.1.1")
    })
    .await;
    eprintln!(
        "standalone: file edit → exclusions swapped in {:?}",
        started.elapsed()
    );
    assert!(!excluded("10.9.1.1"));
    // A broken edit keeps the last valid version in force (as the operator does) ...
    std::fs::write(&file, manifest("10.8.0.0/99")).unwrap();
    tokio::time::sleep(2 * config::files::POLL_EVERY).await;
    assert!(excluded("10.8.1.1"));
    // ... while a new object that is invalid from the start is rejected, counted and left out.
    std::fs::write(
        dir.path().join("more.yaml"),
        "kind: AlertExclusion\nmetadata: {name: typo}\nspec: {hosts: [{cidr: 10.0.0.0/33}], alertTypes: [all]}\n",
    )
    .unwrap();
    common::wait_for(
        "the bad object to be rejected",
        Duration::from_secs(10),
        async || metrics.rejected.get() >= 1,
    )
    .await;
    assert!(excluded("10.8.1.1"));
    assert_eq!(metrics.exclusions.get(), 1);
}
