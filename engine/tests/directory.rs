//! The engine consumes `nw-directory` from a real nats-server (issue 6 §5): hosts are named
//! with their namespace, pod, workload and node in API responses, scores and traffic roll up
//! by namespace and workload, an `AlertExclusion` pod selector resolves to the Pods the
//! directory lists (and follows them as Pods come), and a malformed entry is dropped without
//! harm.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, Kv, NatsBus, NatsKv, Publisher};
use netwarden_api::crd::{StatusReport, entry_from_manifest, status_key};
use netwarden_api::directory::{DirectoryEntry, EndpointKind, Workload, directory_key};
use netwarden_api::flow::{FlowBatch, FlowSource};
use netwarden_api::names::{CONFIG_BUCKET, DIRECTORY_BUCKET, STATUS_BUCKET, flows_subject};
use netwarden_engine::config::{self, ConfigMetrics};
use netwarden_engine::directory::{self as dir, DirectoryMetrics, DirectoryPods};
use netwarden_testkit::NatsServer;
use serde_json::Value;
use tokio::sync::watch;

mod common;

fn now_ns() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

fn pod(ip: &str, ns: &str, name: &str, workload: &str, app: &str) -> DirectoryEntry {
    let mut e = DirectoryEntry::new(ip.parse().unwrap(), EndpointKind::Pod, name);
    e.namespace = Some(ns.into());
    e.workload = Some(Workload {
        kind: "Deployment".into(),
        name: workload.into(),
    });
    e.node = Some("node-a".into());
    e.services = vec![workload.into()];
    e.labels.insert("app".into(), app.into());
    e
}

