//! The cluster path over a real nats-server: the sensor pipeline publishes a corpus pcap
//! through one NATS connection, the engine ingests it through another, and the API must show
//! exactly the flows the offline flow table finds in the same file.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, NatsBus, Publisher};
use netwarden_api::flow::{DirectionStats, FlowBatch, FlowRecord, FlowUpdate, ip_to_bytes};
use netwarden_api::names::flows_subject;
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use netwarden_testkit::{NatsServer, free_port, testdata};
use serde_json::Value;
use tokio::sync::watch;

mod common;

use common::wait_for;

const PCAP: &str = "ndpi/netbios.pcap";

async fn nats_bus(url: &str, name: &str, wait: bool) -> NatsBus {
    NatsBus::connect(NatsOptions {
        wait_for_connection: wait,
        ..NatsOptions::new(url, name)
    })
    .await
    .unwrap()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let (status, _, json) =
        common::get_json(&reqwest::Client::new(), &format!("{base}{path}")).await;
    (status, json)
}

/// (vlan, proto, client, client port, server, server port, c2s bytes, s2c bytes)
type FlowRow = (u64, u64, String, u64, String, u64, u64, u64);

fn row_of_record(r: &FlowRecord) -> FlowRow {
    (
        u64::from(r.vlan),
        u64::from(r.l4_proto),
        r.client_addr().unwrap().to_string(),
        u64::from(r.client_port),
        r.server_addr().unwrap().to_string(),
        u64::from(r.server_port),
        r.c2s.as_ref().map_or(0, |d| d.bytes),
        r.s2c.as_ref().map_or(0, |d| d.bytes),
    )
}

fn row_of_json(r: &Value) -> FlowRow {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    (
        n(&r["vlan"]),
        n(&r["l4_proto"]),
        r["client_ip"].as_str().unwrap().to_owned(),
        n(&r["client_port"]),
        r["server_ip"].as_str().unwrap().to_owned(),
        n(&r["server_port"]),
        n(&r["c2s"]["bytes"]),
        n(&r["s2c"]["bytes"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_over_nats_match_the_offline_flow_table() {
    let nats = NatsServer::start();
    let engine_bus = nats_bus(&nats.url(), "engine-test", true).await;
    let (tx, rx) = watch::channel(false);
    let bus: Arc<dyn Bus> = Arc::new(engine_bus.clone());
    let launched = common::launch_engine(bus, rx.clone()).await;
    // The subscription must have reached the server before the sensor publishes.
    engine_bus.flush().await.unwrap();
    let base = format!("http://{}", launched.addr);
    assert_eq!(get(&base, "/readyz").await.0, 200);

    let path = testdata(PCAP);
    let config = SensorConfig {
        sensor_name: "nats-node".into(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    };
    let sensor_bus: Arc<dyn Bus> = Arc::new(nats_bus(&nats.url(), "sensor-test", true).await);
    let summary = pipeline::run(
        vec![Input::Pcap(path.clone())],
        config.clone(),
        sensor_bus,
        Arc::new(SensorMetrics::default()),
        rx,
    )
    .await
    .unwrap();
    assert!(
        summary.batches_published > 0 && summary.records_dropped == 0,
        "{summary:?}"
    );
    let engine = launched.engine.clone();
    wait_for(
        "the engine to apply every batch",
        Duration::from_secs(30),
        async || engine.batches_ingested() >= summary.batches_published,
    )
    .await;
    assert_eq!(engine.batches_ingested(), summary.batches_published);
    assert_eq!(engine.status.decode_errors(), 0);

    let (offline, _) = pipeline::flows_from_pcap(&path, &config, false).unwrap();
    assert!(offline.len() >= 10, "{} flows", offline.len());
    let mut want: Vec<FlowRow> = offline.iter().map(row_of_record).collect();
    want.sort();

    let (status, page) = get(&base, "/api/v2/flows?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["total"].as_u64(), Some(offline.len() as u64));
    let items = page["items"].as_array().unwrap();
    assert!(items.iter().all(|r| r["update"] == "final"));
    let mut got: Vec<FlowRow> = items.iter().map(row_of_json).collect();
    got.sort();
    assert_eq!(got, want);

    // Host totals are the sums over flows, each flow counted at both ends.
    let mut expected: BTreeMap<(String, u64), (u64, u64, u64, u64)> = BTreeMap::new();
    for r in &offline {
        let (c2s, s2c) = (r.c2s.unwrap_or_default(), r.s2c.unwrap_or_default());
        let c = expected
            .entry((r.client_addr().unwrap().to_string(), u64::from(r.vlan)))
            .or_default();
        c.0 += c2s.bytes;
        c.1 += s2c.bytes;
        c.2 += 1;
        let s = expected
            .entry((r.server_addr().unwrap().to_string(), u64::from(r.vlan)))
            .or_default();
        s.0 += s2c.bytes;
        s.1 += c2s.bytes;
        s.3 += 1;
    }
    let (_, hosts) = get(&base, "/api/v2/hosts?limit=1000").await;
    let actual: BTreeMap<(String, u64), (u64, u64, u64, u64)> = hosts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_u64().unwrap();
            (
                (h["ip"].as_str().unwrap().to_owned(), n("vlan")),
                (
                    n("bytes_sent"),
                    n("bytes_rcvd"),
                    n("flows_as_client"),
                    n("flows_as_server"),
                ),
            )
        })
        .collect();
    assert_eq!(actual, expected);
    let (_, points) = get(&base, "/api/v2/observation-points").await;
    assert_eq!(points["items"][0]["sensor"], "nats-node");
    assert_eq!(
        points["items"][0]["flows"].as_u64(),
        Some(offline.len() as u64)
    );
    tx.send(true).unwrap();
    launched.server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_becomes_ready_when_nats_comes_up_later() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    // Nothing listens yet: connecting must not fail, the engine must start and say why it is
    // not ready.
    let bus: Arc<dyn Bus> = Arc::new(nats_bus(&url, "engine-early", false).await);
    let (_tx, rx) = watch::channel(false);
    let launched = common::launch_engine(bus, rx).await;
    let base = format!("http://{}", launched.addr);
    let (status, body) = get(&base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert!(body["reason"].as_str().unwrap().contains("nats"), "{body}");
    assert_eq!(get(&base, "/healthz").await.0, 200);

    let _nats = NatsServer::start_with(port, tempfile::tempdir().unwrap());
    wait_for("readiness", Duration::from_secs(30), async || {
        get(&base, "/readyz").await.0 == 200
    })
    .await;

    // And it ingests: publish a record until the engine has it (the subscription is re-sent on
    // connect, possibly just after readiness).
    let publisher = nats_bus(&url, "late-publisher", true).await;
    let record = FlowRecord {
        flow_id: 1,
        client_ip: ip_to_bytes(IpAddr::from([10, 1, 1, 1])),
        server_ip: ip_to_bytes(IpAddr::from([10, 1, 1, 2])),
        l4_proto: 17,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 1,
            bytes: 60,
            ..Default::default()
        }),
        ..Default::default()
    };
    let batch = FlowBatch {
        records: vec![record],
        sensor: "late".into(),
        seq: 0,
    }
    .to_bytes();
    let engine = launched.engine.clone();
    wait_for(
        "a batch ingested after NATS came up",
        Duration::from_secs(20),
        async || {
            publisher
                .publish(flows_subject(0), batch.clone())
                .await
                .unwrap();
            publisher.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            engine.batches_ingested() > 0
        },
    )
    .await;
    let (_, page) = get(&base, "/api/v2/flows").await;
    assert_eq!(page["items"][0]["client_ip"], "10.1.1.1");
}
