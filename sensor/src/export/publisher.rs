//! The async publisher task: publishes the encoded batches of the export queue with timeouts,
//! and the batches whose linger ran out (it owns the linger timer; producers only fill and
//! queue batches). While the bus is not connected (a NATS restart) it holds the batches in a
//! bounded outage buffer and publishes them in order once the bus is back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use netwarden_api::bus::Bus;
use netwarden_api::names::flows_subject;
use prometheus_client::metrics::counter::Counter;

use super::{EncodedBatch, ExportConfig, ExportCounters, OverflowPolicy, RecordReceiver};
use crate::metrics::SensorMetrics;

/// Logs at most one warning per interval, counting what it suppressed.
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn warn(&mut self, subject: &str, records: usize, reason: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            subject,
            records,
            reason,
            suppressed = self.suppressed,
            "flow batch dropped"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

struct Publisher {
    bus: Arc<dyn Bus>,
    config: ExportConfig,
    counters: Arc<ExportCounters>,
    metrics: Arc<SensorMetrics>,
    log: RateLimitedLog,
    /// Batches held while the bus is not connected, oldest first (published in order once it
    /// is back; JetStream's `Nats-Msg-Id` dedup makes a resend safe).
    outage: VecDeque<EncodedBatch>,
    /// Payload bytes in `outage` (at most `config.outage_buffer_bytes`, beyond one batch).
    outage_bytes: usize,
}

/// How often a publisher holding batches looks whether the bus is back.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

impl Publisher {
    /// Publishes `ready` now, or holds it in the outage buffer while the bus is not connected
    /// (or older batches wait there: order is kept).
    async fn offer(&mut self, ready: EncodedBatch) {
        if self.outage.is_empty() && self.bus.is_connected() {
            if let Err((ready, reason)) = self.publish(ready).await {
                self.failed(ready, &reason);
            }
        } else {
            self.hold(ready).await;
        }
    }

    /// Adds a batch to the outage buffer. When it is full, `Block` waits for the bus to come
    /// back (the export queue fills: backpressure); `Drop` drops the oldest batches, counted.
    async fn hold(&mut self, batch: EncodedBatch) {
        let limit = self.config.outage_buffer_bytes;
        if self.outage.is_empty() {
            tracing::warn!(
                bus = self.bus.kind(),
                "bus not connected: holding flow batches"
            );
        }
        if self.config.overflow != OverflowPolicy::Drop
            && self.outage_bytes + batch.payload.len() > limit
        {
            tracing::warn!(
                held_bytes = self.outage_bytes,
                "outage buffer full: waiting for the bus (backpressure)"
            );
            while !self.outage.is_empty() && self.outage_bytes + batch.payload.len() > limit {
                if self.bus.is_connected() {
                    self.drain().await;
                } else {
                    tokio::time::sleep(RECONNECT_POLL).await;
                }
            }
        }
        while !self.outage.is_empty() && self.outage_bytes + batch.payload.len() > limit {
            if let Some(oldest) = self.pop() {
                self.metrics
                    .outage_dropped
                    .inc_by(oldest.client_records as u64);
                self.dropped(&oldest, "outage buffer full (oldest dropped)");
            }
        }
        self.outage_bytes += batch.payload.len();
        self.metrics
            .outage_buffered_records
            .inc_by(batch.client_records as i64);
        self.outage.push_back(batch);
    }

    fn pop(&mut self) -> Option<EncodedBatch> {
        let batch = self.outage.pop_front()?;
        self.outage_bytes -= batch.payload.len();
        self.metrics
            .outage_buffered_records
            .dec_by(batch.client_records as i64);
        Some(batch)
    }

    /// Publishes the held batches, oldest first, while the bus is connected.
    async fn drain(&mut self) {
        let held = self.outage.len();
        while self.bus.is_connected() {
            let Some(batch) = self.pop() else { break };
            if let Err((batch, reason)) = self.publish(batch).await {
                self.failed(batch, &reason);
            }
        }
        if held > 0 && self.outage.is_empty() {
            tracing::info!(batches = held, "bus back: held flow batches published");
        }
    }

    /// A publish failed: held again (at the front) when the bus went away meanwhile, else
    /// dropped and counted.
    fn failed(&mut self, batch: EncodedBatch, reason: &str) {
        if self.bus.is_connected() {
            self.dropped(&batch, reason);
        } else {
            self.outage_bytes += batch.payload.len();
            self.metrics
                .outage_buffered_records
                .inc_by(batch.client_records as i64);
            self.outage.push_front(batch);
        }
    }

    fn dropped(&mut self, batch: &EncodedBatch, reason: &str) {
        let records = batch.client_records as u64;
        count(
            &self.counters.batches_dropped,
            &self.counters.records_dropped,
            records,
        );
        count_metrics(
            &self.metrics.batches_dropped,
            &self.metrics.records_dropped,
            records,
        );
        self.log
            .warn(&flows_subject(batch.shard), batch.records, reason);
    }

    /// End of the run: waits at most `connect_grace` for the bus to publish what is held, then
    /// drops (and counts) the rest.
    async fn finish(&mut self) {
        let deadline = Instant::now() + self.config.connect_grace;
        loop {
            self.drain().await;
            if self.outage.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(RECONNECT_POLL).await;
        }
        while let Some(batch) = self.pop() {
            self.metrics
                .outage_dropped
                .inc_by(batch.client_records as u64);
            self.dropped(&batch, "bus not connected at the end of the run");
        }
    }

    async fn publish(&mut self, ready: EncodedBatch) -> Result<(), (EncodedBatch, String)> {
        let subject = flows_subject(ready.shard);
        let publish = self.bus.publish(subject, ready.payload.clone());
        let result = if self.config.overflow == OverflowPolicy::Drop {
            match tokio::time::timeout(self.config.publish_timeout, publish).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("timed out after {:?}", self.config.publish_timeout)),
            }
        } else {
            // Block: wait as long as the bus is connected (lossless backpressure).
            tokio::pin!(publish);
            loop {
                match tokio::time::timeout(Duration::from_secs(1), &mut publish).await {
                    Ok(r) => break r.map_err(|e| e.to_string()),
                    Err(_) if self.bus.is_connected() => {}
                    Err(_) => break Err("bus disconnected".to_owned()),
                }
            }
        };
        match result {
            Ok(()) => {
                let (c, m) = (&self.counters, &self.metrics);
                let records = ready.client_records as u64;
                count(&c.batches_published, &c.records_exported, records);
                count_metrics(&m.batches_published, &m.records_exported, records);
                Ok(())
            }
            Err(reason) => Err((ready, reason)),
        }
    }
}

