//! Export through the in-process bus: shard subjects and roles, batch size, sequence numbers,
//! linger, and the drop policy.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{Bus, MemoryBus, Message, Subscriber as _};
use netwarden_api::flow::{FlowBatch, FlowRecord, MAX_BATCH_BYTES, Role, ip_to_bytes};
use netwarden_api::names::{FLOWS_ALL, flows_subject, shard_of};
use netwarden_sensor::export::{self, ExportConfig, ExportCounters, OverflowPolicy};
use netwarden_sensor::flow::FlowConfig;
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use prost::Message as _;
use tokio::sync::watch;

/// Collects every message of `stream` until it has been quiet for `quiet`.
async fn drain(mut stream: netwarden_api::bus::MessageStream, quiet: Duration) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(quiet, stream.next()).await {
        out.push(m);
    }
    out
}

fn config() -> SensorConfig {
    SensorConfig {
        sensor_name: "node-a".into(),
        flow: FlowConfig::offline(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcap_records_reach_their_shards_with_roles() {
    let bus = MemoryBus::new(16);
    let sub = bus.subscribe(FLOWS_ALL.into()).await.unwrap();
    let collector = tokio::spawn(drain(sub, Duration::from_secs(3)));
    // 51 flows between 27 host pairs: client and server copies on many shards.
    let pcap = netwarden_testkit::testdata("ndpi/iphone.pcap");
    let (expected, _) = pipeline::flows_from_pcap(&pcap, &config(), true).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let metrics = Arc::new(SensorMetrics::new());
    let summary = pipeline::run(
        vec![Input::Pcap(pcap)],
        config(),
        Arc::new(bus.clone()),
        metrics.clone(),
        shutdown,
    )
    .await
    .unwrap();
    let messages = collector.await.unwrap();

    assert_eq!(summary.records_exported, expected.len() as u64);
    assert_eq!((summary.records_dropped, summary.batches_dropped), (0, 0));
    assert_eq!(summary.batches_published, messages.len() as u64);
    assert_eq!(metrics.records_exported.get(), expected.len() as u64);

    let mut clients = BTreeMap::new();
    let mut servers = 0;
    let mut seqs = Vec::new();
    for m in &messages {
        assert!(m.payload.len() <= MAX_BATCH_BYTES);
        let batch = FlowBatch::from_bytes(&m.subject, &m.payload).unwrap();
        assert_eq!(batch.sensor, "node-a");
        seqs.push(batch.seq);
        for r in batch.records {
            let (c, s) = (r.client_addr().unwrap(), r.server_addr().unwrap());
            let (cs, ss) = (shard_of(c, 64), shard_of(s, 64));
            if r.role == Role::Client as i32 {
                assert_eq!(m.subject, flows_subject(cs));
                clients.insert((r.flow_id, r.update_seq), r);
            } else {
                assert_eq!(r.role, Role::Server as i32);
                assert_eq!(m.subject, flows_subject(ss));
                assert_ne!(cs, ss, "a server copy only when the shards differ");
                servers += 1;
            }
        }
    }
    assert!(servers > 0);
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..messages.len() as u64).collect::<Vec<_>>(),
        "one per-sensor sequence, no gap"
    );
    let expected: BTreeMap<_, _> = expected
        .into_iter()
        .map(|r| ((r.flow_id, r.update_seq), r))
        .collect();
    assert_eq!(clients.len(), expected.len());
    for (k, mut r) in clients {
        r.role = 0;
        assert_eq!(Some(&r), expected.get(&k));
    }
}

fn record(i: u64) -> FlowRecord {
    FlowRecord {
        flow_id: i,
        client_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
        server_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
        tunnel: "x".repeat(200),
        ..FlowRecord::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_respect_the_size_limit_and_seq_increases() {
    let bus = MemoryBus::new(1024);
    let sub = bus.subscribe(FLOWS_ALL.into()).await.unwrap();
    let config = ExportConfig {
        max_batch_bytes: 8 * 1024,
        overflow: OverflowPolicy::Block,
        ..ExportConfig::default()
    };
    let (sender, receiver) = export::queue(&config, Arc::new(SensorMetrics::new()));
    let publisher = tokio::spawn(export::publish(
        receiver,
        Arc::new(bus.clone()) as Arc<dyn Bus>,
        config,
    ));
    tokio::task::spawn_blocking(move || (0..1000).for_each(|i| sender.send(record(i))))
        .await
        .unwrap();
    let counters = publisher.await.unwrap();
    let messages = drain(sub, Duration::from_millis(500)).await;
    assert!(messages.len() > 10);
    let batches: Vec<FlowBatch> = messages
        .iter()
        .map(|m| FlowBatch::from_bytes(&m.subject, &m.payload).unwrap())
        .collect();
    assert!(batches.iter().all(|b| b.encoded_len() <= 8 * 1024));
    assert!(batches.windows(2).all(|w| w[1].seq > w[0].seq));
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 1000);
    assert_eq!(ExportCounters::get(&counters.records_exported), 1000);
}

#[tokio::test]
async fn linger_flushes_a_lone_record() {
    let bus = MemoryBus::new(16);
    let mut sub = bus.subscribe(FLOWS_ALL.into()).await.unwrap();
    let config = ExportConfig {
        overflow: OverflowPolicy::Drop,
        ..ExportConfig::default()
    };
    let (sender, receiver) = export::queue(&config, Arc::new(SensorMetrics::new()));
    let publisher = tokio::spawn(export::publish(
        receiver,
        Arc::new(bus.clone()) as Arc<dyn Bus>,
        config,
    ));
    sender.send(record(1));
    // The sender is still alive: only the linger timer can flush this batch.
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("linger flush")
        .unwrap();
    let batch = FlowBatch::from_bytes(&m.subject, &m.payload).unwrap();
    assert_eq!(batch.records.len(), 1);
    drop(sender);
    publisher.await.unwrap();
}

#[tokio::test]
async fn drop_policy_counts_what_a_full_queue_drops() {
    let metrics = Arc::new(SensorMetrics::new());
    let config = ExportConfig {
        overflow: OverflowPolicy::Drop,
        queue_capacity: 4,
        // Every record fills a batch on its own: each is one batch in the queue.
        max_batch_bytes: 64,
        ..ExportConfig::default()
    };
    let (sender, receiver) = export::queue(&config, metrics.clone());
    // Nobody drains the queue yet.
    for i in 0..10 {
        sender.send(record(i));
    }
    assert_eq!(ExportCounters::get(&sender.counters().records_dropped), 6);
    assert_eq!(metrics.records_dropped.get(), 6);
    assert_eq!(ExportCounters::get(&sender.counters().batches_dropped), 6);
    assert_eq!(metrics.export_queue_depth.get(), 4);
    drop(sender);
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    let counters = export::publish(receiver, bus, config).await;
    assert_eq!(ExportCounters::get(&counters.records_exported), 4);
    assert_eq!(metrics.export_queue_depth.get(), 0);
}
