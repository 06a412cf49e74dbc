//! The `nw-directory` publisher end to end: the production watchers (one per kind) against a
//! scripted API server speaking list + watch (kube-rs's mocked service), writing to a REAL
//! nats-server; the test asserts the bucket's content after the first list, after watch events
//! and after a `410 Gone` relist, and what the watches asked the API server for.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)] // JSON fixture builders

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::fake_api::FakeApi;
use http::Method;
use netwarden_api::bus::{Kv, NatsKv};
use netwarden_api::directory::{DirectoryEntry, parse_entry};
use netwarden_api::names::DIRECTORY_BUCKET;
use netwarden_operator::directory::{self, model::Reporters};
use netwarden_operator::telemetry::Metrics;
use netwarden_testkit::NatsServer;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/pods";
const SERVICES: &str = "/api/v1/services";
const NODES: &str = "/api/v1/nodes";
const REPLICASETS: &str = "/apis/apps/v1/replicasets";
const JOBS: &str = "/apis/batch/v1/jobs";

fn owner(api_version: &str, kind: &str, name: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}])
}

fn pod(ns: &str, name: &str, ips: &[&str], node: &str, labels: Value, owners: Value) -> Value {
    let ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": labels,
            "ownerReferences": owners, "creationTimestamp": "2026-11-27T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ips.first().map(|v| v["ip"].clone()), "podIPs": ips}})
}

fn web_pod(name: &str, ip: &[&str], node: &str) -> Value {
    pod(
        "shop",
        name,
        ip,
        node,
        json!({"app": "web", "pod-template-hash": "6c9f8"}),
        owner("apps/v1", "ReplicaSet", "web-6c9f8"),
    )
}

fn service(ns: &str, name: &str, cluster_ip: &str, selector: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"team": "shop"}},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "selector": selector}})
}

fn meta_only(ns: &str, name: &str, owners: Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owners}})
}

fn seed(api: &FakeApi) {
    api.set_list(
        NODES,
        "NodeList",
        vec![
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "labels": {"pool": "general"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.10"},
                    {"type": "ExternalIP", "address": "203.0.113.10"}, {"type": "Hostname", "address": "node-a"}],
                    "images": [{"names": ["registry/some:image"], "sizeBytes": 1}]}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-b.zone-1"},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"},
                    {"type": "InternalIP", "address": "fd00::11"}]}}),
        ],
    );
    api.set_list(
        REPLICASETS,
        "PartialObjectMetadataList",
        vec![meta_only(
            "shop",
            "web-6c9f8",
            owner("apps/v1", "Deployment", "web"),
        )],
    );
    api.set_list(
        JOBS,
        "PartialObjectMetadataList",
        vec![meta_only(
            "ops",
            "backup-29000",
            owner("batch/v1", "CronJob", "backup"),
        )],
    );
    let mut lb = service("shop", "web-lb", "10.96.0.20", json!({"app": "web"}));
    lb["spec"]["type"] = "LoadBalancer".into();
    lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}});
    api.set_list(
        SERVICES,
        "ServiceList",
        vec![
            service("shop", "web", "10.96.0.10", json!({"app": "web"})),
            service("shop", "web-headless", "None", json!({"app": "web"})),
            lb,
            service("default", "kubernetes", "10.96.0.1", Value::Null),
        ],
    );
    let mut host_net = pod(
        "kube-system",
        "kube-proxy-x",
        &["10.0.0.10"],
        "node-a",
        json!({"k8s-app": "kube-proxy"}),
        owner("apps/v1", "DaemonSet", "kube-proxy"),
    );
    host_net["spec"]["hostNetwork"] = true.into();
    let mut pending = pod(
        "shop",
        "web-6c9f8-pend",
        &[],
        "",
        json!({"app": "web"}),
        Value::Null,
    );
    pending["status"] = json!({"phase": "Pending"});
    api.set_list(
        PODS,
        "PodList",
        vec![
            web_pod("web-6c9f8-abcde", &["10.244.1.5", "fd00:244::5"], "node-a"),
            pod(
                "shop",
                "db-0",
                &["10.244.2.7"],
                "node-b.zone-1",
                json!({"app": "db"}),
                owner("apps/v1", "StatefulSet", "db"),
            ),
            pod(
                "ops",
                "backup-29000-xyz",
                &["10.244.1.9"],
                "node-a",
                json!({}),
                owner("batch/v1", "Job", "backup-29000"),
            ),
            pod(
                "netwarden",
                "sensor-abc",
                &["10.244.1.2"],
                "node-a",
                json!({"app.kubernetes.io/name": "netwarden", "app.kubernetes.io/component": "sensor"}),
                owner("apps/v1", "DaemonSet", "netwarden-sensor"),
            ),
            host_net,
            pending,
        ],
    );
}