/// Adds one batch of `records` records to a pair of export counters.
fn count(batches: &AtomicU64, counted: &AtomicU64, records: u64) {
    batches.fetch_add(1, Ordering::Relaxed);
    counted.fetch_add(records, Ordering::Relaxed);
}

/// Adds one batch of `records` records to a pair of metrics.
fn count_metrics(batches: &Counter, counted: &Counter, records: u64) {
    batches.inc();
    counted.inc_by(records);
}

/// Runs until every [`super::RecordSender`] is dropped and the queue is drained: publishes
/// full batches as they come and others after the linger, flushes the rest at the end. Never
/// fails: what cannot be published is counted and dropped.
pub async fn publish(
    receiver: RecordReceiver,
    bus: Arc<dyn Bus>,
    config: ExportConfig,
) -> Arc<ExportCounters> {
    let RecordReceiver {
        shared,
        mut rx,
        counters,
        metrics,
    } = receiver;
    let mut publisher = Publisher {
        bus,
        config,
        counters: counters.clone(),
        metrics: metrics.clone(),
        log: RateLimitedLog {
            last: None,
            suppressed: 0,
        },
        outage: VecDeque::new(),
        outage_bytes: 0,
    };
    let encoder = || {
        shared
            .encoder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    let mut ready = Vec::new();
    loop {
        let deadline = encoder().next_deadline();
        tokio::select! {
            biased;
            received = rx.recv() => match received {
                Some(batch) => {
                    shared.room.add_permits(shared.permits(batch.records) as usize);
                    metrics.export_queue_depth.dec_by(batch.client_records as i64);
                    ready.push(batch);
                }
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                encoder().flush_due(Instant::now(), &mut ready);
            }
            // A record arrived in an idle encoder: loop to arm the linger timer.
            () = shared.first_pending.notified(), if deadline.is_none() => {}
            // Batches are held for a disconnected bus: look again whether it is back.
            () = tokio::time::sleep(RECONNECT_POLL), if !publisher.outage.is_empty() => {}
        }
        for batch in ready.drain(..) {
            publisher.offer(batch).await;
        }
        publisher.drain().await;
    }
    encoder().flush_all(&mut ready);
    for batch in ready.drain(..) {
        publisher.offer(batch).await;
    }
    publisher.finish().await;
    if publisher.bus.is_connected() {
        match tokio::time::timeout(publisher.config.publish_timeout, publisher.bus.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "bus flush failed at the end of the export"),
            Err(_) => tracing::warn!("bus flush timed out at the end of the export"),
        }
    }
    counters
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
