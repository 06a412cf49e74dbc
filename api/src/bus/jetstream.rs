//! The flow stream `NW_FLOWS` on NATS JetStream, and a publisher that writes to it
//! asynchronously with a bounded number of unacknowledged publishes.
//!
//! A synchronous JetStream publish (send, wait for the ack, send the next) caps a publisher at
//! one round trip per message. [`JetStreamBus`] sends and moves on: each publish takes one of
//! `max_in_flight` permits, a task waits for the server's ack and gives the permit back. A
//! publish whose ack does not come in time is sent again (same `Nats-Msg-Id`, so the stream
//! stores it once) up to `retries` times, then counted as failed. When every permit is taken,
//! [`Publisher::publish`] waits: the caller's timeout (the sensor's publish timeout) bounds the
//! wait and the caller counts what it drops. That is the sensor's bounded buffer while NATS is
//! unreachable: `max_in_flight` batches in the air plus the client's own reconnect buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::Semaphore;

use super::{Bus, MessageStream, NatsBus, Publisher, Subscriber};
use crate::names::{FLOWS_PREFIX, FLOWS_STREAM};
use crate::{Error, Result};

/// Bounds of the `NW_FLOWS` stream (limits retention: the oldest messages go first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowStreamLimits {
    /// Oldest message kept.
    pub max_age: Duration,
    /// Bytes kept.
    pub max_bytes: i64,
    /// Stream replicas (1 on a single server, 3 on a NATS cluster).
    pub replicas: usize,
}

impl Default for FlowStreamLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            replicas: 1,
        }
    }
}

/// The stream configuration of `NW_FLOWS` for `limits`.
pub fn flows_stream_config(limits: FlowStreamLimits) -> stream::Config {
    stream::Config {
        name: FLOWS_STREAM.to_owned(),
        description: Some("Netwarden flow batches, one subject per shard".to_owned()),
        subjects: vec![format!("{FLOWS_PREFIX}.*")],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: limits.max_age,
        max_bytes: limits.max_bytes,
        num_replicas: limits.replicas.max(1),
        discard: stream::DiscardPolicy::Old,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Creates `NW_FLOWS`, or updates its bounds when it exists (idempotent; every sensor and engine
/// calls it at start). Returns the stream handle.
pub async fn ensure_flows_stream(
    client: &async_nats::Client,
    limits: FlowStreamLimits,
) -> Result<stream::Stream> {
    let js = jetstream::new(client.clone());
    js.create_or_update_stream(flows_stream_config(limits))
        .await
        .map_err(|e| Error::Kv {
            bucket: FLOWS_STREAM.to_owned(),
            reason: format!("create or update stream: {e}"),
        })?;
    js.get_stream(FLOWS_STREAM).await.map_err(|e| Error::Kv {
        bucket: FLOWS_STREAM.to_owned(),
        reason: format!("get stream: {e}"),
    })
}

/// Settings of a [`JetStreamBus`].
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// Publishes sent but not acknowledged yet, at most.
    pub max_in_flight: usize,
    /// How long to wait for one ack before sending again.
    pub ack_timeout: Duration,
    /// Sends after the first one before a publish counts as failed.
    pub retries: u32,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            ack_timeout: Duration::from_secs(2),
            retries: 5,
        }
    }
}

/// What a [`JetStreamBus`] did.
#[derive(Debug, Default)]
pub struct JetStreamCounters {
    /// Publishes sent (first sends).
    pub sent: AtomicU64,
    /// Publishes the stream acknowledged.
    pub acked: AtomicU64,
    /// Sends again after an ack timeout or error.
    pub retried: AtomicU64,
    /// Publishes given up after every retry: an upper bound of what was lost (a send that sat
    /// in the client's reconnect buffer may still reach the stream later, once: the resends
    /// carry the same message id).
    pub failed: AtomicU64,
    /// Acks that said the stream already had the message (a retry of a stored message).
    pub duplicates: AtomicU64,
}

impl JetStreamCounters {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Publishes to JetStream with bounded unacknowledged publishes; subscribes through core NATS.
#[derive(Clone)]
pub struct JetStreamBus {
    nats: NatsBus,
    js: jetstream::Context,
    permits: Arc<Semaphore>,
    options: JetStreamOptions,
    counters: Arc<JetStreamCounters>,
    id_prefix: Arc<str>,
    next_id: Arc<AtomicU64>,
}

impl JetStreamBus {
    /// A publisher over `nats`'s connection.
    pub fn new(nats: NatsBus, options: JetStreamOptions) -> Self {
        let js = jetstream::new(nats.client().clone());
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            nats,
            js,
            permits: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            counters: Arc::new(JetStreamCounters::default()),
            id_prefix: format!("{}-{start:x}", std::process::id()).into(),
            next_id: Arc::new(AtomicU64::new(0)),
            options,
        }
    }

    /// What this publisher did so far.
    pub fn counters(&self) -> &Arc<JetStreamCounters> {
        &self.counters
    }

    /// Publishes in flight now.
    pub fn in_flight(&self) -> usize {
        self.options.max_in_flight.max(1) - self.permits.available_permits()
    }

    async fn send(
        js: &jetstream::Context,
        subject: &str,
        id: &str,
        payload: Bytes,
    ) -> std::result::Result<jetstream::context::PublishAckFuture, String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        js.publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Publisher for JetStreamBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<()>> {
        async move {
            let permit = Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .map_err(|e| Error::Publish {
                    subject: subject.clone(),
                    reason: e.to_string(),
                })?;
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}-{n}", self.id_prefix);
            let first = Self::send(&self.js, &subject, &id, payload.clone())
                .await
                .map_err(|reason| Error::Publish {
                    subject: subject.clone(),
                    reason,
                })?;
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let js = self.js.clone();
            let counters = Arc::clone(&self.counters);
            let options = self.options.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let mut pending = Some(first);
                for attempt in 0..=options.retries {
                    if attempt > 0 {
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        pending = Self::send(&js, &subject, &id, payload.clone()).await.ok();
                    }
                    let Some(ack) = pending.take() else {
                        tokio::time::sleep(options.ack_timeout / 4).await;
                        continue;
                    };
                    match tokio::time::timeout(options.ack_timeout, ack.into_future()).await {
                        Ok(Ok(ack)) => {
                            counters.acked.fetch_add(1, Ordering::Relaxed);
                            if ack.duplicate {
                                counters.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                            return;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %subject, "JetStream ack error"),
                        Err(_) => tracing::debug!(%subject, "JetStream ack timed out"),
                    }
                }
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%subject, "JetStream publish failed after every retry: dropped");
            });
            Ok(())
        }
        .boxed()
    }

    /// Waits until every publish so far is acknowledged (or given up).
    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            self.nats.flush().await?;
            let all = u32::try_from(self.options.max_in_flight.max(1)).unwrap_or(u32::MAX);
            let _all = self
                .permits
                .acquire_many(all)
                .await
                .map_err(|e| Error::Flush(e.to_string()))?;
            Ok(())
        }
        .boxed()
    }
}

impl Subscriber for JetStreamBus {
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, Result<MessageStream>> {
        self.nats.subscribe(pattern)
    }
}

impl Bus for JetStreamBus {
    fn is_connected(&self) -> bool {
        self.nats.is_connected()
    }

    fn kind(&self) -> &'static str {
        "jetstream"
    }
}
