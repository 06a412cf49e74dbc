//! Telemetry for the tools a platform team runs (docs/telemetry.md): business metrics on
//! `/metrics` beside the pipeline's own, and OTLP export (gRPC or HTTP/protobuf) of the same
//! metrics with Kubernetes resource attributes, and of alerts as log records.
//!
//! * [`snapshot`]: the bounded snapshot (top-N hosts, points, interfaces, namespaces,
//!   workloads, alert counts) and the metric families both exports write.
//! * [`prom`]: the `prometheus_client` collector, run at scrape time.
//! * [`otlp`]: OTLP requests, the gRPC and HTTP clients, the bounded log queue.
//!
//! [`Telemetry`] joins them: `register` in the registry closure of [`crate::launch_secured`],
//! then `start` with the launched engine; `finish` flushes once at the end.

pub mod otlp;
pub mod prom;
pub mod snapshot;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Engine;
use otlp::{Client, LogQueue, Protocol};
use snapshot::Snapshot;

/// Hosts exported by default (Prometheus and OTLP).
pub const DEFAULT_TOP_HOSTS: usize = 100;
/// Alert log records waiting at most (the oldest are dropped and counted beyond).
pub const LOG_QUEUE: usize = 10_000;
/// Log records per OTLP request.
pub const LOG_BATCH: usize = 1_000;

/// Flags of both `run` and `standalone`.
#[derive(Clone, Debug, clap::Args)]
pub struct TelemetryArgs {
    /// Hosts on `/metrics`: the top N by score, then by bytes (bounded cardinality; 0: none).
    #[arg(long, default_value_t = DEFAULT_TOP_HOSTS, env = "NETWARDEN_METRICS_TOP_HOSTS")]
    pub metrics_top_hosts: usize,
    /// OTLP receiver (`http://otel-collector:4317` for gRPC, `…:4318` for HTTP); none: no export.
    #[arg(long, env = "NETWARDEN_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport: `grpc` or `http` (HTTP/protobuf).
    #[arg(long, value_enum, default_value_t = Protocol::Grpc, env = "NETWARDEN_OTLP_PROTOCOL")]
    pub otlp_protocol: Protocol,
    /// Seconds between OTLP exports (`15`, `30s`, `1m`).
    #[arg(long, default_value = "30s", env = "NETWARDEN_OTLP_INTERVAL", value_parser = crate::store::db::config::parse_duration_secs)]
    pub otlp_interval: u64,
    /// Hosts in OTLP metrics: the top N by score, then by bytes.
    #[arg(long, default_value_t = DEFAULT_TOP_HOSTS, env = "NETWARDEN_OTLP_TOP_HOSTS")]
    pub otlp_top_hosts: usize,
    /// Seconds an OTLP request may take (connect, send and answer).
    #[arg(long, default_value = "10s", value_parser = crate::store::db::config::parse_duration_secs)]
    pub otlp_timeout: u64,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            metrics_top_hosts: DEFAULT_TOP_HOSTS,
            otlp_endpoint: None,
            otlp_protocol: Protocol::Grpc,
            otlp_interval: 30,
            otlp_top_hosts: DEFAULT_TOP_HOSTS,
            otlp_timeout: 10,
        }
    }
}

/// Labels of the export counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabels {
    /// `metrics` or `logs`.
    pub signal: &'static str,
    /// `ok`, `timeout`, `transport`, `status`.
    pub result: &'static str,
}

/// Metrics of the exporter itself.
#[derive(Debug, Default)]
pub struct TelemetryMetrics {
    /// OTLP requests by signal and result.
    pub exports: Family<ExportLabels, Counter>,
    /// Failed OTLP requests (any signal).
    pub export_failures: Counter,
    /// Alert log records dropped because the queue was full.
    pub logs_dropped: Counter,
    /// Alert log records sent.
    pub logs_sent: Counter,
    /// Alert log records waiting.
    pub logs_queued: Gauge,
}

