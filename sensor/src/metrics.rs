//! Prometheus metrics of the sensor's own pipeline. Every metric name lives in this module.
//!
//! Hot paths do not touch these atomics per packet: the capture loop adds the flow table's
//! counters here in deltas every few thousand packets and at the end.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Prefix of every sensor metric name.
pub const PREFIX: &str = "netwarden_sensor";

/// Label set of decode errors: `kind` (from `decode::decode_stats_key`).
pub type KindLabel = [(&'static str, &'static str); 1];
/// Label set of per-interface metrics: `interface`.
pub type InterfaceLabel = [(&'static str, String); 1];

/// The sensor's metrics. Cheap to clone (shared atomics).
#[derive(Debug, Clone, Default)]
pub struct SensorMetrics {
    /// Packets decoded and given to the flow table.
    pub packets: Counter,
    /// Wire bytes of those packets.
    pub bytes: Counter,
    /// Frames that did not decode, by kind.
    pub decode_errors: Family<KindLabel, Counter>,
    /// Flows created in the flow table.
    pub flows_created: Counter,
    /// Flows ended by idle timeout.
    pub flows_expired: Counter,
    /// Flows evicted because the table was full.
    pub flows_evicted: Counter,
    /// Flows in the flow tables now.
    pub flows_active: Gauge,
    /// Later IP fragments whose first fragment was not seen.
    pub fragments_unmatched: Counter,
    /// Flow records published (client copies; a record is counted once).
    pub records_exported: Counter,
    /// Flow records lost: export queue full, or their batch could not be published.
    pub records_dropped: Counter,
    /// Records waiting in the export queue.
    pub export_queue_depth: Gauge,
    /// Batches published on the bus.
    pub batches_published: Counter,
    /// Batches that could not be published (bus down, timeout, error).
    pub batches_dropped: Counter,
    /// Packets libpcap reports as dropped by the kernel (buffer full), per interface.
    pub capture_dropped: Family<InterfaceLabel, Counter>,
    /// Packets libpcap reports as dropped by the interface or driver, per interface.
    pub capture_if_dropped: Family<InterfaceLabel, Counter>,
}

impl SensorMetrics {
    /// Fresh metrics (all zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every metric into `registry` under the `netwarden_sensor_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "packets",
            "Packets decoded and given to the flow table",
            self.packets.clone(),
        );
        r.register(
            "bytes",
            "Wire bytes of the packets given to the flow table",
            self.bytes.clone(),
        );
        r.register(
            "decode_errors",
            "Frames that did not decode, by kind",
            self.decode_errors.clone(),
        );
        r.register(
            "flows_created",
            "Flows created in the flow table",
            self.flows_created.clone(),
        );
        r.register(
            "flows_expired",
            "Flows ended by idle timeout",
            self.flows_expired.clone(),
        );
        r.register(
            "flows_evicted",
            "Flows evicted because the flow table was full",
            self.flows_evicted.clone(),
        );
        r.register(
            "flows_active",
            "Flows in the flow tables now",
            self.flows_active.clone(),
        );
        r.register(
            "fragments_unmatched",
            "Later IP fragments whose first fragment was not seen",
            self.fragments_unmatched.clone(),
        );
        r.register(
            "records_exported",
            "Flow records published on the bus",
            self.records_exported.clone(),
        );
        r.register(
            "records_dropped",
            "Flow records lost (export queue full or batch not published)",
            self.records_dropped.clone(),
        );
        r.register(
            "export_queue_depth",
            "Records waiting in the export queue",
            self.export_queue_depth.clone(),
        );
        r.register(
            "batches_published",
            "Flow batches published on the bus",
            self.batches_published.clone(),
        );
        r.register(
            "batches_dropped",
            "Flow batches that could not be published (bus down, timeout, error)",
            self.batches_dropped.clone(),
        );
        r.register(
            "capture_dropped",
            "Packets dropped by the kernel as reported by libpcap",
            self.capture_dropped.clone(),
        );
        r.register(
            "capture_if_dropped",
            "Packets dropped by the interface or driver as reported by libpcap",
            self.capture_if_dropped.clone(),
        );
    }

    /// Counts decode errors of `kind`.
    pub fn decode_error(&self, kind: &'static str, n: u64) {
        self.decode_errors
            .get_or_create(&[("kind", kind)])
            .inc_by(n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_the_prefix() {
        let m = SensorMetrics::new();
        m.packets.inc_by(3);
        m.decode_error("not_ip", 2);
        m.capture_dropped
            .get_or_create(&[("interface", "eth0".into())])
            .inc();
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("netwarden_sensor_packets_total 3"), "{text}");
        assert!(
            text.contains("netwarden_sensor_decode_errors_total{kind=\"not_ip\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_capture_dropped_total{interface=\"eth0\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_export_queue_depth 0"),
            "{text}"
        );
    }
}
