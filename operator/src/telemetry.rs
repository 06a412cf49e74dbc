//! The operator's own telemetry: reconcile counts, errors and durations per kind (Prometheus
//! text at `/metrics`), and the `/healthz` and `/readyz` probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of every operator metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The CRD kind.
    pub kind: String,
}

/// Reconcile metrics, registered in one registry.
pub struct Metrics {
    /// `netwarden_operator_reconciles_total{kind}`.
    pub reconciles: Family<KindLabels, Counter>,
    /// `netwarden_operator_reconcile_errors_total{kind}`.
    pub errors: Family<KindLabels, Counter>,
    /// `netwarden_operator_reconcile_duration_seconds{kind}`.
    pub duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Set once the controllers run (NATS buckets open, Kubernetes client built).
    pub ready: AtomicBool,
    /// `netwarden_operator_malformed_status_reports_total`: `nw-status` values that do not parse
    /// (ignored, logged).
    pub malformed_reports: Counter,
    /// The `nw-directory` publisher.
    pub directory: DirectoryMetrics,
    registry: Registry,
}

/// Metrics of the `nw-directory` publisher (`netwarden_operator_directory_*`).
pub struct DirectoryMetrics {
    /// `_directory_events_total{kind}`: watch events received (Pod, Service, Node, ReplicaSet, Job).
    pub events: Family<KindLabels, Counter>,
    /// `_directory_watch_errors_total{kind}`: watch failures (retried with backoff).
    pub watch_errors: Family<KindLabels, Counter>,
    /// `_directory_puts_total`: entries written.
    pub puts: Counter,
    /// `_directory_deletes_total`: keys deleted (gone objects, strays).
    pub deletes: Counter,
    /// `_directory_write_errors_total`: failed puts or deletes (retried on the next sync).
    pub write_errors: Counter,
    /// `_directory_syncs_total`: diff-and-write passes.
    pub syncs: Counter,
    /// `_directory_entries`: addresses in the bucket.
    pub entries: Gauge,
    /// `_directory_dropped_objects`: objects not kept because a table was full.
    pub dropped: Gauge,
    /// `_directory_sync_duration_seconds`: duration of one pass (diff and writes).
    pub sync_duration: Histogram,
}

impl DirectoryMetrics {
    fn new(registry: &mut Registry) -> Self {
        let m = Self {
            events: Family::default(),
            watch_errors: Family::default(),
            puts: Counter::default(),
            deletes: Counter::default(),
            write_errors: Counter::default(),
            syncs: Counter::default(),
            entries: Gauge::default(),
            dropped: Gauge::default(),
            sync_duration: duration_histogram(),
        };
        let r = registry.sub_registry_with_prefix("directory");
        r.register(
            "events",
            "Directory watch events received",
            m.events.clone(),
        );
        r.register(
            "watch_errors",
            "Directory watch failures (retried with backoff)",
            m.watch_errors.clone(),
        );
        r.register("puts", "nw-directory entries written", m.puts.clone());
        r.register("deletes", "nw-directory keys deleted", m.deletes.clone());
        r.register(
            "write_errors",
            "nw-directory writes that failed (retried)",
            m.write_errors.clone(),
        );
        r.register(
            "syncs",
            "nw-directory diff-and-write passes",
            m.syncs.clone(),
        );
        r.register("entries", "Addresses in nw-directory", m.entries.clone());
        r.register(
            "dropped_objects",
            "Objects not kept because a directory table was full",
            m.dropped.clone(),
        );
        r.register(
            "sync_duration_seconds",
            "Duration of one nw-directory pass",
            m.sync_duration.clone(),
        );
        m
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("netwarden_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<KindLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed (requeued with backoff)",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        let malformed_reports = Counter::default();
        registry.register(
            "malformed_status_reports",
            "nw-status values that do not parse (ignored)",
            malformed_reports.clone(),
        );
        let directory = DirectoryMetrics::new(&mut registry);
        Self {
            reconciles,
            errors,
            duration,
            ready: AtomicBool::new(false),
            malformed_reports,
            directory,
            registry,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Labels of `kind`.
    pub fn labels(kind: &str) -> KindLabels {
        KindLabels {
            kind: kind.to_string(),
        }
    }
}

/// Serves `/healthz` (always 200 while the process runs), `/readyz` (200 once
/// [`Metrics::ready`] is set) and `/metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let ready = metrics.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.ready.load(Ordering::Relaxed);
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_and_metrics_answer_over_http() {
        let metrics = Arc::new(Metrics::default());
        metrics
            .reconciles
            .get_or_create(&Metrics::labels("AlertExclusion"))
            .inc();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = tokio::spawn(serve(addr, metrics.clone()));
        let get = |path: &'static str| async move {
            for _ in 0..50 {
                if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    s.write_all(
                        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .await
                    .unwrap();
                    let mut out = String::new();
                    s.read_to_string(&mut out).await.unwrap();
                    return out;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("server did not start");
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        metrics.ready.store(true, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        let text = get("/metrics").await;
        assert!(
            text.contains("netwarden_operator_reconciles_total{kind=\"AlertExclusion\"} 1"),
            "{text}"
        );
        server.abort();
    }
}