/// The bucket: every key, with its entry when it parses.
async fn content(kv: &NatsKv) -> BTreeMap<String, Option<DirectoryEntry>> {
    kv.entries(">")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, parse_entry(&v).ok()))
        .collect()
}

/// Waits until the bucket's keys are exactly `keys` (a hang fails after 20 s).
async fn wait_for_keys(kv: &NatsKv, keys: &[&str]) -> BTreeMap<String, DirectoryEntry> {
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = content(kv).await;
        if now.keys().map(String::as_str).eq(want.iter().copied()) {
            return now.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
        }
        assert!(
            Instant::now() < deadline,
            "keys {:?}, want {want:?}",
            now.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn json_of(entry: &DirectoryEntry) -> Value {
    serde_json::to_value(entry).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_follows_pods_services_and_nodes_into_nats_kv() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let kv = NatsKv::open(client, DIRECTORY_BUCKET).await.unwrap();
    // Left by an earlier run for a Pod deleted while no operator ran, and a foreign key.
    kv.put(
        "10.244.9.9",
        Bytes::from_static(br#"{"ip":"10.244.9.9","kind":"Pod","name":"gone"}"#),
    )
    .await
    .unwrap();
    kv.put("junk", Bytes::from_static(b"not json"))
        .await
        .unwrap();

    let (kube, api) = FakeApi::start();
    seed(&api);
    let metrics = Arc::new(Metrics::default());
    let (reporters_tx, mut reporters) = tokio::sync::watch::channel(Reporters::default());
    let config = directory::Config {
        debounce: Duration::from_millis(50),
        ..directory::Config::default()
    };
    let task = tokio::spawn(directory::run(
        kube,
        Arc::new(kv.clone()),
        config,
        metrics.clone(),
        reporters_tx,
    ));

    // 1. After the first list of every kind.
    let first = [
        "10.0.0.10",
        "203.0.113.10",
        "10.0.0.11",
        "fd00--11",
        "10.96.0.10",
        "10.96.0.20",
        "198.51.100.7",
        "10.96.0.1",
        "10.244.1.5",
        "fd00-244--5",
        "10.244.2.7",
        "10.244.1.9",
        "10.244.1.2",
    ];
    let dir = wait_for_keys(&kv, &first).await;
    assert_eq!(
        json_of(&dir["10.244.1.5"]),
        json!({"ip": "10.244.1.5", "kind": "Pod", "name": "web-6c9f8-abcde", "namespace": "shop",
            "workload": {"kind": "Deployment", "name": "web"}, "node": "node-a",
            "services": ["web", "web-headless", "web-lb"], "labels": {"app": "web"}})
    );
    assert_eq!(dir["fd00-244--5"].name, "web-6c9f8-abcde");
    assert_eq!(
        json_of(&dir["10.244.2.7"])["workload"],
        json!({"kind": "StatefulSet", "name": "db"})
    );
    assert_eq!(
        json_of(&dir["10.244.1.9"])["workload"],
        json!({"kind": "CronJob", "name": "backup"})
    );
    // A hostNetwork Pod does not take its node's address.
    assert_eq!(
        json_of(&dir["10.0.0.10"]),
        json!({"ip": "10.0.0.10", "kind": "Node", "name": "node-a", "node": "node-a", "labels": {"pool": "general"}})
    );
    assert_eq!(dir["fd00--11"].name, "node-b.zone-1");
    assert_eq!(
        json_of(&dir["198.51.100.7"]),
        json!({"ip": "198.51.100.7", "kind": "Service", "name": "web-lb", "namespace": "shop",
            "services": ["web-lb"], "labels": {"team": "shop"}})
    );
    assert_eq!(dir["10.96.0.1"].display_name(), "default/kubernetes");

    // Expected reporters: the node of the Running sensor Pod.
    tokio::time::timeout(Duration::from_secs(10), reporters.wait_for(|r| r.known))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reporters.borrow().expected("InterfacePolicy", None),
        Some(["node-a".to_string()].into())
    );

    // What the watches asked for: one list and watches per kind; finished Pods filtered by
    // the API server; lists from the watch cache; ReplicaSets and Jobs as metadata only.
    let pod_list = &api.requests(&Method::GET, PODS)[0];
    assert!(
        pod_list
            .query
            .contains("fieldSelector=status.phase!=Succeeded,status.phase!=Failed"),
        "{}",
        pod_list.query
    );
    assert!(
        pod_list.query.contains("resourceVersion=0"),
        "{}",
        pod_list.query
    );
    for path in [REPLICASETS, JOBS] {
        let seen = &api.requests(&Method::GET, path)[0];
        assert!(
            seen.accept.contains("as=PartialObjectMetadata"),
            "{path}: {}",
            seen.accept
        );
    }
    assert!(
        api.seen
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.method == Method::GET),
        "the publisher only reads the API"
    );

    // 2. Watch events: db-0 deleted, a second web Pod, a new Service selecting web Pods.
    api.watch_events(
        PODS,
        vec![
            (
                "DELETED",
                pod(
                    "shop",
                    "db-0",
                    &["10.244.2.7"],
                    "node-b.zone-1",
                    json!({"app": "db"}),
                    Value::Null,
                ),
            ),
            (
                "ADDED",
                web_pod("web-6c9f8-fghij", &["10.244.2.8"], "node-b.zone-1"),
            ),
        ],
    );
    api.watch_events(
        SERVICES,
        vec![(
            "ADDED",
            service("shop", "api", "10.96.0.30", json!({"app": "web"})),
        )],
    );
    let mut second: Vec<&str> = first
        .iter()
        .copied()
        .filter(|k| *k != "10.244.2.7")
        .collect();
    second.extend(["10.244.2.8", "10.96.0.30"]);
    let dir = wait_for_keys(&kv, &second).await;
    let web_services = ["api", "web", "web-headless", "web-lb"];
    for key in ["10.244.1.5", "10.244.2.8"] {
        // The Service arrives on its own watch: wait until both Pods list it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut entry = dir[key].clone();
        while entry.services != web_services {
            assert!(Instant::now() < deadline, "{key}: {:?}", entry.services);
            tokio::time::sleep(Duration::from_millis(25)).await;
            entry = content(&kv).await[key].clone().unwrap();
        }
        assert_eq!(entry.workload_key().as_deref(), Some("shop/Deployment/web"));
    }

    // 3. The Pod watch expires (410 Gone): the relist no longer holds the backup Pod nor the
    //    new web Pod, which must leave the bucket although no DELETED event came.
    api.set_list(
        PODS,
        "PodList",
        vec![web_pod(
            "web-6c9f8-abcde",
            &["10.244.1.5", "fd00:244::5"],
            "node-a",
        )],
    );
    api.expire_watch(PODS);
    let third: Vec<&str> = second
        .iter()
        .copied()
        .filter(|k| !["10.244.1.9", "10.244.2.8", "10.244.1.2"].contains(k))
        .collect();
    wait_for_keys(&kv, &third).await;
    assert!(
        api.requests(&Method::GET, PODS)
            .iter()
            .filter(|s| !s.query.contains("watch=true"))
            .count()
            >= 2,
        "relisted"
    );
    // The sensor Pod is gone too: no sensor is expected any more (unknown → fallback).
    tokio::time::timeout(
        Duration::from_secs(10),
        reporters.wait_for(|r| r.sensors.is_empty()),
    )
    .await
    .unwrap()
    .unwrap();

    let text = metrics.encode();
    assert!(
        text.contains(&format!(
            "netwarden_operator_directory_entries {}",
            third.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("netwarden_operator_directory_events_total{kind=\"Pod\"}"),
        "{text}"
    );
    assert!(
        metrics.directory.deletes.get() >= 2 + 1 + 3,
        "strays, db-0, relist"
    );
    task.abort();
}
