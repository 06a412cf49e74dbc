//! The sensor's JetStream path: batches go to the `NW_FLOWS` stream with a bounded number of
//! unacknowledged publishes ([`netwarden_api::bus::jetstream::JetStreamBus`]); the sensor
//! creates (or updates) the stream at start, in the background until NATS answers.
//!
//! Buffering while NATS is unreachable is bounded: `--max-in-flight` batches waiting for their
//! ack (resent on timeout, same message id, stored once), the NATS client's reconnect buffer,
//! then the export queue; a publish that cannot get a slot within the publish timeout is
//! dropped and counted (`records_dropped`), a publish whose acks never come after every retry
//! is counted in `netwarden_sensor_jetstream_failed_total`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::{Args, ValueEnum};
use netwarden_api::bus::jetstream::{
    FlowStreamLimits, JetStreamBus, JetStreamCounters, JetStreamOptions, ensure_flows_stream,
};
use netwarden_api::bus::{Bus, NatsBus};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// How flow batches are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishMode {
    /// To the `NW_FLOWS` JetStream stream, acknowledged (the cluster path).
    Jetstream,
    /// Core NATS publish, unacknowledged (an engine started with `--ingest core`).
    Core,
}

/// The JetStream flags of `netwarden-sensor run`.
#[derive(Debug, Clone, Args)]
pub struct JetStreamArgs {
    /// How flow batches are published.
    #[arg(long, value_enum, default_value_t = PublishMode::Jetstream, env = "NETWARDEN_PUBLISH")]
    pub publish: PublishMode,
    /// Batches published to JetStream and not acknowledged yet, at most.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Oldest batch `NW_FLOWS` keeps, seconds (must match the engine's `--flows-max-age`).
    #[arg(long, default_value_t = 3600)]
    pub flows_max_age: u64,
    /// Bytes `NW_FLOWS` keeps (must match the engine's `--flows-max-bytes`).
    #[arg(long, default_value_t = 1 << 30)]
    pub flows_max_bytes: u64,
}

impl JetStreamArgs {
    /// The stream bounds.
    pub fn limits(&self) -> FlowStreamLimits {
        FlowStreamLimits {
            max_age: Duration::from_secs(self.flows_max_age.max(1)),
            max_bytes: i64::try_from(self.flows_max_bytes).unwrap_or(i64::MAX),
            ..FlowStreamLimits::default()
        }
    }
}

/// Prometheus view of [`JetStreamCounters`] (`netwarden_sensor_jetstream_*`), refreshed by
/// [`JetStreamExport::follow`].
#[derive(Debug, Default)]
pub struct JetStreamMetrics {
    sent: Counter,
    acked: Counter,
    retried: Counter,
    failed: Counter,
    in_flight: Gauge,
}

impl JetStreamMetrics {
    /// Registers under `netwarden_sensor_jetstream_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_sensor_jetstream");
        r.register("sent", "Batches sent to NW_FLOWS", self.sent.clone());
        r.register("acked", "Batches NW_FLOWS acknowledged", self.acked.clone());
        r.register(
            "retried",
            "Batches sent again after an ack timeout",
            self.retried.clone(),
        );
        r.register(
            "failed",
            "Batches given up after every retry (lost, counted)",
            self.failed.clone(),
        );
        r.register(
            "in_flight",
            "Batches waiting for their ack",
            self.in_flight.clone(),
        );
    }
}

/// What the JetStream path did, for the end-of-run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JetStreamSummary {
    /// Batches sent.
    pub sent: u64,
    /// Batches acknowledged.
    pub acked: u64,
    /// Resends.
    pub retried: u64,
    /// Batches lost after every retry.
    pub failed: u64,
}

/// The sensor's publisher in JetStream mode.
pub struct JetStreamExport {
    bus: JetStreamBus,
}

impl JetStreamExport {
    /// A JetStream publisher over `nats`; creates `NW_FLOWS` (waiting up to 3 s for NATS, then
    /// in the background, retrying every second until NATS answers).
    pub async fn start(nats: &NatsBus, args: &JetStreamArgs) -> Self {
        let bus = JetStreamBus::new(
            nats.clone(),
            JetStreamOptions {
                max_in_flight: args.max_in_flight.max(1),
                ..JetStreamOptions::default()
            },
        );
        let client = nats.client().clone();
        let limits = args.limits();
        let first =
            tokio::time::timeout(Duration::from_secs(3), ensure_flows_stream(&client, limits))
                .await;
        if matches!(first, Ok(Ok(_))) {
            return Self { bus };
        }
        tokio::spawn(async move {
            loop {
                match ensure_flows_stream(&client, limits).await {
                    Ok(_) => {
                        tracing::info!("NW_FLOWS stream ready");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot create NW_FLOWS yet; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self { bus }
    }

    /// The bus to publish on.
    pub fn bus(&self) -> Arc<dyn Bus> {
        Arc::new(self.bus.clone())
    }

    /// The raw counters.
    pub fn counters(&self) -> &Arc<JetStreamCounters> {
        self.bus.counters()
    }

    /// Copies the counters into `metrics` every second, for as long as the process runs.
    pub fn follow(&self, metrics: Arc<JetStreamMetrics>) {
        let bus = self.bus.clone();
        tokio::spawn(async move {
            let mut seen = JetStreamSummary::default();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = summary(bus.counters());
                metrics.sent.inc_by(now.sent - seen.sent);
                metrics.acked.inc_by(now.acked - seen.acked);
                metrics.retried.inc_by(now.retried - seen.retried);
                metrics.failed.inc_by(now.failed - seen.failed);
                metrics
                    .in_flight
                    .set(i64::try_from(bus.in_flight()).unwrap_or(i64::MAX));
                seen = now;
            }
        });
    }

    /// The counters now.
    pub fn summary(&self) -> JetStreamSummary {
        summary(self.bus.counters())
    }
}

fn summary(c: &JetStreamCounters) -> JetStreamSummary {
    let get = |a: &AtomicU64| JetStreamCounters::get(a);
    JetStreamSummary {
        sent: get(&c.sent),
        acked: get(&c.acked),
        retried: get(&c.retried),
        failed: get(&c.failed),
    }
}
