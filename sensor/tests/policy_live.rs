//! The sensor hot-reloads `InterfacePolicy` entries from a real nats-server (issue 6): a
//! policy selecting `lo` for this node starts a live capture (UDP sent on loopback comes out
//! as flows on the bus) and is reported applied in `nw-status`; a filter libpcap does not
//! compile stops it and is reported with libpcap's words; a missing interface, a policy for
//! other nodes and a malformed entry are handled as documented, without a crash. The pick-up
//! time is measured and printed (the bound asserted is generous: CI machines are busy).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Kv, NatsBus, NatsKv};
use netwarden_api::crd::{StatusReport, entry_from_manifest, status_key};
use netwarden_api::flow::FlowBatch;
use netwarden_api::names::{CONFIG_BUCKET, STATUS_BUCKET};
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::SensorConfig;
use netwarden_sensor::policy::{self, Buckets, PolicyMetrics, PolicyOptions};
use netwarden_testkit::NatsServer;
use serde_json::Value;
use tokio::sync::watch;

mod common;

const NODE: &str = "node-a.test";

#[allow(clippy::needless_pass_by_value)] // json! values at the call sites
fn policy(name: &str, generation: i64, spec: Value) -> Value {
    serde_json::json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "InterfacePolicy",
        "metadata": {"name": name, "generation": generation}, "spec": spec,
    })
}

async fn put(config: &NatsKv, doc: &Value) {
    let (key, json) = entry_from_manifest(doc).unwrap();
    config.put(&key, Bytes::from(json)).await.unwrap();
}