impl TelemetryMetrics {
    /// Registers under `netwarden_telemetry_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_telemetry");
        r.register(
            "otlp_exports",
            "OTLP requests by signal and result",
            self.exports.clone(),
        );
        r.register(
            "otlp_export_failures",
            "OTLP requests that failed (timeout, transport or error status)",
            self.export_failures.clone(),
        );
        r.register(
            "otlp_logs_dropped",
            "Alert log records dropped because the export queue was full",
            self.logs_dropped.clone(),
        );
        r.register(
            "otlp_logs_sent",
            "Alert log records accepted by the receiver",
            self.logs_sent.clone(),
        );
        r.register(
            "otlp_logs_queued",
            "Alert log records waiting to be sent",
            self.logs_queued.clone(),
        );
    }

    fn count(&self, signal: &'static str, r: &Result<(), otlp::ExportError>) {
        let result = match r {
            Ok(()) => "ok",
            Err(otlp::ExportError::Timeout) => "timeout",
            Err(otlp::ExportError::Transport(_)) => "transport",
            Err(otlp::ExportError::Status(_)) => "status",
        };
        self.exports
            .get_or_create(&ExportLabels { signal, result })
            .inc();
        if r.is_err() {
            self.export_failures.inc();
        }
    }
}

/// Business metrics and OTLP export, configured.
#[derive(Clone)]
pub struct Telemetry {
    args: TelemetryArgs,
    mode: &'static str,
    slot: Arc<OnceLock<Engine>>,
    metrics: Arc<TelemetryMetrics>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("args", &self.args)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Checks the flags (`mode`: `run` or `standalone`, a resource attribute).
    pub fn new(args: TelemetryArgs, mode: &'static str) -> Result<Self, String> {
        if let Some(e) = &args.otlp_endpoint {
            Client::new(e, args.otlp_protocol, Duration::from_secs(1))?;
        }
        if args.otlp_interval == 0 {
            return Err("--otlp-interval must be at least 1 second".to_owned());
        }
        if args.otlp_timeout == 0 {
            return Err("--otlp-timeout must be at least 1 second".to_owned());
        }
        Ok(Self {
            args,
            mode,
            slot: Arc::new(OnceLock::new()),
            metrics: Arc::new(TelemetryMetrics::default()),
        })
    }

    /// The exporter's own metrics.
    pub fn metrics(&self) -> &Arc<TelemetryMetrics> {
        &self.metrics
    }

    /// Registers the business collector and the exporter's metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(prom::BusinessCollector {
            slot: Arc::clone(&self.slot),
            top: self.args.metrics_top_hosts,
        }));
        self.metrics.register(registry);
    }

    /// Attaches the launched engine (the collector reads it from now on) and starts the OTLP
    /// exporter when `--otlp-endpoint` was given.
    pub fn start(&self, engine: Engine, shutdown: watch::Receiver<bool>) -> Exporter {
        let _ = self.slot.set(engine.clone());
        let (stop, stop_rx) = watch::channel(false);
        let task = self.args.otlp_endpoint.as_ref().and_then(|endpoint| {
            let timeout = Duration::from_secs(self.args.otlp_timeout);
            match Client::new(endpoint, self.args.otlp_protocol, timeout) {
                Ok(client) => {
                    tracing::info!(
                        protocol = ?self.args.otlp_protocol,
                        interval_secs = self.args.otlp_interval,
                        "OTLP export on"
                    );
                    Some(tokio::spawn(export_loop(
                        engine,
                        client,
                        resource_attributes(self.mode),
                        self.args.clone(),
                        Arc::clone(&self.metrics),
                        shutdown,
                        stop_rx,
                    )))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OTLP export off");
                    None
                }
            }
        });
        Exporter { stop, task }
    }
}

