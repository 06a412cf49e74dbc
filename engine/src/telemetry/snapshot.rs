//! A bounded snapshot of the engine's business numbers, and the metric families both exports
//! (Prometheus and OTLP) are written from.
//!
//! Taken at scrape or export time under the state's read lock: nothing is counted per flow.
//! Cardinality is bounded: hosts by `top` (score first, then bytes), namespaces and workloads by
//! `top` (bytes), points by the point table's own bound, alert series by (type, severity).

use std::collections::BTreeMap;
use std::net::IpAddr;

use netwarden_api::alert::Severity;

use crate::Engine;
use crate::directory::{GroupBy, rollup};
use crate::score::ScoreValues;

/// Longest label value exported; longer values are cut (labels come from sensors and the
/// cluster directory: untrusted).
pub const MAX_LABEL_LEN: usize = 128;

/// One host in the top N.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSample {
    /// Address.
    pub ip: IpAddr,
    /// VLAN (0 untagged).
    pub vlan: u32,
    /// Kubernetes name (`namespace/pod`), when the directory knows the address.
    pub name: Option<String>,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Workload (`namespace/Kind/name`).
    pub workload: Option<String>,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_rcvd: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_rcvd: u64,
    /// Flows opened.
    pub flows_as_client: u64,
    /// Flows answered.
    pub flows_as_server: u64,
    /// Live score.
    pub score: ScoreValues,
}

/// One observation point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointSample {
    /// `sensor/interface` or the exporter's name.
    pub name: String,
    /// Sensor.
    pub sensor: String,
    /// Interface.
    pub interface: String,
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Flows.
    pub flows: u64,
    /// Hosts seen there.
    pub hosts: u64,
}

/// One (sensor, interface): the sum of its points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSample {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Flows.
    pub flows: u64,
}

/// One namespace or workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSample {
    /// Namespace.
    pub namespace: String,
    /// Workload (`Kind/name`), for workloads.
    pub workload: Option<String>,
    /// Hosts.
    pub hosts: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_rcvd: u64,
    /// Flows opened.
    pub flows_as_client: u64,
    /// Flows answered.
    pub flows_as_server: u64,
    /// Score as client.
    pub score_as_client: u64,
    /// Score as server.
    pub score_as_server: u64,
}

/// The business numbers at one time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Flow time of the analysis (ns), 0 before the first record.
    pub at_ns: u64,
    /// Hosts in the table (all, not only the top N).
    pub hosts_known: u64,
    /// The top N hosts.
    pub hosts: Vec<HostSample>,
    /// Observation points.
    pub points: Vec<PointSample>,
    /// (sensor, interface) totals.
    pub interfaces: BTreeMap<(String, String), InterfaceSample>,
    /// Namespaces (top N by bytes).
    pub namespaces: Vec<GroupSample>,
    /// Workloads (top N by bytes).
    pub workloads: Vec<GroupSample>,
    /// Alerts in the store by (type, severity).
    pub alerts: BTreeMap<(String, &'static str), u64>,
    /// Whole-engine bytes, packets and flows.
    pub totals: (u64, u64, u64),
}

/// The name of a severity (`warning`).
pub const fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        Severity::Info => "info",
        Severity::Notice => "notice",
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Critical => "critical",
        Severity::Emergency => "emergency",
    }
}

