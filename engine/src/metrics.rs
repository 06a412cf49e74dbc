//! The engine's own pipeline metrics, all in one place (STYLE.md guideline 10).
//!
//! Every metric name the engine exports is written here and nowhere else. The metrics are
//! registered in a `prometheus_client` [`Registry`] that `/metrics` encodes; in standalone
//! mode the sensor's metrics join the same registry.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which bounded table an eviction came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Table {
    /// The host table.
    Hosts,
    /// The active-flow table.
    ActiveFlows,
    /// The ring of ended flows (the oldest ended flow leaves when a new one arrives).
    History,
    /// The per-(flow, role) counter snapshots used to compute host deltas.
    Deltas,
    /// The observation-point table.
    ObservationPoints,
}

impl Table {
    /// The label value (`hosts`, `active_flows`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hosts => "hosts",
            Self::ActiveFlows => "active_flows",
            Self::History => "history",
            Self::Deltas => "deltas",
            Self::ObservationPoints => "observation_points",
        }
    }
}

impl EncodeLabelValue for Table {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Labels of the eviction counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    /// The table.
    pub table: Table,
}

/// Labels of the HTTP request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route pattern (`/api/v2/hosts/{ip}`), or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// The engine's metrics.
pub struct EngineMetrics {
    /// Flow batches decoded and applied.
    pub batches_ingested: Counter,
    /// Flow records applied.
    pub records_ingested: Counter,
    /// Payloads that were not a `FlowBatch`.
    pub decode_errors: Counter,
    /// Records rejected because they carry no valid address.
    pub records_invalid: Counter,
    /// Records stamped too far in the future, whose time was clipped (`state::FlowClock`).
    pub records_time_clamped: Counter,
    /// Hosts in the host table.
    pub hosts: Gauge,
    /// Flows in the active-flow table.
    pub active_flows: Gauge,
    /// Ended flows kept in the history ring.
    pub ended_flows: Gauge,
    /// Entries evicted from a bounded table.
    pub evictions: Family<TableLabels, Counter>,
    /// Ingest lag: wall clock minus the record's `last_seen`, in seconds, per record.
    pub ingest_lag_seconds: Histogram,
    /// Lag of the last record applied, in seconds.
    pub last_ingest_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Whether the bus is connected and ingest runs (1) or not (0).
    pub ingest_running: Gauge,
    /// HTTP requests served, by route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Alerts published on the bus.
    pub alerts_published: Counter,
    /// Alerts the bus refused.
    pub alerts_publish_errors: Counter,
    /// Alert rows in the store.
    pub alerts_stored: Gauge,
    /// Flow alerts raised.
    pub flow_alerts: Counter,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        let evictions = Family::<TableLabels, Counter>::default();
        // Every table shows up from the start: an absent series reads as "unknown", not 0.
        for table in [
            Table::Hosts,
            Table::ActiveFlows,
            Table::History,
            Table::Deltas,
            Table::ObservationPoints,
        ] {
            let _ = evictions.get_or_create(&TableLabels { table });
        }
        Self {
            batches_ingested: Counter::default(),
            records_ingested: Counter::default(),
            decode_errors: Counter::default(),
            records_invalid: Counter::default(),
            records_time_clamped: Counter::default(),
            hosts: Gauge::default(),
            active_flows: Gauge::default(),
            ended_flows: Gauge::default(),
            evictions,
            // 1 ms .. ~9 h: live traffic sits in the low buckets, a pcap replay in the last.
            ingest_lag_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 13)),
            last_ingest_lag_seconds: Gauge::default(),
            ingest_running: Gauge::default(),
            http_requests: Family::default(),
            alerts_published: Counter::default(),
            alerts_publish_errors: Counter::default(),
            alerts_stored: Gauge::default(),
            flow_alerts: Counter::default(),
        }
    }
}

impl EngineMetrics {
    /// Registers every metric in `registry` under the `netwarden_engine_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine");
        r.register(
            "batches_ingested",
            "Flow batches decoded and applied",
            self.batches_ingested.clone(),
        );
        r.register(
            "records_ingested",
            "Flow records applied",
            self.records_ingested.clone(),
        );
        r.register(
            "decode_errors",
            "Bus payloads that were not a FlowBatch",
            self.decode_errors.clone(),
        );
        r.register(
            "records_invalid",
            "Flow records without a valid address",
            self.records_invalid.clone(),
        );
        r.register(
            "records_time_clamped",
            "Flow records stamped more than 5 minutes ahead of the plausible flow time (clipped)",
            self.records_time_clamped.clone(),
        );
        r.register("hosts", "Hosts in the host table", self.hosts.clone());
        r.register(
            "alerts_published",
            "Alerts published on the bus",
            self.alerts_published.clone(),
        );
        r.register(
            "alerts_publish_errors",
            "Alerts the bus refused",
            self.alerts_publish_errors.clone(),
        );
        r.register(
            "alerts_stored",
            "Alert rows in the alert store",
            self.alerts_stored.clone(),
        );
        r.register(
            "flow_alerts",
            "Flow alerts raised (one per flow and type)",
            self.flow_alerts.clone(),
        );
        r.register(
            "active_flows",
            "Flows in the active-flow table",
            self.active_flows.clone(),
        );
        r.register(
            "ended_flows",
            "Ended flows kept in the history ring",
            self.ended_flows.clone(),
        );
        r.register(
            "evictions",
            "Entries evicted from a bounded table",
            self.evictions.clone(),
        );
        r.register(
            "ingest_lag_seconds",
            "Wall clock minus the record's last_seen, per record",
            self.ingest_lag_seconds.clone(),
        );
        r.register(
            "last_ingest_lag_seconds",
            "Wall clock minus last_seen of the last record applied",
            self.last_ingest_lag_seconds.clone(),
        );
        r.register(
            "ingest_running",
            "1 when subscribed to the flow subjects",
            self.ingest_running.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests served, by route and status",
            self.http_requests.clone(),
        );
    }

    /// Counts `n` evictions from `table`.
    pub fn evicted(&self, table: Table, n: u64) {
        if n > 0 {
            self.evictions
                .get_or_create(&TableLabels { table })
                .inc_by(n);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_their_prefix() {
        let metrics = EngineMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.batches_ingested.inc();
        metrics.evicted(Table::Hosts, 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("netwarden_engine_batches_ingested_total 1"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_engine_evictions_total{table=\"hosts\"} 2"),
            "{text}"
        );
    }
}
