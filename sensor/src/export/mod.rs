//! Export: flow records → per-shard `FlowBatch`es → the bus (DESIGN.md sections 3 and 5).
//!
//! Owns: the bounded queue between a capture thread and the async publisher, batching per
//! shard (size and linger), batch sequence numbers, publish timeouts and drop accounting.
//! Must not: block a live capture (the queue is bounded and drops when full, unless the
//! policy says block), crash or hang when the bus is down.

mod batcher;
mod encoder;
pub mod jetstream;
mod publisher;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use netwarden_api::flow::FlowRecord;
use tokio::sync::{Notify, Semaphore, TryAcquireError, mpsc};

pub use batcher::{Batcher, ReadyBatch};
pub use encoder::{BatchEncoder, EncodedBatch};
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

/// Default bound of the outage buffer: 64 MiB of encoded batches.
pub const DEFAULT_OUTAGE_BUFFER_BYTES: usize = 64 << 20;

/// Settings of the exporter.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Sensor name written in each batch.
    pub sensor_name: String,
    /// Number of shards (`names::DEFAULT_SHARDS` unless the cluster says otherwise).
    pub shards: u32,
    /// Resolved overflow policy (`Block` or `Drop`).
    pub overflow: OverflowPolicy,
    /// Records the queue of ready batches holds (client and server copies).
    pub queue_capacity: usize,
    /// Largest encoded batch.
    pub max_batch_bytes: usize,
    /// Longest a record waits in a batch.
    pub linger: Duration,
    /// Longest a publish may take under the `Drop` policy before the batch is dropped.
    pub publish_timeout: Duration,
    /// How long the publisher waits, at the end of a run, for a disconnected bus to publish the
    /// batches it holds before dropping them.
    pub connect_grace: Duration,
    /// Bytes of encoded batches held while the bus is not connected (a NATS restart); when
    /// full, `Drop` drops the oldest (counted), `Block` waits for the bus.
    pub outage_buffer_bytes: usize,
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
            outage_buffer_bytes: DEFAULT_OUTAGE_BUFFER_BYTES,
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

/// What the capture threads, the listeners and the publisher share: the per-shard batch
/// buffers and the room left in the queue of ready batches.
#[derive(Debug)]
struct Shared {
    encoder: Mutex<BatchEncoder>,
    /// Signalled when a record lands in an idle encoder (the publisher arms its linger timer).
    first_pending: Notify,
    /// Records the queue of ready batches may still take (`queue_capacity` in all).
    room: Semaphore,
    capacity: usize,
}

impl Shared {
    /// Permits a batch of `records` takes (a batch larger than the whole queue takes it all).
    fn permits(&self, records: usize) -> u32 {
        u32::try_from(records.clamp(1, self.capacity)).unwrap_or(u32::MAX)
    }
}

/// The producer side of the export queue (one clone per capture thread or listener).
///
/// A record is encoded into its shard's batch buffer by the calling thread, under a short
/// lock ([`BatchEncoder`]); only whole encoded batches cross the queue to the publisher. The
/// queue is bounded in records (`queue_capacity`): a batch that does not fit is dropped and
/// counted (`Drop`), or waited for (`Block`).
#[derive(Debug, Clone)]
pub struct RecordSender {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<EncodedBatch>,
    policy: OverflowPolicy,
    counters: Arc<ExportCounters>,
    metrics: Arc<SensorMetrics>,
    final_flush_wait: Duration,
}

/// The publisher side of the export queue.
#[derive(Debug)]
pub struct RecordReceiver {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<EncodedBatch>,
    counters: Arc<ExportCounters>,
    metrics: Arc<SensorMetrics>,
}

/// A bounded export queue.
pub fn queue(config: &ExportConfig, metrics: Arc<SensorMetrics>) -> (RecordSender, RecordReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let capacity = config.queue_capacity.clamp(1, Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared {
        encoder: Mutex::new(BatchEncoder::new(
            &config.sensor_name,
            config.shards,
            config.max_batch_bytes,
            config.linger,
        )),
        first_pending: Notify::new(),
        room: Semaphore::new(capacity),
        capacity,
    });
    let counters = Arc::new(ExportCounters::default());
    (
        RecordSender {
            shared: shared.clone(),
            tx,
            policy: config.overflow,
            counters: counters.clone(),
            metrics: metrics.clone(),
            final_flush_wait: config.final_flush_wait,
        },
        RecordReceiver {
            shared,
            rx,
            counters,
            metrics,
        },
    )
}

fn forget(permit: tokio::sync::SemaphorePermit<'_>) {
    permit.forget();
}

/// How a producer waits for room in the queue.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all: a full queue drops the batch.
    Never,
    /// As long as it takes (blocks the calling thread).
    Forever,
    /// Until this instant, polling every millisecond (blocks the calling thread).
    Until(Instant),
}