/// A label value made safe: bounded, no control characters, quotes or backslashes.
pub fn clean(s: &str) -> String {
    s.chars()
        .take(MAX_LABEL_LEN)
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl Snapshot {
    /// Reads the engine: the top `top` hosts by score then bytes, and everything else.
    pub fn take(engine: &Engine, top: usize) -> Self {
        let state = engine.read();
        let dir = crate::directory::read(&engine.directory);
        let now = state.analysis.now_ns;
        let mut ranked: Vec<(ScoreValues, &crate::hosts::Host)> = state
            .hosts
            .iter()
            .map(|h| (state.analysis.scores.values(&h.key, now), h))
            .collect();
        let by_rank = |a: &(ScoreValues, &crate::hosts::Host),
                       b: &(ScoreValues, &crate::hosts::Host)| {
            b.0.total
                .cmp(&a.0.total)
                .then_with(|| b.1.bytes().cmp(&a.1.bytes()))
                .then_with(|| a.1.key.cmp(&b.1.key))
        };
        if ranked.len() > top && top > 0 {
            ranked.select_nth_unstable_by(top - 1, by_rank);
        }
        ranked.truncate(top);
        ranked.sort_by(by_rank);
        let hosts = ranked
            .into_iter()
            .map(|(score, h)| {
                let entry = dir.get(h.key.ip);
                HostSample {
                    ip: h.key.ip,
                    vlan: h.key.vlan,
                    name: entry.map(|e| clean(&e.display_name())),
                    namespace: entry.and_then(|e| e.namespace.as_deref().map(clean)),
                    workload: entry.and_then(|e| e.workload_key().as_deref().map(clean)),
                    bytes_sent: h.bytes_sent,
                    bytes_rcvd: h.bytes_rcvd,
                    packets_sent: h.packets_sent,
                    packets_rcvd: h.packets_rcvd,
                    flows_as_client: h.flows_as_client,
                    flows_as_server: h.flows_as_server,
                    score,
                }
            })
            .collect();
        let points: Vec<PointSample> = state
            .points
            .sorted()
            .into_iter()
            .map(|p| PointSample {
                name: clean(&p.name),
                sensor: clean(&p.sensor),
                interface: clean(&p.interface),
                bytes: p.bytes,
                packets: p.packets,
                flows: p.flows,
                hosts: p.hosts,
            })
            .collect();
        let mut interfaces: BTreeMap<(String, String), InterfaceSample> = BTreeMap::new();
        for p in &points {
            let i = interfaces
                .entry((p.sensor.clone(), p.interface.clone()))
                .or_default();
            i.bytes = i.bytes.saturating_add(p.bytes);
            i.packets = i.packets.saturating_add(p.packets);
            i.flows = i.flows.saturating_add(p.flows);
        }
        let group = |by: GroupBy| -> Vec<GroupSample> {
            let mut groups = rollup(&state, &dir, by);
            groups.sort_by(|a, b| {
                (b.bytes_sent + b.bytes_rcvd)
                    .cmp(&(a.bytes_sent + a.bytes_rcvd))
                    .then_with(|| a.name.cmp(&b.name))
            });
            groups.truncate(top);
            groups
                .into_iter()
                .map(|g| GroupSample {
                    namespace: clean(&g.namespace),
                    workload: g.workload.as_deref().map(clean),
                    hosts: g.hosts,
                    bytes_sent: g.bytes_sent,
                    bytes_rcvd: g.bytes_rcvd,
                    flows_as_client: g.flows_as_client,
                    flows_as_server: g.flows_as_server,
                    score_as_client: g.score_as_client,
                    score_as_server: g.score_as_server,
                })
                .collect()
        };
        let namespaces = group(GroupBy::Namespace);
        let workloads = group(GroupBy::Workload);
        let mut alerts = BTreeMap::new();
        for r in state.analysis.store.iter() {
            *alerts
                .entry((clean(&r.alert.alert_type), severity_name(r.alert.severity)))
                .or_insert(0) += 1;
        }
        Self {
            at_ns: now,
            hosts_known: state.hosts.len() as u64,
            hosts,
            points,
            interfaces,
            namespaces,
            workloads,
            alerts,
            totals: (state.totals.bytes, state.totals.packets, state.totals.flows),
        }
    }

    /// The metric families of this snapshot.
    pub fn families(&self) -> Vec<Family> {
        let mut f = Families::default();
        let bytes = f.add(
            "host.bytes",
            "Bytes of a top-N host, by direction",
            Kind::Counter,
            "By",
        );
        let packets = f.add(
            "host.packets",
            "Packets of a top-N host, by direction",
            Kind::Counter,
            "",
        );
        let flows = f.add(
            "host.flows",
            "Flows of a top-N host, by role",
            Kind::Counter,
            "",
        );
        let score = f.add(
            "host.score",
            "Live score of a top-N host, by side (client/server) and kind (network/security)",
            Kind::Gauge,
            "",
        );
        for h in &self.hosts {
            let base = host_labels(h);
            let with = |k: &'static str, v: &'static str| {
                let mut l = base.clone();
                l.push((k, v.to_owned()));
                l
            };
            f.point(bytes, with("direction", "sent"), h.bytes_sent);
            f.point(bytes, with("direction", "rcvd"), h.bytes_rcvd);
            f.point(packets, with("direction", "sent"), h.packets_sent);
            f.point(packets, with("direction", "rcvd"), h.packets_rcvd);
            f.point(flows, with("role", "client"), h.flows_as_client);
            f.point(flows, with("role", "server"), h.flows_as_server);
            for (side, kind, v) in [
                ("client", "network", h.score.client_network),
                ("client", "security", h.score.client_security),
                ("server", "network", h.score.server_network),
                ("server", "security", h.score.server_security),
            ] {
                let mut l = base.clone();
                l.push(("side", side.to_owned()));
                l.push(("kind", kind.to_owned()));
                f.point(score, l, v);
            }
        }
        let known = f.add(
            "hosts.known",
            "Hosts in the host table (all of them)",
            Kind::Gauge,
            "",
        );
        f.point(known, Vec::new(), self.hosts_known);
        let exported = f.add(
            "hosts.exported",
            "Hosts exported as the top N",
            Kind::Gauge,
            "",
        );
        f.point(exported, Vec::new(), self.hosts.len() as u64);

        let pb = f.add(
            "point.bytes",
            "Bytes seen at an observation point",
            Kind::Counter,
            "By",
        );
        let pp = f.add(
            "point.packets",
            "Packets seen at an observation point",
            Kind::Counter,
            "",
        );
        let pf = f.add(
            "point.flows",
            "Flows seen at an observation point",
            Kind::Counter,
            "",
        );
        let ph = f.add(
            "point.hosts",
            "Hosts seen at an observation point",
            Kind::Gauge,
            "",
        );
        for p in &self.points {
            let l = vec![
                ("point", p.name.clone()),
                ("sensor", p.sensor.clone()),
                ("interface", p.interface.clone()),
            ];
            f.point(pb, l.clone(), p.bytes);
            f.point(pp, l.clone(), p.packets);
            f.point(pf, l.clone(), p.flows);
            f.point(ph, l, p.hosts);
        }
        let ib = f.add(
            "interface.bytes",
            "Bytes seen on an interface (all its points)",
            Kind::Counter,
            "By",
        );
        let ip = f.add(
            "interface.packets",
            "Packets seen on an interface",
            Kind::Counter,
            "",
        );
        let iflows = f.add(
            "interface.flows",
            "Flows seen on an interface",
            Kind::Counter,
            "",
        );
        for ((sensor, interface), i) in &self.interfaces {
            let l = vec![("sensor", sensor.clone()), ("interface", interface.clone())];
            f.point(ib, l.clone(), i.bytes);
            f.point(ip, l.clone(), i.packets);
            f.point(iflows, l, i.flows);
        }
        for (scope, groups) in [
            ("namespace", &self.namespaces),
            ("workload", &self.workloads),
        ] {
            let gb = f.add(
                if scope == "namespace" {
                    "namespace.bytes"
                } else {
                    "workload.bytes"
                },
                "Bytes of the hosts of a Kubernetes namespace or workload, by direction",
                Kind::Counter,
                "By",
            );
            let gf = f.add(
                if scope == "namespace" {
                    "namespace.flows"
                } else {
                    "workload.flows"
                },
                "Flows of the hosts of a namespace or workload, by role",
                Kind::Counter,
                "",
            );
            let gs = f.add(
                if scope == "namespace" {
                    "namespace.score"
                } else {
                    "workload.score"
                },
                "Summed live score of the hosts of a namespace or workload, by side",
                Kind::Gauge,
                "",
            );
            let gh = f.add(
                if scope == "namespace" {
                    "namespace.hosts"
                } else {
                    "workload.hosts"
                },
                "Hosts of a namespace or workload",
                Kind::Gauge,
                "",
            );
            for g in groups {
                let mut base = vec![("namespace", g.namespace.clone())];
                if let Some(w) = &g.workload {
                    base.push(("workload", w.clone()));
                }
                let with = |k: &'static str, v: &str| {
                    let mut l = base.clone();
                    l.push((k, v.to_owned()));
                    l
                };
                f.point(gb, with("direction", "sent"), g.bytes_sent);
                f.point(gb, with("direction", "rcvd"), g.bytes_rcvd);
                f.point(gf, with("role", "client"), g.flows_as_client);
                f.point(gf, with("role", "server"), g.flows_as_server);
                f.point(gs, with("side", "client"), g.score_as_client);
                f.point(gs, with("side", "server"), g.score_as_server);
                f.point(gh, base.clone(), g.hosts);
            }
        }
        let al = f.add(
            "alerts",
            "Alerts in the alert store, by type and severity",
            Kind::Gauge,
            "",
        );
        for ((t, s), n) in &self.alerts {
            f.point(
                al,
                vec![("type", t.clone()), ("severity", (*s).to_owned())],
                *n,
            );
        }
        let tb = f.add(
            "traffic.bytes",
            "Bytes of every flow the engine applied",
            Kind::Counter,
            "By",
        );
        f.point(tb, Vec::new(), self.totals.0);
        let tp = f.add(
            "traffic.packets",
            "Packets of every flow the engine applied",
            Kind::Counter,
            "",
        );
        f.point(tp, Vec::new(), self.totals.1);
        let tf = f.add(
            "traffic.flows",
            "Flows the engine applied",
            Kind::Counter,
            "",
        );
        f.point(tf, Vec::new(), self.totals.2);
        f.0
    }
}

