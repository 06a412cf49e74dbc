//! Prometheus metrics of the sensor's own pipeline. Every metric name lives in this module.
//!
//! Hot paths do not touch these atomics per packet: the capture loop adds the flow table's
//! counters here in deltas every few thousand packets and at the end.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::{HashMap, HashSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::collect::{ExporterStats, GlobalCounters, InterfaceCounters, ListenerStats, TcpStats};

/// Prefix of every sensor metric name.
pub const PREFIX: &str = "netwarden_sensor";

/// Label set of decode errors: `kind` (from `decode::decode_stats_key`).
pub type KindLabel = [(&'static str, &'static str); 1];
/// Label set of per-interface metrics: `interface`.
pub type InterfaceLabel = [(&'static str, String); 1];

/// Label set of per-exporter collection metrics: `exporter` (an address, or [`OTHER_EXPORTERS`]).
pub type ExporterLabel = [(&'static str, String); 1];
/// Label set of per-listener collection metrics: `listener` (the bound address).
pub type ListenerLabel = [(&'static str, String); 1];
/// Label set of collection metrics by protocol: `protocol`.
pub type ProtocolLabel = [(&'static str, &'static str); 1];
/// Label set of sFlow interface counters: `agent`, `if_index`.
pub type SflowIfLabel = [(&'static str, String); 2];

/// Most exporters named in labels: beyond, their counters add up under [`OTHER_EXPORTERS`],
/// so a flood of spoofed exporter addresses cannot blow up the scrape.
pub const MAX_EXPORTER_LABELS: usize = 64;
/// The `exporter` label value of every exporter beyond [`MAX_EXPORTER_LABELS`].
pub const OTHER_EXPORTERS: &str = "other";
/// Most sFlow interfaces (agent, ifIndex) exposed as gauges; later ones are counted only.
pub const MAX_SFLOW_INTERFACE_LABELS: usize = 256;

/// sFlow interface counter gauges: metric name suffix, help, value.
type IfGauge = (&'static str, &'static str, fn(&InterfaceCounters) -> u64);
const SFLOW_IF_GAUGES: [IfGauge; 8] = [
    (
        "in_octets",
        "ifInOctets reported by sFlow counter samples",
        |c| c.in_octets,
    ),
    (
        "in_packets",
        "Packets in (unicast + multicast + broadcast) reported by sFlow",
        |c| c.in_packets,
    ),
    (
        "in_errors",
        "ifInErrors reported by sFlow counter samples",
        |c| u64::from(c.in_errors),
    ),
    (
        "in_discards",
        "ifInDiscards reported by sFlow counter samples",
        |c| u64::from(c.in_discards),
    ),
    (
        "out_octets",
        "ifOutOctets reported by sFlow counter samples",
        |c| c.out_octets,
    ),
    (
        "out_packets",
        "Packets out (unicast + multicast + broadcast) reported by sFlow",
        |c| c.out_packets,
    ),
    (
        "out_errors",
        "ifOutErrors reported by sFlow counter samples",
        |c| u64::from(c.out_errors),
    ),
    (
        "out_discards",
        "ifOutDiscards reported by sFlow counter samples",
        |c| u64::from(c.out_discards),
    ),
];

/// Flow collection metrics (NetFlow/IPFIX/sFlow listeners). Listeners keep their counters in
/// their collector; [`CollectMetrics::report_listener`] adds what changed since the last call.
#[derive(Debug, Clone)]
pub struct CollectMetrics {
    /// One family per [`ExporterStats`] counter, named `collect_<counter>`, by exporter.
    pub per_exporter: Vec<(&'static str, Family<ExporterLabel, Counter>)>,
    /// Datagrams rejected by a decode error, by kind.
    pub decode_errors: Family<KindLabel, Counter>,
    /// Datagrams by export protocol.
    pub protocol_datagrams: Family<ProtocolLabel, Counter>,
    /// Exporters forgotten to make room for new ones.
    pub exporters_evicted: Counter,
    /// Records a listener could not queue for export (queue full), by listener.
    pub sink_dropped: Family<ListenerLabel, Counter>,
    /// `recv_from` errors, by listener.
    pub recv_errors: Family<ListenerLabel, Counter>,
    /// Effective `SO_RCVBUF` of each listener socket.
    pub recv_buffer_bytes: Family<ListenerLabel, Gauge>,
    /// Exporters tracked now, by listener.
    pub exporters: Family<ListenerLabel, Gauge>,
    /// Templates cached now, by listener.
    pub templates: Family<ListenerLabel, Gauge>,
    /// sFlow interface counters as last reported, one family per counter.
    pub sflow_if: Vec<Family<SflowIfLabel, Gauge>>,
    /// sFlow counter samples of interfaces beyond [`MAX_SFLOW_INTERFACE_LABELS`].
    pub sflow_if_unlabelled: Counter,
    /// IPFIX-over-TCP listeners' connection counters.
    pub tcp: TcpMetrics,
    state: Arc<Mutex<ReportState>>,
}

/// IPFIX-over-TCP connection counters by listener: `collect_tcp_<counter>_total` for
/// accepted, refused, closed, bad_frames, partial_at_close, idle_closed, read_errors and
/// messages, and the gauge `collect_tcp_connections` (open now).
#[derive(Debug, Clone, Default)]
pub struct TcpMetrics {
    /// One family per [`TcpStats`] counter.
    pub counters: [Family<ListenerLabel, Counter>; 8],
    /// Connections open now.
    pub connections: Family<ListenerLabel, Gauge>,
    last: Arc<Mutex<HashMap<std::net::SocketAddr, TcpStats>>>,
}

/// Names and help of [`TcpMetrics::counters`].
const TCP_COUNTERS: [(&str, &str); 8] = [
    ("accepted", "IPFIX/TCP connections accepted, by listener"),
    (
        "refused",
        "IPFIX/TCP connections closed at once because max_connections were open, by listener",
    ),
    ("closed", "IPFIX/TCP connections that ended, by listener"),
    (
        "bad_frames",
        "IPFIX/TCP connections closed on a bad frame (version not 10 or length < 16), by listener",
    ),
    (
        "partial_at_close",
        "IPFIX/TCP connections that ended in the middle of a message, by listener",
    ),
    (
        "idle_closed",
        "IPFIX/TCP connections closed by the idle timeout, by listener",
    ),
    ("read_errors", "IPFIX/TCP read errors, by listener"),
    ("messages", "IPFIX/TCP messages framed, by listener"),
];

const fn tcp_values(t: &TcpStats) -> [u64; 8] {
    [
        t.accepted,
        t.refused,
        t.closed,
        t.bad_frames,
        t.partial_at_close,
        t.idle_closed,
        t.read_errors,
        t.messages,
    ]
}

impl TcpMetrics {
    fn register(&self, r: &mut Registry) {
        for ((name, help), family) in TCP_COUNTERS.iter().zip(&self.counters) {
            r.register(format!("collect_tcp_{name}"), *help, family.clone());
        }
        r.register(
            "collect_tcp_connections",
            "IPFIX/TCP connections open now, by listener",
            self.connections.clone(),
        );
    }
}

/// What was already added to the metrics.
#[derive(Debug, Default)]
struct ReportState {
    /// Exporters that have their own label value.
    labelled: HashSet<IpAddr>,
    /// Per listener: last global counters, recv errors, and per exporter counters.
    listeners: HashMap<String, ListenerSeen>,
    /// sFlow interfaces with their own label values.
    interfaces: HashSet<(Option<IpAddr>, u32)>,
}

#[derive(Debug, Default)]
struct ListenerSeen {
    global: GlobalCounters,
    recv_errors: u64,
    exporters: HashMap<IpAddr, ExporterStats>,
}

/// `now - was`, or `now` when the counter restarted (an exporter forgotten and heard again).
fn delta(now: u64, was: u64) -> u64 {
    now.checked_sub(was).unwrap_or(now)
}

impl Default for CollectMetrics {
    fn default() -> Self {
        Self {
            per_exporter: ExporterStats::default()
                .fields()
                .map(|(name, _)| (name, Family::default()))
                .collect(),
            decode_errors: Family::default(),
            protocol_datagrams: Family::default(),
            exporters_evicted: Counter::default(),
            sink_dropped: Family::default(),
            recv_errors: Family::default(),
            recv_buffer_bytes: Family::default(),
            exporters: Family::default(),
            templates: Family::default(),
            sflow_if: SFLOW_IF_GAUGES.iter().map(|_| Family::default()).collect(),
            sflow_if_unlabelled: Counter::default(),
            tcp: TcpMetrics::default(),
            state: Arc::default(),
        }
    }
}

impl CollectMetrics {
    /// Registers every collection metric into `r` (already under the sensor prefix).
    fn register(&self, r: &mut Registry) {
        for (name, family) in &self.per_exporter {
            r.register(
                format!("collect_{name}"),
                format!("Flow collection, per exporter: {}", exporter_help(name)),
                family.clone(),
            );
        }
        r.register(
            "collect_decode_errors",
            "Export datagrams rejected by a decode error, by kind",
            self.decode_errors.clone(),
        );
        r.register(
            "collect_protocol_datagrams",
            "Export datagrams received, by protocol",
            self.protocol_datagrams.clone(),
        );
        r.register(
            "collect_exporters_evicted",
            "Exporters forgotten to make room for new ones",
            self.exporters_evicted.clone(),
        );
        r.register(
            "collect_sink_dropped",
            "Collected flow records dropped because the export queue was full, by listener",
            self.sink_dropped.clone(),
        );
        r.register(
            "collect_recv_errors",
            "Receive errors of flow listener sockets, by listener",
            self.recv_errors.clone(),
        );
        r.register(
            "collect_recv_buffer_bytes",
            "Effective SO_RCVBUF of flow listener sockets, by listener",
            self.recv_buffer_bytes.clone(),
        );
        r.register(
            "collect_exporters",
            "Exporters tracked now, by listener",
            self.exporters.clone(),
        );
        r.register(
            "collect_templates",
            "NetFlow v9/IPFIX templates cached now, by listener",
            self.templates.clone(),
        );
        for ((name, help, _), family) in SFLOW_IF_GAUGES.iter().zip(&self.sflow_if) {
            r.register(format!("collect_sflow_if_{name}"), *help, family.clone());
        }
        r.register(
            "collect_sflow_if_unlabelled",
            "sFlow counter samples of interfaces beyond the label limit (not exposed)",
            self.sflow_if_unlabelled.clone(),
        );
        self.tcp.register(r);
    }

    /// Adds what an IPFIX-over-TCP listener at `listener` counted since the last call.
    pub fn report_tcp(&self, listener: std::net::SocketAddr, now: &TcpStats) {
        let label = [("listener", listener.to_string())];
        let mut last = self.tcp.last.lock().unwrap_or_else(PoisonError::into_inner);
        let was = last.get(&listener).copied().unwrap_or_default();
        for ((n, before), family) in tcp_values(now)
            .into_iter()
            .zip(tcp_values(&was))
            .zip(&self.tcp.counters)
        {
            family.get_or_create(&label).inc_by(delta(n, before));
        }
        self.tcp
            .connections
            .get_or_create(&label)
            .set(i64::try_from(now.active).unwrap_or(i64::MAX));
        last.insert(listener, *now);
    }

    /// Adds what one listener counted since the last call: `stats` from
    /// `Listener::stats_handle`, `exporters` from `Listener::exporters_handle`.
    pub fn report_listener(&self, stats: &ListenerStats, exporters: &[(IpAddr, ExporterStats)]) {
        let listener = stats.local_addr.to_string();
        let label = [("listener", listener.clone())];
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ReportState {
            labelled,
            listeners,
            ..
        } = &mut *state;
        let seen = listeners.entry(listener).or_default();
        let now = &stats.collector.global;
        let was = &seen.global;
        for (kind, n, before) in [
            ("truncated", now.errors_truncated, was.errors_truncated),
            ("malformed", now.errors_malformed, was.errors_malformed),
            (
                "unknown_version",
                now.errors_unknown_version,
                was.errors_unknown_version,
            ),
            (
                "too_many_fields",
                now.errors_too_many_fields,
                was.errors_too_many_fields,
            ),
        ] {
            if n != before {
                self.decode_errors
                    .get_or_create(&[("kind", kind)])
                    .inc_by(delta(n, before));
            }
        }
        for (protocol, n, before) in [
            ("netflow5", now.datagrams_netflow5, was.datagrams_netflow5),
            ("netflow9", now.datagrams_netflow9, was.datagrams_netflow9),
            ("ipfix", now.datagrams_ipfix, was.datagrams_ipfix),
            ("sflow", now.datagrams_sflow, was.datagrams_sflow),
        ] {
            if n != before {
                self.protocol_datagrams
                    .get_or_create(&[("protocol", protocol)])
                    .inc_by(delta(n, before));
            }
        }
        self.exporters_evicted
            .inc_by(delta(now.exporters_evicted, was.exporters_evicted));
        self.sink_dropped
            .get_or_create(&label)
            .inc_by(delta(now.sink_dropped, was.sink_dropped));
        self.recv_errors
            .get_or_create(&label)
            .inc_by(delta(stats.recv_errors, seen.recv_errors));
        seen.global = *now;
        seen.recv_errors = stats.recv_errors;
        self.recv_buffer_bytes
            .get_or_create(&label)
            .set(i64::try_from(stats.recv_buffer_bytes).unwrap_or(i64::MAX));
        self.exporters
            .get_or_create(&label)
            .set(i64::try_from(stats.collector.exporters).unwrap_or(i64::MAX));
        self.templates
            .get_or_create(&label)
            .set(i64::try_from(stats.collector.templates).unwrap_or(i64::MAX));

        let mut current = HashMap::with_capacity(exporters.len());
        for (addr, now) in exporters {
            let known = seen.exporters.get(addr).copied();
            let was = known.unwrap_or_default();
            // A new exporter gets every series (zeros included), so loss shows as 0, not absent.
            if known.is_none() || now != &was {
                if !labelled.contains(addr) && labelled.len() < MAX_EXPORTER_LABELS {
                    labelled.insert(*addr);
                }
                let value = if labelled.contains(addr) {
                    addr.to_string()
                } else {
                    OTHER_EXPORTERS.to_owned()
                };
                let exporter = [("exporter", value)];
                for (((_, n), (_, before)), (_, family)) in
                    now.fields().zip(was.fields()).zip(&self.per_exporter)
                {
                    if n != before || known.is_none() {
                        family.get_or_create(&exporter).inc_by(delta(n, before));
                    }
                }
            }
            current.insert(*addr, *now);
        }
        // Exporters the collector forgot restart from zero if heard again.
        seen.exporters = current;
    }

    /// Exposes one sFlow counter sample (interfaces beyond the label limit are only counted).
    pub fn report_interface(&self, counters: &InterfaceCounters) {
        let key = (counters.agent, counters.if_index);
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.interfaces.contains(&key) {
                if state.interfaces.len() >= MAX_SFLOW_INTERFACE_LABELS {
                    self.sflow_if_unlabelled.inc();
                    return;
                }
                state.interfaces.insert(key);
            }
        }
        let label = [
            (
                "agent",
                counters.agent.map_or_else(String::new, |a| a.to_string()),
            ),
            ("if_index", counters.if_index.to_string()),
        ];
        for ((_, _, value), family) in SFLOW_IF_GAUGES.iter().zip(&self.sflow_if) {
            family
                .get_or_create(&label)
                .set(i64::try_from(value(counters)).unwrap_or(i64::MAX));
        }
    }
}

/// Help text of a per-exporter counter.
fn exporter_help(name: &str) -> &'static str {
    match name {
        "datagrams" => "datagrams received",
        "bytes" => "bytes of datagrams received",
        "records" => "flow records decoded",
        "options_records" => "NetFlow v9/IPFIX options data records read",
        "counter_samples" => "sFlow counter samples decoded",
        "records_without_addresses" => "data records without an address pair (skipped)",
        "errors" => "datagrams rejected by a decode error",
        "missing_template" => "data sets whose template was unknown when they arrived",
        "lost_datagrams" => "datagrams lost according to sequence numbers (v9, sFlow)",
        "lost_records" => "records lost according to sequence numbers (v5, IPFIX)",
        "sequence_late" => "datagrams behind the expected sequence number",
        "sequence_resets" => "sequence jumps too large to be loss (exporter restarts)",
        "templates_learned" => "templates learned",
        "templates_refreshed" => "templates sent again unchanged",
        "templates_replaced" => "templates redefined",
        "templates_withdrawn" => "templates withdrawn",
        "templates_expired" => "templates expired",
        "templates_evicted" => "templates evicted (too many for the exporter)",
        "templates_rejected" => "templates refused (collector-wide limit)",
        "pending_buffered" => "data sets buffered while waiting for their template",
        "pending_replayed" => "buffered data sets decoded once their template arrived",
        "pending_dropped" => "buffered data sets dropped (buffer full)",
        "pending_expired" => "buffered data sets dropped (template did not come in time)",
        _ => "see ExporterStats",
    }
}

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
    /// Flow records held in the outage buffer while the bus is not connected.
    pub outage_buffered_records: Gauge,
    /// Flow records the outage buffer dropped (full, or bus still down at the end of a run);
    /// also counted in `records_dropped`.
    pub outage_dropped: Counter,
    /// Packets libpcap reports as dropped by the kernel (buffer full), per interface.
    pub capture_dropped: Family<InterfaceLabel, Counter>,
    /// Packets libpcap reports as dropped by the interface or driver, per interface.
    pub capture_if_dropped: Family<InterfaceLabel, Counter>,
    /// Flow collection (NetFlow/IPFIX/sFlow listeners).
    pub collect: CollectMetrics,
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
            "outage_buffered_records",
            "Flow records held while the bus is not connected",
            self.outage_buffered_records.clone(),
        );
        r.register(
            "outage_dropped",
            "Flow records the outage buffer dropped (full, or bus down at the end of a run)",
            self.outage_dropped.clone(),
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
        self.collect.register(r);
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

    fn encode(m: &SensorMetrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn collection_counters_are_added_in_deltas_with_bounded_exporter_labels() {
        let m = SensorMetrics::new();
        let mut stats = ListenerStats {
            local_addr: "127.0.0.1:2055".parse().unwrap(),
            recv_buffer_bytes: 4096,
            batches: 1,
            recv_errors: 0,
            collector: crate::collect::CollectorStats::default(),
        };
        let exporter = |i: u32, records: u64| {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let stats = ExporterStats {
                datagrams: 1,
                records,
                ..ExporterStats::default()
            };
            (addr, stats)
        };
        // More exporters than labels: the rest add up under "other".
        let n = u32::try_from(MAX_EXPORTER_LABELS).unwrap() + 10;
        let all: Vec<_> = (0..n).map(|i| exporter(i, 5)).collect();
        stats.collector.global.errors_truncated = 2;
        m.collect.report_listener(&stats, &all);
        // A second report adds only what changed.
        let mut again = all.clone();
        again[0].1.records = 7;
        again[0].1.lost_datagrams = 3;
        m.collect.report_listener(&stats, &again);
        let text = encode(&m);
        assert!(
            text.contains("netwarden_sensor_collect_records_total{exporter=\"10.0.0.0\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_collect_lost_datagrams_total{exporter=\"10.0.0.0\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_collect_lost_records_total{exporter=\"10.0.0.1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_collect_records_total{exporter=\"other\"} 50"),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_collect_decode_errors_total{kind=\"truncated\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "netwarden_sensor_collect_recv_buffer_bytes{listener=\"127.0.0.1:2055\"} 4096"
            ),
            "{text}"
        );
        let labels = text
            .lines()
            .filter(|l| l.starts_with("netwarden_sensor_collect_records_total{"))
            .count();
        assert_eq!(labels, MAX_EXPORTER_LABELS + 1);
    }

    #[test]
    fn sflow_interfaces_are_gauges_up_to_the_label_limit() {
        let m = SensorMetrics::new();
        for i in 0..=u32::try_from(MAX_SFLOW_INTERFACE_LABELS).unwrap() {
            m.collect.report_interface(&InterfaceCounters {
                agent: Some("192.0.2.1".parse().unwrap()),
                if_index: i,
                in_octets: 1000 + u64::from(i),
                ..InterfaceCounters::default()
            });
        }
        let text = encode(&m);
        assert!(
            text.contains(
                "netwarden_sensor_collect_sflow_if_in_octets{agent=\"192.0.2.1\",if_index=\"3\"} 1003"
            ),
            "{text}"
        );
        assert!(
            text.contains("netwarden_sensor_collect_sflow_if_unlabelled_total 1"),
            "{text}"
        );
    }
}