/// Waits for this node's report on policy `name` to satisfy `done`.
async fn report(status: &NatsKv, name: &str, done: impl Fn(&StatusReport) -> bool) -> StatusReport {
    let key = status_key("InterfacePolicy", None, name, NODE);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = status.get(&key).await.unwrap() {
            let r: StatusReport = serde_json::from_slice(&v).unwrap();
            if done(&r) {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "no matching report under {key}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running policy follower for node [`NODE`] on a real nats-server, and the operator's side
/// of `nw-config` and `nw-status`.
struct Follower {
    operator: NatsBus,
    config: NatsKv,
    status: NatsKv,
    metrics: Arc<PolicyMetrics>,
    stop: watch::Sender<bool>,
    sensor: tokio::task::JoinHandle<u64>,
}

async fn follower(
    server: &NatsServer,
    bus: Arc<dyn netwarden_api::bus::Bus>,
    options: PolicyOptions,
) -> Follower {
    let connect = |name: &'static str| {
        NatsBus::connect(NatsOptions {
            wait_for_connection: true,
            ..NatsOptions::new(server.url(), name)
        })
    };
    let sensor_nats = connect("sensor-config").await.unwrap();
    let operator = connect("operator").await.unwrap();
    let config = NatsKv::open(operator.client().clone(), CONFIG_BUCKET)
        .await
        .unwrap();
    let status = NatsKv::open(operator.client().clone(), STATUS_BUCKET)
        .await
        .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let metrics = Arc::new(PolicyMetrics::default());
    let sensor = tokio::spawn(policy::run(
        Buckets::Nats(sensor_nats),
        PolicyOptions {
            node: NODE.into(),
            ..options
        },
        SensorConfig {
            sensor_name: NODE.into(),
            ..SensorConfig::default()
        },
        bus,
        Arc::new(SensorMetrics::default()),
        Arc::clone(&metrics),
        shutdown,
    ));
    Follower {
        operator,
        config,
        status,
        metrics,
        stop,
        sensor,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_policies_start_and_stop_live_captures_and_report() {
    let server = NatsServer::start();
    let (_subscriber, mut flows, bus) = common::nats_flows(&server).await;
    let Follower {
        config,
        status,
        metrics,
        stop,
        sensor,
        ..
    } = follower(
        &server,
        bus,
        PolicyOptions {
            labels: Some("role=capture,zone=a".into()),
            ..PolicyOptions::default()
        },
    )
    .await;

    // A UDP port of our own, so the filter sees only this test's packets.
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let started = Instant::now();
    put(
        &config,
        &policy(
            "loopback",
            1,
            serde_json::json!({
                "nodeSelector": {"matchLabels": {"role": "capture"}},
                "interfaces": {"include": ["lo", "eth-nw*"]},
                "bpfFilter": format!("udp and port {port}"),
                "snaplen": 512,
            }),
        ),
    )
    .await;
    let applied = report(&status, "loopback", |r| r.generation == 1).await;
    let took = started.elapsed();
    eprintln!("sensor: InterfacePolicy put → applied report in {took:?}");
    assert!(applied.applied, "{applied:?}");
    assert_eq!(applied.message.as_deref(), Some("capturing lo"));
    assert!(took < Duration::from_secs(10));
    assert_eq!(metrics.captures.get(), 1);

    // Traffic on loopback while the capture runs.
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport = sender.local_addr().unwrap().port();
    for i in 0..5u8 {
        sender.send_to(&[i; 100], ("127.0.0.1", port)).unwrap();
    }
    // libpcap delivers in immediate mode; give the capture thread a moment to read them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Generation 2 has a filter libpcap rejects: reported with libpcap's message, and the
    // capture stops, which flushes its flow table to the bus.
    put(
        &config,
        &policy(
            "loopback",
            2,
            serde_json::json!({"interfaces": {"include": ["lo"]},
                "bpfFilter": "udp and port notaport"}),
        ),
    )
    .await;
    let bad = report(&status, "loopback", |r| r.generation == 2).await;
    assert!(!bad.applied);
    let message = bad.message.unwrap();
    assert!(
        message.starts_with("bpfFilter does not compile: ") && message.contains("notaport"),
        "{message}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, flows.next())
            .await
            .expect("the captured flow on the bus")
            .unwrap();
        let batch = FlowBatch::from_bytes(&msg.subject, &msg.payload).unwrap();
        assert_eq!(batch.sensor, NODE);
        if let Some(r) = batch
            .records
            .into_iter()
            .find(|r| r.client_port == u32::from(sport) && r.server_port == u32::from(port))
        {
            break r;
        }
    };
    assert_eq!(record.l4_proto, 17);
    assert_eq!(record.c2s.as_ref().unwrap().packets, 5);
    assert_eq!(
        record.observation_point.as_ref().unwrap().interface,
        "lo",
        "the flow names the interface it was captured on"
    );
    assert_eq!(metrics.captures.get(), 0);

    // An interface that does not exist; a policy for other nodes; garbage.
    put(
        &config,
        &policy(
            "missing",
            1,
            serde_json::json!({"interfaces": {"include": ["nw-missing0"]}}),
        ),
    )
    .await;
    put(
        &config,
        &policy(
            "gpu-nodes",
            1,
            serde_json::json!({"nodeSelector": {"matchLabels": {"role": "gpu"}},
                "interfaces": {"include": ["lo"]}}),
        ),
    )
    .await;
    config
        .put(
            "InterfacePolicy._cluster.broken",
            Bytes::from_static(b"{\"generation\": 3, \"kind\": 7}"),
        )
        .await
        .unwrap();
    let missing = report(&status, "missing", |_| true).await;
    assert_eq!(
        (missing.applied, missing.message.as_deref()),
        (false, Some("interface nw-missing0 does not exist"))
    );
    let broken = report(&status, "broken", |_| true).await;
    assert_eq!((broken.applied, broken.generation), (false, 3));
    assert!(broken.message.unwrap().contains("not a valid entry"));
    assert!(
        status
            .get(&status_key("InterfacePolicy", None, "gpu-nodes", NODE))
            .await
            .unwrap()
            .is_none(),
        "a policy for other nodes gets no report from this one"
    );

    // Deleting an entry deletes this node's report on it.
    config
        .delete("InterfacePolicy._cluster.missing")
        .await
        .unwrap();
    let key = status_key("InterfacePolicy", None, "missing", NODE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.get(&key).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the report on a deleted entry stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), sensor)
        .await
        .expect("the sensor stops on shutdown")
        .unwrap();
    drop(receiver);
}

/// In a cluster the sensor has no API access: its node's labels come from the `nw-directory`
/// entry the operator writes for the Node (found by `status.hostIP`), and relabelling the node
/// moves the capture without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_labels_come_from_the_directory_entry_of_the_host_ip() {
    use netwarden_api::directory::{DirectoryEntry, EndpointKind, directory_key};
    use netwarden_api::names::DIRECTORY_BUCKET;

    let server = NatsServer::start();
    let (_subscriber, _flows, bus) = common::nats_flows(&server).await;
    let host_ip: std::net::IpAddr = "10.0.7.21".parse().unwrap();
    let Follower {
        operator,
        config,
        status,
        metrics,
        stop,
        sensor,
    } = follower(
        &server,
        bus,
        PolicyOptions {
            host_ip: Some(host_ip),
            ..PolicyOptions::default()
        },
    )
    .await;
    let directory = NatsKv::open(operator.client().clone(), DIRECTORY_BUCKET)
        .await
        .unwrap();
    let node_entry = |role: &str| {
        let entry = DirectoryEntry {
            ip: host_ip,
            kind: EndpointKind::Node,
            name: NODE.into(),
            namespace: None,
            workload: None,
            node: None,
            services: Vec::new(),
            labels: [("role".to_owned(), role.to_owned())].into(),
        };
        Bytes::from(serde_json::to_vec(&entry).unwrap())
    };
    let key = directory_key(host_ip);
    directory.put(&key, node_entry("capture")).await.unwrap();

    put(
        &config,
        &policy(
            "by-role",
            1,
            serde_json::json!({
                "nodeSelector": {"matchLabels": {"role": "capture"}},
                "interfaces": {"include": ["lo"]},
                "bpfFilter": "udp and port 9",
            }),
        ),
    )
    .await;
    let applied = report(&status, "by-role", |r| r.generation == 1).await;
    assert!(applied.applied, "{applied:?}");
    assert_eq!(applied.message.as_deref(), Some("capturing lo"));

    // The node is relabelled: the policy no longer selects it, so the capture stops and the
    // report goes (a node a policy does not select does not report on it).
    directory.put(&key, node_entry("quiet")).await.unwrap();
    let report_key = status_key("InterfacePolicy", None, "by-role", NODE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.get(&report_key).await.unwrap().is_some() || metrics.captures.get() != 0 {
        assert!(
            Instant::now() < deadline,
            "the capture outlived the node's relabelling"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    sensor.await.unwrap();
}

/// A NetFlow v5 datagram with one record 192.0.2.10:40000 → 198.51.100.20:443/TCP.
fn netflow_v5(sequence: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&5u16.to_be_bytes()); // version
    d.extend_from_slice(&1u16.to_be_bytes()); // count
    d.extend_from_slice(&60_000u32.to_be_bytes()); // sysUptime ms
    d.extend_from_slice(&1_764_000_000u32.to_be_bytes()); // unix secs
    d.extend_from_slice(&0u32.to_be_bytes()); // nsecs
    d.extend_from_slice(&sequence.to_be_bytes()); // flow sequence
    d.extend_from_slice(&[0, 0, 0, 0]); // engine type/id, sampling
    d.extend_from_slice(&[192, 0, 2, 10]); // src
    d.extend_from_slice(&[198, 51, 100, 20]); // dst
    d.extend_from_slice(&[0; 4]); // next hop
    d.extend_from_slice(&[0, 1, 0, 2]); // input, output if
    d.extend_from_slice(&7u32.to_be_bytes()); // packets
    d.extend_from_slice(&4_200u32.to_be_bytes()); // bytes
    d.extend_from_slice(&50_000u32.to_be_bytes()); // first (uptime ms)
    d.extend_from_slice(&59_000u32.to_be_bytes()); // last
    d.extend_from_slice(&40_000u16.to_be_bytes()); // src port
    d.extend_from_slice(&443u16.to_be_bytes()); // dst port
    d.extend_from_slice(&[0, 0x1b, 6, 0]); // pad, tcp flags, proto, tos
    d.extend_from_slice(&[0; 8]); // src/dst as, masks, pad
    d
}

/// Flow listeners of a policy are opened on the node, their records published, a port another
/// program holds is reported, and a deleted policy closes its listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_listeners_collect_netflow_and_close_on_delete() {
    let server = NatsServer::start();
    let (_subscriber, mut flows, bus) = common::nats_flows(&server).await;
    let Follower {
        config,
        status,
        stop,
        sensor,
        ..
    } = follower(&server, bus, PolicyOptions::default()).await;

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    put(
        &config,
        &policy(
            "collector",
            1,
            serde_json::json!({"listeners": [
                {"protocol": "netflow", "port": port, "bind": "127.0.0.1"}]}),
        ),
    )
    .await;
    let applied = report(&status, "collector", |r| r.generation == 1).await;
    assert!(applied.applied, "{applied:?}");
    assert_eq!(
        applied.message.as_deref(),
        Some(format!("listening on 127.0.0.1:{port} (netflow)").as_str())
    );

    let exporter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    exporter
        .send_to(&netflow_v5(1), ("127.0.0.1", port))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, flows.next())
            .await
            .expect("the collected flow on the bus")
            .unwrap();
        let batch = FlowBatch::from_bytes(&msg.subject, &msg.payload).unwrap();
        if let Some(r) = batch
            .records
            .into_iter()
            .find(|r| r.server_port == 443 && r.client_port == 40_000)
        {
            break r;
        }
    };
    assert_eq!(record.client_addr().unwrap().to_string(), "192.0.2.10");
    assert_eq!(record.server_addr().unwrap().to_string(), "198.51.100.20");
    assert_eq!(record.l4_proto, 6);

    // A port another program holds: reported with the OS's reason, nothing else breaks.
    let squatter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    put(
        &config,
        &policy(
            "taken",
            1,
            serde_json::json!({"listeners": [
                {"protocol": "sflow", "port": taken, "bind": "127.0.0.1"}]}),
        ),
    )
    .await;
    let refused = report(&status, "taken", |r| r.generation == 1).await;
    assert!(!refused.applied, "{refused:?}");
    assert!(
        refused
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("127.0.0.1:{taken}: ")),
        "{refused:?}"
    );

    // Deleting the policy closes its listener: the port can be bound again.
    config
        .delete("InterfacePolicy._cluster.collector")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the listener outlived its policy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), sensor)
        .await
        .expect("the sensor stops on shutdown")
        .unwrap();
    drop(squatter);
}
