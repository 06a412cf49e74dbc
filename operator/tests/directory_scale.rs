//! Measurement, not a regression test (ignored; run with `cargo test -p netwarden-operator
//! --release --test directory_scale -- --ignored --nocapture`): how long the directory
//! publisher takes from the first list of a 10 000-Pod, 1 000-Service, 100-Node cluster to a
//! complete `nw-directory` on a real nats-server, and what one full recompute costs.
//! Numbers go to docs/PERFORMANCE.md.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use k8s_openapi::api::core::v1::Pod;
use netwarden_api::bus::{Kv, NatsKv};
use netwarden_api::names::DIRECTORY_BUCKET;
use netwarden_operator::directory::{self, model};
use netwarden_operator::telemetry::Metrics;
use netwarden_testkit::NatsServer;
use serde_json::{Value, json};

const PODS: usize = 10_000;
const SERVICES: usize = 1_000;
const NODES: usize = 100;

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app{}-5d8f-{i}", i % SERVICES), "namespace": format!("ns{}", i % 20),
            "labels": {"app": format!("app{}", i % SERVICES), "pod-template-hash": "5d8f", "tier": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app{}-5d8f", i % SERVICES), "uid": "u", "controller": true}]},
        "spec": {"nodeName": format!("node-{}", i % NODES), "containers": []},
        "status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256)}})
}

fn service(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("app{i}"), "namespace": format!("ns{}", i % 20)},
        "spec": {"clusterIP": format!("10.96.{}.{}", i / 256, i % 256), "selector": {"app": format!("app{i}")}}})
}

fn node(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("node-{i}")},
        "status": {"addresses": [{"type": "InternalIP", "address": format!("10.0.{}.{}", i / 256, i % 256)}]}})
}

#[test]
#[ignore = "measurement"]
fn full_recompute_cost() {
    let mut m = model::Model::new(1_000_000);
    for i in 0..PODS {
        let p: Pod = serde_json::from_value(pod(i)).unwrap();
        let info = model::PodInfo::from_pod(&p);
        m.pods
            .apply((info.namespace.clone(), info.name.clone()), info);
    }
    for i in 0..SERVICES {
        let s = serde_json::from_value(service(i)).unwrap();
        let info = model::ServiceInfo::from_service(&s);
        m.services
            .apply((info.namespace.clone(), info.name.clone()), info);
    }
    let started = Instant::now();
    let rounds = 10;
    let mut n = 0;
    for _ in 0..rounds {
        n = m.desired().len();
    }
    println!(
        "desired(): {n} entries in {:?} per pass",
        started.elapsed() / rounds
    );
    assert_eq!(n, PODS + SERVICES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn first_publish_of_a_large_cluster() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let kv = NatsKv::open(client, DIRECTORY_BUCKET).await.unwrap();
    let (kube, api) = FakeApi::start();
    api.set_list("/api/v1/pods", "PodList", (0..PODS).map(pod).collect());
    api.set_list(
        "/api/v1/services",
        "ServiceList",
        (0..SERVICES).map(service).collect(),
    );
    api.set_list("/api/v1/nodes", "NodeList", (0..NODES).map(node).collect());
    api.set_list(
        "/apis/apps/v1/replicasets",
        "PartialObjectMetadataList",
        vec![],
    );
    api.set_list("/apis/batch/v1/jobs", "PartialObjectMetadataList", vec![]);
    let metrics = Arc::new(Metrics::default());
    let (tx, _rx) = tokio::sync::watch::channel(model::Reporters::default());
    let started = Instant::now();
    let task = tokio::spawn(directory::run(
        kube,
        Arc::new(kv.clone()),
        directory::Config::default(),
        metrics.clone(),
        tx,
    ));
    let want = (PODS + SERVICES + NODES) as i64;
    while metrics.directory.entries.get() < want {
        assert!(started.elapsed() < Duration::from_secs(600));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "first publish: {want} entries in {:?} ({} puts)",
        started.elapsed(),
        metrics.directory.puts.get()
    );
    let read = Instant::now();
    let n = kv.entries(">").await.unwrap().len();
    println!("read back (resync): {n} entries in {:?}", read.elapsed());
    task.abort();
}
