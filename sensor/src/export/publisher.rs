//! The async publisher task: publishes the encoded batches of the export queue with timeouts,
//! and the batches whose linger ran out (it owns the linger timer; producers only fill and
//! queue batches).

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
    waited_for_connection: bool,
    log: RateLimitedLog,
}

impl Publisher {
    async fn publish(&mut self, ready: EncodedBatch) {
        let subject = flows_subject(ready.shard);
        if !self.bus.is_connected() && !self.waited_for_connection {
            // Once, at start: give a bus that is still connecting a moment.
            self.waited_for_connection = true;
            let deadline = Instant::now() + self.config.connect_grace;
            while !self.bus.is_connected() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let result = if self.bus.is_connected() {
            self.waited_for_connection = true;
            let publish = self.bus.publish(subject.clone(), ready.payload.clone());
            if self.config.overflow == OverflowPolicy::Drop {
                match tokio::time::timeout(self.config.publish_timeout, publish).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("timed out after {:?}", self.config.publish_timeout)),
                }
            } else {
                {
                    // Block: wait as long as the bus is connected (lossless backpressure).
                    tokio::pin!(publish);
                    loop {
                        match tokio::time::timeout(Duration::from_secs(1), &mut publish).await {
                            Ok(r) => break r.map_err(|e| e.to_string()),
                            Err(_) if self.bus.is_connected() => {}
                            Err(_) => break Err("bus disconnected".to_owned()),
                        }
                    }
                }
            }
        } else {
            Err(format!("{} bus not connected", self.bus.kind()))
        };
        let (c, m) = (&self.counters, &self.metrics);
        let records = ready.client_records as u64;
        match result {
            Ok(()) => {
                count(&c.batches_published, &c.records_exported, records);
                count_metrics(&m.batches_published, &m.records_exported, records);
            }
            Err(reason) => {
                count(&c.batches_dropped, &c.records_dropped, records);
                count_metrics(&m.batches_dropped, &m.records_dropped, records);
                self.log.warn(&subject, ready.records, &reason);
            }
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
        waited_for_connection: false,
        log: RateLimitedLog {
            last: None,
            suppressed: 0,
        },
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
        }
        for batch in ready.drain(..) {
            publisher.publish(batch).await;
        }
    }
    encoder().flush_all(&mut ready);
    for batch in ready.drain(..) {
        publisher.publish(batch).await;
    }
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