fn host_labels(h: &HostSample) -> Vec<(&'static str, String)> {
    let mut l = vec![("ip", h.ip.to_string()), ("vlan", h.vlan.to_string())];
    if let Some(n) = &h.name {
        l.push(("name", n.clone()));
    }
    if let Some(n) = &h.namespace {
        l.push(("namespace", n.clone()));
    }
    if let Some(w) = &h.workload {
        l.push(("workload", w.clone()));
    }
    l
}

/// Counter (cumulative, monotonic) or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Cumulative and monotonic: `_total` in Prometheus, a monotonic Sum in OTLP.
    Counter,
    /// A value at a time.
    Gauge,
}

/// One metric with its points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// Dotted name without the `netwarden.` prefix (`host.bytes`).
    pub name: &'static str,
    /// Description.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// UCUM unit (`By`) or empty.
    pub unit: &'static str,
    /// Label sets and values.
    pub points: Vec<(Vec<(&'static str, String)>, u64)>,
}

#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        unit: &'static str,
    ) -> usize {
        self.0.push(Family {
            name,
            help,
            kind,
            unit,
            points: Vec::new(),
        });
        self.0.len() - 1
    }

    fn point(&mut self, family: usize, labels: Vec<(&'static str, String)>, value: u64) {
        if let Some(f) = self.0.get_mut(family) {
            f.points.push((labels, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_bounds_and_escapes() {
        assert_eq!(clean("a\"b\\c\nd"), "a_b_c_d");
        assert_eq!(clean(&"x".repeat(500)).len(), MAX_LABEL_LEN);
    }

    #[test]
    fn families_of_an_empty_snapshot_have_totals_only() {
        let f = Snapshot::default().families();
        let known = f
            .iter()
            .find(|f| f.name == "hosts.known")
            .map(|f| f.points.clone());
        assert_eq!(known, Some(vec![(Vec::new(), 0)]));
        assert!(
            f.iter()
                .find(|f| f.name == "host.bytes")
                .is_some_and(|f| f.points.is_empty())
        );
    }
}