/// The running exporter.
#[derive(Debug)]
pub struct Exporter {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Exports once more (bounded by the timeout) and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

/// Resource attributes: `service.*`, `k8s.*` from the Downward API variables the chart sets
/// (`POD_NAME`, `POD_NAMESPACE`, `NODE_NAME`, `POD_UID`), then `OTEL_RESOURCE_ATTRIBUTES`
/// (`k=v,k2=v2`) and `OTEL_SERVICE_NAME`, which win.
pub fn resource_attributes(mode: &str) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    let env = |k: &str| {
        std::env::var(k)
            .ok()
            .map(|v| snapshot::clean(v.trim()))
            .filter(|v| !v.is_empty())
    };
    let mut attrs: Vec<(String, String)> = vec![
        ("service.name".into(), "netwarden-engine".into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("netwarden.mode".into(), mode.into()),
    ];
    let instance = env("POD_NAME").or_else(|| env("HOSTNAME"));
    for (key, value) in [
        ("service.instance.id", instance),
        ("k8s.pod.name", env("POD_NAME")),
        ("k8s.namespace.name", env("POD_NAMESPACE")),
        ("k8s.node.name", env("NODE_NAME")),
        ("k8s.pod.uid", env("POD_UID")),
    ] {
        if let Some(v) = value {
            attrs.push((key.into(), v));
        }
    }
    let mut set = |k: String, v: String| match attrs.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => attrs.push((k, v)),
    };
    if let Ok(list) = std::env::var("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in list.split(',').take(64) {
            if let Some((k, v)) = pair.split_once('=') {
                let (k, v) = (snapshot::clean(k.trim()), snapshot::clean(v.trim()));
                if !k.is_empty() {
                    set(k, v);
                }
            }
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME") {
        set("service.name".into(), name);
    }
    attrs.into_iter().map(|(k, v)| otlp::kv(&k, v)).collect()
}

async fn export_loop(
    engine: Engine,
    mut client: Client,
    resource: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
    args: TelemetryArgs,
    metrics: Arc<TelemetryMetrics>,
    mut shutdown: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let start = otlp::now_ns();
    let mut queue = LogQueue::new(LOG_QUEUE);
    let mut tick = tokio::time::interval(Duration::from_secs(args.otlp_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
            _ = stop.changed() => true,
        };
        let began = Instant::now();
        export_once(
            &engine,
            &mut client,
            &resource,
            &args,
            &metrics,
            &mut queue,
            start,
        )
        .await;
        tracing::debug!(took_ms = began.elapsed().as_millis(), "OTLP export");
        if last {
            break;
        }
    }
}

/// One round: metrics, then the alerts raised since the last round.
async fn export_once(
    engine: &Engine,
    client: &mut Client,
    resource: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    args: &TelemetryArgs,
    metrics: &TelemetryMetrics,
    queue: &mut LogQueue,
    start: u64,
) {
    let now = otlp::now_ns();
    let snapshot = Snapshot::take(engine, args.otlp_top_hosts);
    let req = otlp::metrics_request(resource, &snapshot.families(), start, now);
    let r = client.metrics(req).await;
    if let Err(e) = &r {
        tracing::debug!(error = %e, "OTLP metrics export failed");
    }
    metrics.count("metrics", &r);
    // New alerts since the cursor (ids only grow), under the read lock, then sent without it.
    {
        let state = engine.read();
        let mut dropped = 0;
        let cursor = queue.cursor;
        for row in state.analysis.store.iter().filter(|r| r.id > cursor) {
            dropped += queue.push(otlp::log_record(row, now));
            queue.cursor = queue.cursor.max(row.id);
        }
        metrics.logs_dropped.inc_by(dropped);
    }
    while !queue.is_empty() {
        let batch = queue.peek(LOG_BATCH);
        let n = batch.len();
        let r = client.logs(otlp::logs_request(resource, batch)).await;
        metrics.count("logs", &r);
        if let Err(e) = r {
            tracing::debug!(error = %e, "OTLP logs export failed; kept for the next round");
            break;
        }
        queue.commit(n);
        metrics.logs_sent.inc_by(n as u64);
    }
    metrics
        .logs_queued
        .set(i64::try_from(queue.len()).unwrap_or(i64::MAX));
}