impl RecordSender {
    /// Encodes `records` into their batches under one lock; returns the batches that filled.
    fn encode<'a>(&self, records: impl IntoIterator<Item = &'a FlowRecord>) -> Vec<EncodedBatch> {
        let mut ready = Vec::new();
        let mut n = 0u64;
        let woke = {
            let mut encoder = self
                .shared
                .encoder
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let mut woke = false;
            for record in records {
                n += 1;
                woke |= encoder.add(record, now, &mut ready);
            }
            woke
        };
        self.counters.records_in.fetch_add(n, Ordering::Relaxed);
        if woke {
            self.shared.first_pending.notify_one();
        }
        ready
    }

    /// Hands ready batches to the publisher; returns how many records (client copies) were
    /// dropped because the queue was full or the publisher gone.
    fn enqueue(&self, ready: Vec<EncodedBatch>, wait: Wait) -> u64 {
        let mut dropped = 0;
        for batch in ready {
            let permits = self.shared.permits(batch.records);
            // The permits travel with the batch: the publisher gives them back.
            let room = match wait {
                Wait::Never => self
                    .shared
                    .room
                    .try_acquire_many(permits)
                    .map(forget)
                    .is_ok(),
                Wait::Forever => match tokio::runtime::Handle::try_current() {
                    // A blocking thread of the runtime (capture threads are).
                    Ok(handle) => handle
                        .block_on(self.shared.room.acquire_many(permits))
                        .map(forget)
                        .is_ok(),
                    // A plain thread: poll.
                    Err(_) => loop {
                        match self.shared.room.try_acquire_many(permits) {
                            Ok(permit) => {
                                forget(permit);
                                break true;
                            }
                            Err(TryAcquireError::NoPermits) => {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(TryAcquireError::Closed) => break false,
                        }
                    },
                },
                Wait::Until(deadline) => loop {
                    match self.shared.room.try_acquire_many(permits) {
                        Ok(permit) => {
                            forget(permit);
                            break true;
                        }
                        Err(TryAcquireError::NoPermits) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(_) => break false,
                    }
                },
            };
            let records = batch.client_records as u64;
            if room {
                match self.tx.send(batch) {
                    Ok(()) => {
                        self.metrics.export_queue_depth.inc_by(records as i64);
                        continue;
                    }
                    Err(_) => self.shared.room.add_permits(permits as usize),
                }
            }
            dropped += records;
            self.counters
                .records_dropped
                .fetch_add(records, Ordering::Relaxed);
            self.counters
                .batches_dropped
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.records_dropped.inc_by(records);
            self.metrics.batches_dropped.inc();
        }
        dropped
    }

    /// Exports a record from a capture thread (never from async code: `Block` waits). Under
    /// `Drop`, a batch that finds the queue full is dropped and its records counted.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "producers hand their records over; encoding only reads them"
    )]
    pub fn send(&self, record: FlowRecord) {
        let ready = self.encode([&record]);
        if !ready.is_empty() {
            let wait = match self.policy {
                OverflowPolicy::Drop => Wait::Never,
                _ => Wait::Forever,
            };
            self.enqueue(ready, wait);
        }
    }

    /// Exports a record from async code (a flow listener) without ever waiting, whatever the
    /// policy: a full queue drops the batch and counts it, because a listener that stalls
    /// makes the kernel drop whole datagrams, templates included. False when a batch had to
    /// be dropped.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "producers hand their records over; encoding only reads them"
    )]
    pub fn try_send(&self, record: FlowRecord) -> bool {
        self.try_send_all([&record]) == 0
    }

    /// [`RecordSender::try_send`] for many records under one lock: returns how many records
    /// (client copies of the batches this call completed) were dropped.
    pub fn try_send_all<'a>(&self, records: impl IntoIterator<Item = &'a FlowRecord>) -> u64 {
        let ready = self.encode(records);
        if ready.is_empty() {
            0
        } else {
            self.enqueue(ready, Wait::Never)
        }
    }

    /// Exports one of the last records of a run: under `Drop`, waits up to the configured
    /// final-flush time in total for room, so a shutdown does not throw away the whole table.
    pub fn send_final(&self, record: FlowRecord, deadline: Instant) {
        if self.policy != OverflowPolicy::Drop {
            self.send(record);
            return;
        }
        let ready = self.encode([&record]);
        if !ready.is_empty() {
            self.enqueue(ready, Wait::Until(deadline));
        }
    }

    /// The deadline for [`RecordSender::send_final`] calls starting now.
    pub fn final_deadline(&self) -> Instant {
        Instant::now() + self.final_flush_wait
    }

    /// The counters of this queue's exporter.
    pub fn counters(&self) -> &Arc<ExportCounters> {
        &self.counters
    }
}