async fn connect(url: &str, name: &str) -> NatsBus {
    NatsBus::connect(NatsOptions {
        wait_for_connection: true,
        ..NatsOptions::new(url, name)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_named_rolled_up_and_selected_by_pod_labels() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = NatsServer::start();
    let bus = connect(&nats.url(), "engine").await;
    let (_tx, rx) = watch::channel(false);
    let launched = common::launch_engine(Arc::new(bus.clone()) as Arc<dyn Bus>, rx.clone()).await;
    bus.flush().await.unwrap();
    let engine = launched.engine.clone();
    let metrics = Arc::new(DirectoryMetrics::default());
    let changed = dir::spawn_nats(engine.directory.clone(), &bus, metrics.clone(), rx.clone());
    let _live = config::spawn_nats(
        engine.clone(),
        &bus,
        "engine-0",
        Arc::new(ConfigMetrics::default()),
        Arc::new(DirectoryPods(engine.directory.clone())),
        Some(changed),
        rx,
    );

    // The operator's side: the directory and the configuration.
    let operator = connect(&nats.url(), "operator").await;
    let directory = NatsKv::open(operator.client().clone(), DIRECTORY_BUCKET)
        .await
        .unwrap();
    let config = NatsKv::open(operator.client().clone(), CONFIG_BUCKET)
        .await
        .unwrap();
    let status = NatsKv::open(operator.client().clone(), STATUS_BUCKET)
        .await
        .unwrap();
    let started = Instant::now();
    for e in [
        pod("10.244.0.7", "shop", "web-7d4b9-aaaaa", "web", "web"),
        pod("10.244.0.8", "shop", "web-7d4b9-bbbbb", "web", "web"),
        pod("10.244.0.9", "shop", "db-0", "db", "db"),
        pod("10.244.1.5", "lab", "scanner-1", "scanner", "scanner"),
    ] {
        directory
            .put(&directory_key(e.ip), Bytes::from(e.to_json()))
            .await
            .unwrap();
    }
    directory
        .put("10.244.9.9", Bytes::from_static(b"{\"ip\": 5}"))
        .await
        .unwrap();
    let d = engine.directory.clone();
    let m = metrics.clone();
    common::wait_for("the directory", Duration::from_secs(10), async || {
        dir::read(&d).len() == 4 && m.rejected.get() == 1
    })
    .await;
    eprintln!(
        "engine: 5 nw-directory puts → folded in {:?}",
        started.elapsed()
    );
    assert_eq!(
        metrics.rejected.get(),
        1,
        "the malformed entry is dropped and counted"
    );

    // Traffic: the scanner (lab) opens unanswered TCP flows to both web pods and the db.
    let mut seq = 0;
    let mut id = 0;
    let mut send = async |client: &str, server: &str| {
        id += 1;
        let mut r = common::syn(id, client, server, 443, now_ns());
        r.source = FlowSource::Pcap as i32;
        let batch = FlowBatch {
            records: vec![r],
            sensor: "node-a".into(),
            seq,
        };
        seq += 1;
        let before = engine.batches_ingested();
        bus.publish(flows_subject(0), batch.to_bytes())
            .await
            .unwrap();
        let e = engine.clone();
        common::wait_for("a batch", Duration::from_secs(30), async || {
            e.batches_ingested() > before
        })
        .await;
    };
    send("10.244.1.5", "10.244.0.7").await;
    send("10.244.1.5", "10.244.0.8").await;
    send("10.244.1.5", "10.244.0.9").await;

    let http = reqwest::Client::new();
    let base = format!("http://{}", launched.addr);
    let get = async |path: &str| -> Value {
        let (code, _, json) = common::get_json(&http, &format!("{base}{path}")).await;
        assert_eq!(code, 200, "{path}: {json}");
        json
    };
    let host = get("/api/v2/hosts/10.244.0.7").await;
    assert_eq!(host["name"], "shop/web-7d4b9-aaaaa");
    assert_eq!(host["kubernetes"]["kind"], "Pod");
    assert_eq!(host["kubernetes"]["namespace"], "shop");
    assert_eq!(host["kubernetes"]["workload"], "Deployment/web");
    assert_eq!(host["kubernetes"]["node"], "node-a");
    assert_eq!(host["kubernetes"]["services"][0], "web");
    let listed = get("/api/v2/hosts?namespace=shop&workload=Deployment/web").await;
    let mut names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["shop/web-7d4b9-aaaaa", "shop/web-7d4b9-bbbbb"]);
    assert_eq!(get("/api/v2/hosts?q=shop/db").await["total"], 1);

    // Roll-ups: per namespace and workload, score and traffic summed over their hosts.
    let ns = get("/api/v2/namespaces?sort=name").await;
    let rows = ns["items"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["lab", "shop"]);
    let (lab, shop) = (&rows[0], &rows[1]);
    assert_eq!(
        (lab["hosts"].as_u64(), shop["hosts"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(lab["flows_as_client"], 3);
    assert_eq!(shop["flows_as_server"], 3);
    assert_eq!(shop["bytes_rcvd"], 3 * 60);
    assert!(lab["score"].as_u64().unwrap() > 0, "{lab}");
    let score_of = |ip: &str| {
        let key = netwarden_engine::hosts::HostKey {
            ip: ip.parse::<IpAddr>().unwrap(),
            vlan: 0,
        };
        let s = engine.read();
        s.analysis.scores.values(&key, s.analysis.now_ns).total
    };
    assert_eq!(
        shop["score"].as_u64().unwrap(),
        score_of("10.244.0.7") + score_of("10.244.0.8") + score_of("10.244.0.9")
    );
    let wl = get("/api/v2/workloads?namespace=shop&sort=-hosts").await;
    assert_eq!(wl["items"][0]["name"], "shop/Deployment/web");
    assert_eq!(wl["items"][0]["workload"], "Deployment/web");
    assert_eq!(wl["items"][0]["hosts"], 2);
    assert_eq!(wl["total"], 2);

    // A pod selector: the lab scanner's pods, by label, excluded from every alert type.
    let doc = serde_json::json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion",
        "metadata": {"name": "scanner-pods", "namespace": "lab", "generation": 1},
        "spec": {"podSelector": {"matchLabels": {"app": "scanner"}}, "alertTypes": ["all"]}
    });
    let (key, json) = entry_from_manifest(&doc).unwrap();
    config.put(&key, Bytes::from(json)).await.unwrap();
    let skey = status_key("AlertExclusion", Some("lab"), "scanner-pods", "engine-0");
    let report = wait_report(&status, &skey, |r| r.applied).await;
    assert_eq!(report.message, None, "{report:?}");
    let excluded = engine.read().analysis.counters.excluded;
    send("10.244.1.5", "10.244.0.9").await;
    assert!(
        engine.read().analysis.counters.excluded > excluded,
        "excluded by pod label"
    );

    // A second scanner pod appears in the directory: the selector follows it.
    let newcomer = pod("10.244.1.6", "lab", "scanner-2", "scanner", "scanner");
    directory
        .put(&directory_key(newcomer.ip), Bytes::from(newcomer.to_json()))
        .await
        .unwrap();
    let e = engine.clone();
    common::wait_for(
        "the selector to follow the new pod",
        Duration::from_secs(10),
        async || {
            e.read()
                .analysis
                .exclusions
                .host_excluded("anything", "10.244.1.6".parse().unwrap(), 0)
        },
    )
    .await;
    // A pod of another namespace with the same label is not selected.
    assert!(!engine.read().analysis.exclusions.host_excluded(
        "anything",
        "10.244.0.7".parse().unwrap(),
        0
    ));
}

async fn wait_report(
    status: &NatsKv,
    key: &str,
    done: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = status.get(key).await.unwrap() {
            let r: StatusReport = serde_json::from_slice(&v).unwrap();
            if done(&r) {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "no matching report under {key}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
