//! The pipeline against a real nats-server: every record arrives; and NATS being down never
//! hangs or fails a run, it only counts dropped batches.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{Bus, NatsBus, nats::NatsOptions};
use netwarden_api::flow::{FlowBatch, Role};
use netwarden_sensor::flow::FlowConfig;
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use netwarden_testkit::NatsServer;
use tokio::sync::watch;

mod common;

fn config() -> SensorConfig {
    SensorConfig {
        sensor_name: "node-n".into(),
        flow: FlowConfig::offline(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_a_nats_subscriber() {
    let server = NatsServer::start();
    let (_subscriber, mut stream, bus) = common::nats_flows(&server).await;

    let pcap = netwarden_testkit::testdata("ndpi/WebattackRCE.pcap");
    let (expected, _) = pipeline::flows_from_pcap(&pcap, &config(), true).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let summary = pipeline::run(
        vec![Input::Pcap(pcap)],
        config(),
        bus,
        Arc::new(SensorMetrics::new()),
        shutdown,
    )
    .await
    .unwrap();
    assert_eq!(summary.records_exported, expected.len() as u64);
    assert_eq!(summary.batches_dropped, 0);

    let mut received = BTreeSet::new();
    while received.len() < expected.len() {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await else {
            break;
        };
        let batch = FlowBatch::from_bytes(&m.subject, &m.payload).unwrap();
        received.extend(
            batch
                .records
                .iter()
                .filter(|r| r.role == Role::Client as i32)
                .map(|r| (r.flow_id, r.update_seq)),
        );
    }
    let expected: BTreeSet<_> = expected.iter().map(|r| (r.flow_id, r.update_seq)).collect();
    assert_eq!(received, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_finishes_the_pcap_and_counts_drops() {
    // Nothing listens on this port.
    let url = format!("nats://127.0.0.1:{}", netwarden_testkit::free_port());
    let bus: Arc<dyn Bus> = Arc::new(
        NatsBus::connect(NatsOptions::new(url, "sensor"))
            .await
            .unwrap(),
    );
    assert!(!bus.is_connected());
    let pcap = netwarden_testkit::testdata("ndpi/WebattackRCE.pcap");
    let (_stop, shutdown) = watch::channel(false);
    let run = pipeline::run(
        vec![Input::Pcap(pcap)],
        config(),
        bus,
        Arc::new(SensorMetrics::new()),
        shutdown,
    );
    let summary = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(summary.flows, 797);
    assert_eq!(summary.batches_published, 0);
    assert!(summary.batches_dropped > 0);
    assert_eq!(summary.records_dropped, 797);
    assert_eq!(summary.records_exported, 0);
}
