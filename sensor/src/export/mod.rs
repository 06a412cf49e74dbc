//! Export: flow records → per-shard `FlowBatch`es → the bus (DESIGN.md sections 3 and 5).
//!
//! Owns: the bounded queue between a capture thread and the async publisher, batching per
//! shard (size and linger), batch sequence numbers, publish timeouts and drop accounting.
//! Must not: block a live capture (the queue is bounded and drops when full, unless the
//! policy says block), crash or hang when the bus is down.

mod batcher;
pub mod jetstream;
mod publisher;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netwarden_api::flow::FlowRecord;
use tokio::sync::mpsc;

pub use batcher::{Batcher, ReadyBatch};
pub use publisher::publish;

use crate::metrics::SensorMetrics;

/// What to do when the export queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// `Block` when every input is a pcap file, `Drop` when any is a live interface.
    #[default]
    Auto,
    /// Wait for room: lossless backpressure (pcap replay into an in-process bus).
    Block,
    /// Drop the record and count it: a live capture never waits for the bus.
    Drop,
}

impl OverflowPolicy {
    /// The concrete policy for a run (`Auto` resolved).
    #[must_use]
    pub fn resolve(self, live: bool) -> Self {
        match self {
            Self::Auto if live => Self::Drop,
            Self::Auto => Self::Block,
            other => other,
        }
    }
}

/// Settings of the exporter.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Sensor name written in each batch.
    pub sensor_name: String,
    /// Number of shards (`names::DEFAULT_SHARDS` unless the cluster says otherwise).
    pub shards: u32,
    /// Resolved overflow policy (`Block` or `Drop`).
    pub overflow: OverflowPolicy,
    /// Records the queue holds.
    pub queue_capacity: usize,
    /// Largest encoded batch.
    pub max_batch_bytes: usize,
    /// Longest a record waits in a batch.
    pub linger: Duration,
    /// Longest a publish may take under the `Drop` policy before the batch is dropped.
    pub publish_timeout: Duration,
    /// How long the publisher waits, once, for a disconnected bus before dropping.
    pub connect_grace: Duration,
    /// How long the last records of a run may wait for room in the queue under `Drop`.
    pub final_flush_wait: Duration,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            sensor_name: "sensor".into(),
            shards: netwarden_api::names::DEFAULT_SHARDS,
            overflow: OverflowPolicy::Drop,
            queue_capacity: 65_536,
            max_batch_bytes: netwarden_api::flow::MAX_BATCH_BYTES,
            linger: netwarden_api::flow::MAX_LINGER,
            publish_timeout: Duration::from_secs(2),
            connect_grace: Duration::from_secs(2),
            final_flush_wait: Duration::from_secs(5),
        }
    }
}

/// Totals of one exporter (the summary of a run; metrics are separate and may be shared).
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Records given to the queue by the flow tables.
    pub records_in: AtomicU64,
    /// Records published (client copies).
    pub records_exported: AtomicU64,
    /// Records dropped (queue full or their batch dropped).
    pub records_dropped: AtomicU64,
    /// Batches published.
    pub batches_published: AtomicU64,
    /// Batches dropped.
    pub batches_dropped: AtomicU64,
}

impl ExportCounters {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The capture side of the export queue (one clone per capture thread).
#[derive(Debug, Clone)]
pub struct RecordSender {
    tx: mpsc::Sender<FlowRecord>,
    policy: OverflowPolicy,
    counters: Arc<ExportCounters>,
    metrics: Arc<SensorMetrics>,
    final_flush_wait: Duration,
}

/// The publisher side of the export queue.
#[derive(Debug)]
pub struct RecordReceiver {
    rx: mpsc::Receiver<FlowRecord>,
    counters: Arc<ExportCounters>,
    metrics: Arc<SensorMetrics>,
}

/// A bounded export queue.
pub fn queue(config: &ExportConfig, metrics: Arc<SensorMetrics>) -> (RecordSender, RecordReceiver) {
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let counters = Arc::new(ExportCounters::default());
    (
        RecordSender {
            tx,
            policy: config.overflow,
            counters: counters.clone(),
            metrics: metrics.clone(),
            final_flush_wait: config.final_flush_wait,
        },
        RecordReceiver {
            rx,
            counters,
            metrics,
        },
    )
}

impl RecordSender {
    /// Queues a record from a capture thread (never from async code: `Block` waits).
    /// Under `Drop`, a full queue drops the record and counts it.
    pub fn send(&self, record: FlowRecord) {
        self.counters.records_in.fetch_add(1, Ordering::Relaxed);
        let sent = match self.policy {
            OverflowPolicy::Drop => self
                .tx
                .try_send(record)
                .map_err(|e| matches!(e, mpsc::error::TrySendError::Full(_))),
            _ => self.tx.blocking_send(record).map_err(|_| false),
        };
        self.account(sent);
    }

    /// Queues a record from async code (a flow listener) without ever waiting, whatever the
    /// policy: a full queue drops the record and counts it, because a listener that stalls
    /// makes the kernel drop whole datagrams, templates included. Whether it was queued.
    pub fn try_send(&self, record: FlowRecord) -> bool {
        self.counters.records_in.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .tx
            .try_send(record)
            .map_err(|e| matches!(e, mpsc::error::TrySendError::Full(_)));
        let ok = sent.is_ok();
        self.account(sent);
        ok
    }

    /// Queues one of the last records of a run: under `Drop`, waits up to the configured
    /// final-flush time in total for room, so a shutdown does not throw away the whole table.
    pub fn send_final(&self, record: FlowRecord, deadline: Instant) {
        if self.policy != OverflowPolicy::Drop {
            self.send(record);
            return;
        }
        self.counters.records_in.fetch_add(1, Ordering::Relaxed);
        let mut record = record;
        loop {
            match self.tx.try_send(record) {
                Ok(()) => return self.account(Ok(())),
                Err(mpsc::error::TrySendError::Full(r)) if Instant::now() < deadline => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    return self.account(Err(matches!(e, mpsc::error::TrySendError::Full(_))));
                }
            }
        }
    }

    /// The deadline for [`RecordSender::send_final`] calls starting now.
    pub fn final_deadline(&self) -> Instant {
        Instant::now() + self.final_flush_wait
    }

    /// `Err(true)`: dropped because full; `Err(false)`: the publisher is gone.
    fn account(&self, sent: Result<(), bool>) {
        if sent.is_ok() {
            self.metrics.export_queue_depth.inc();
        } else {
            self.counters
                .records_dropped
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.records_dropped.inc();
        }
    }

    /// The counters of this queue's exporter.
    pub fn counters(&self) -> &Arc<ExportCounters> {
        &self.counters
    }
}
