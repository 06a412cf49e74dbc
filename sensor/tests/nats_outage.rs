//! The exporter across a NATS outage (a real nats-server killed as `kill -9` and restarted on
//! the same port and store): what a live sensor exports while NATS is down is held in the
//! bounded outage buffer and stored in `NW_FLOWS` once NATS is back, exactly once; a buffer
//! smaller than the outage drops the oldest batches and counts exactly what it dropped.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netwarden_api::bus::{Bus, NatsBus, nats::NatsOptions};
use netwarden_api::flow::{FlowBatch, FlowRecord, Role, ip_to_bytes};
use netwarden_api::names::FLOWS_STREAM;
use netwarden_sensor::export::jetstream::{JetStreamArgs, JetStreamExport, PublishMode};
use netwarden_sensor::export::{self, ExportConfig, ExportCounters, OverflowPolicy, RecordSender};
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_testkit::NatsServer;
use tokio::task::JoinHandle;

fn record(i: u64) -> FlowRecord {
    FlowRecord {
        flow_id: i,
        client_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
        server_ip: ip_to_bytes("10.0.0.2".parse().unwrap()),
        tunnel: "x".repeat(200),
        ..FlowRecord::default()
    }
}

/// Polls `done` every 20 ms for at most `limit`; panics with `what` when it stays false.
async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Exporter {
    bus: Arc<dyn Bus>,
    sender: RecordSender,
    publisher: JoinHandle<Arc<ExportCounters>>,
    metrics: Arc<SensorMetrics>,
}

/// A live sensor's exporter (`Drop` policy) publishing to `NW_FLOWS` on `server`.
async fn exporter(server: &NatsServer, config: ExportConfig) -> Exporter {
    let mut options = NatsOptions::new(server.url(), "sensor");
    options.wait_for_connection = true;
    let nats = NatsBus::connect(options).await.unwrap();
    let args = JetStreamArgs {
        publish: PublishMode::Jetstream,
        max_in_flight: 256,
        flows_max_age: 3600,
        flows_max_bytes: 1 << 30,
    };
    let bus = JetStreamExport::start(&nats, &args).await.bus();
    let metrics = Arc::new(SensorMetrics::new());
    let (sender, receiver) = export::queue(&config, Arc::clone(&metrics));
    let publisher = tokio::spawn(export::publish(receiver, Arc::clone(&bus), config));
    Exporter {
        bus,
        sender,
        publisher,
        metrics,
    }
}

/// The flow ids of the client copies stored in `NW_FLOWS`, in stream order.
async fn stored_client_ids(url: &str) -> Vec<u64> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(FLOWS_STREAM).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut ids = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let batch = FlowBatch::from_bytes(m.subject.as_str(), &m.payload).unwrap();
        ids.extend(
            batch
                .records
                .iter()
                .filter(|r| r.role == Role::Client as i32)
                .map(|r| r.flow_id),
        );
    }
    ids
}

/// Sends `before` records with NATS up, kills it, sends `during`, restarts it on the same port
/// and store, and ends the run. Returns the exporter's counters, metrics and the server.
async fn outage_run(
    config: ExportConfig,
    before: std::ops::Range<u64>,
    during: std::ops::Range<u64>,
) -> (Arc<ExportCounters>, Arc<SensorMetrics>, NatsServer) {
    let server = NatsServer::start();
    let e = exporter(&server, config).await;
    let n_before = before.end - before.start;
    before.for_each(|i| e.sender.send(record(i)));
    let m = Arc::clone(&e.metrics);
    wait_until(
        "the records before the outage are published",
        Duration::from_secs(20),
        || m.records_exported.get() == n_before,
    )
    .await;

    let (port, store) = server.kill();
    let bus = Arc::clone(&e.bus);
    wait_until("the bus sees the outage", Duration::from_secs(20), || {
        !bus.is_connected()
    })
    .await;
    let n_during = during.end - during.start;
    during.for_each(|i| e.sender.send(record(i)));
    // Every record of the outage reaches the publisher: held, or dropped by a full buffer.
    wait_until(
        "the outage records are held",
        Duration::from_secs(20),
        || {
            u64::try_from(m.outage_buffered_records.get()).unwrap() + m.outage_dropped.get()
                == n_during
        },
    )
    .await;
    assert_eq!(
        m.records_exported.get(),
        n_before,
        "nothing published while NATS is down"
    );

    let server = NatsServer::start_with(port, store);
    wait_until(
        "the held records are published",
        Duration::from_secs(30),
        || m.outage_buffered_records.get() == 0,
    )
    .await;
    drop(e.sender);
    let counters = tokio::time::timeout(Duration::from_secs(30), e.publisher)
        .await
        .expect("the publisher ends")
        .unwrap();
    (counters, e.metrics, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_exported_while_nats_is_down_are_stored_once_it_is_back() {
    let config = ExportConfig {
        overflow: OverflowPolicy::Drop,
        ..ExportConfig::default()
    };
    let (counters, metrics, server) = outage_run(config, 0..100, 100..400).await;
    assert_eq!(ExportCounters::get(&counters.records_exported), 400);
    assert_eq!(ExportCounters::get(&counters.records_dropped), 0);
    assert_eq!(metrics.outage_dropped.get(), 0);
    let ids = stored_client_ids(&server.url()).await;
    // Each record stored exactly once (the resend is deduplicated by Nats-Msg-Id).
    assert_eq!(ids.len(), 400);
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        (0..400).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_smaller_than_the_outage_drops_and_counts_the_oldest() {
    let config = ExportConfig {
        overflow: OverflowPolicy::Drop,
        // Every record copy fills a batch on its own (~260 bytes): the buffer holds a dozen.
        max_batch_bytes: 64,
        outage_buffer_bytes: 4096,
        ..ExportConfig::default()
    };
    let (counters, metrics, server) = outage_run(config, 0..20, 20..120).await;
    let exported = ExportCounters::get(&counters.records_exported);
    let dropped = ExportCounters::get(&counters.records_dropped);
    assert_eq!(exported + dropped, 120);
    assert!(
        dropped > 50,
        "a 4 KiB buffer cannot hold 100 records: {dropped} dropped"
    );
    // Every drop is the outage buffer's, and counted once.
    assert_eq!(metrics.outage_dropped.get(), dropped);
    assert_eq!(metrics.records_dropped.get(), dropped);

    let ids = stored_client_ids(&server.url()).await;
    assert_eq!(
        ids.len() as u64,
        exported,
        "what is counted exported is stored, once"
    );
    let stored: BTreeSet<u64> = ids.into_iter().collect();
    // The records before the outage, then the newest of the outage: the oldest were dropped.
    let kept = 100 - dropped;
    let expected: BTreeSet<u64> = (0..20).chain(120 - kept..120).collect();
    assert_eq!(stored, expected);
}
