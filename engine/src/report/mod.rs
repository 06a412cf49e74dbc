//! The end-of-run report: what a capture contained, as text for people or one JSON document
//! for scripts.
//!
//! [`Report::build`] is a pure function of the state (and, in standalone mode, the sensor's run
//! summary); rendering is separate. Later stages add sections here (alerts by type, top hosts
//! by score, service map): add a field to [`Report`] and a `write_*` step to
//! [`Report::write_text`].

pub mod analysis;

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;

use crate::hosts::PointTotals;
use crate::state::State;
use crate::store::ProtocolTotalsRow;

/// Rows in each "top" table.
pub const TOP_N: usize = 10;

/// The output format of the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned text tables on stdout.
    #[default]
    Text,
    /// One JSON document on stdout (nothing else is printed there).
    Json,
}

/// What the sensor said about its run (standalone mode only): the pipeline's own summary,
/// so the report shows every counter the sensor keeps (collected datagrams and per-file errors too).
pub type SensorSection = netwarden_sensor::pipeline::RunSummary;

/// Whole-run totals as the engine saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Distinct flows.
    pub flows: u64,
    /// Flows still active at report time.
    pub active_flows: u64,
    /// Ended flows kept in the history.
    pub ended_flows_kept: u64,
    /// Packets (both directions, all flows).
    pub packets: u64,
    /// Bytes (both directions, all flows).
    pub bytes: u64,
    /// Hosts in the host table.
    pub hosts: u64,
    /// Flow records applied.
    pub records: u64,
    /// Flow batches applied.
    pub batches: u64,
    /// Bus payloads that did not decode.
    pub decode_errors: u64,
}

/// A row of the top-talkers table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Talker {
    /// Address.
    pub ip: IpAddr,
    /// VLAN id.
    pub vlan: u32,
    /// Bytes sent and received.
    pub bytes: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_rcvd: u64,
    /// Packets sent and received.
    pub packets: u64,
    /// Flows as client and server.
    pub flows: u64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The sensor's run (standalone mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<SensorSection>,
    /// Engine totals.
    pub summary: Summary,
    /// Hosts with the most bytes.
    pub top_talkers: Vec<Talker>,
    /// L4 protocols, most bytes first.
    pub l4_protocols: Vec<ProtocolTotalsRow>,
    /// L7 protocols, most bytes first (at most [`TOP_N`]).
    pub l7_protocols: Vec<ProtocolTotalsRow>,
    /// Observation points.
    pub observation_points: Vec<PointTotals>,
    /// Alerts, scores and anomalies.
    pub analysis: analysis::AnalysisSection,
    /// Device types of local hosts.
    pub devices: crate::devices::report::DeviceSection,
    /// The learned service map and periodic flows.
    pub servicemap: crate::servicemap::report::ServiceMapSection,
}

impl Report {
    /// Builds the report from the state, the batches/decode-error counts of ingest and the
    /// sensor summary when there is one.
    pub fn build(
        state: &State,
        batches: u64,
        decode_errors: u64,
        sensor: Option<SensorSection>,
    ) -> Self {
        let mut talkers: Vec<Talker> = state
            .hosts
            .iter()
            .map(|h| Talker {
                ip: h.key.ip,
                vlan: h.key.vlan,
                bytes: h.bytes(),
                bytes_sent: h.bytes_sent,
                bytes_rcvd: h.bytes_rcvd,
                packets: h.packets(),
                flows: h.flows(),
            })
            .collect();
        talkers.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| (a.ip, a.vlan).cmp(&(b.ip, b.vlan)))
        });
        talkers.truncate(TOP_N);
        let mut l7 = state.protocols.l7_rows();
        l7.truncate(TOP_N);
        let points = state
            .points
            .sorted()
            .into_iter()
            .map(|p| {
                let mut p = p.clone();
                if p.first_seen_ns == u64::MAX {
                    p.first_seen_ns = 0;
                }
                p
            })
            .collect();
        Self {
            sensor,
            summary: Summary {
                flows: state.totals.flows,
                active_flows: state.flows.active_len() as u64,
                ended_flows_kept: state.flows.ended_len() as u64,
                packets: state.totals.packets,
                bytes: state.totals.bytes,
                hosts: state.hosts.len() as u64,
                records: state.totals.records,
                batches,
                decode_errors,
            },
            top_talkers: talkers,
            l4_protocols: state.protocols.l4_rows(),
            l7_protocols: l7,
            observation_points: points,
            analysis: analysis::AnalysisSection::build(state),
            devices: crate::devices::report::DeviceSection::build(&state.devices),
            servicemap: crate::servicemap::report::ServiceMapSection::build(
                &state.servicemap,
                state.analysis.now_ns,
            ),
        }
    }

    /// Writes the report as one JSON document (and a newline).
    pub fn write_json(&self, out: &mut impl Write) -> crate::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self).map_err(crate::Error::ReportJson)?;
        writeln!(out).map_err(crate::Error::Report)
    }

    /// Writes the report as text tables.
    pub fn write_text(&self, out: &mut impl Write) -> crate::Result<()> {
        self.write_text_sections(out).map_err(crate::Error::Report)
    }

    fn write_text_sections(&self, out: &mut impl Write) -> std::io::Result<()> {
        if let Some(s) = &self.sensor {
            writeln!(out, "Sensor")?;
            writeln!(out, "  packets           {:>14}", s.packets)?;
            writeln!(out, "  bytes             {:>14}", s.bytes)?;
            writeln!(
                out,
                "  decode errors     {:>14}",
                s.decode_errors.saturating_sub(s.not_ip_frames)
            )?;
            if s.not_ip_frames > 0 {
                writeln!(
                    out,
                    "  non-IP frames     {:>14}  (ARP, STP, EAPOL…: not analysed)",
                    s.not_ip_frames
                )?;
            }
            writeln!(out, "  flows             {:>14}", s.flows)?;
            writeln!(out, "  records exported  {:>14}", s.records_exported)?;
            writeln!(out, "  batches published {:>14}", s.batches_published)?;
            if s.batches_dropped > 0 || s.records_dropped > 0 {
                writeln!(out, "  batches dropped   {:>14}", s.batches_dropped)?;
                writeln!(out, "  records dropped   {:>14}", s.records_dropped)?;
            }
            if s.collected_datagrams > 0 {
                writeln!(out, "  export datagrams  {:>14}", s.collected_datagrams)?;
                writeln!(out, "  export records    {:>14}", s.collected_records)?;
            }
            writeln!(out)?;
        }
        let t = &self.summary;
        writeln!(out, "Traffic")?;
        writeln!(
            out,
            "  flows             {:>14}  ({} active)",
            t.flows, t.active_flows
        )?;
        writeln!(out, "  packets           {:>14}", t.packets)?;
        writeln!(
            out,
            "  bytes             {:>14}  ({})",
            t.bytes,
            human_bytes(t.bytes)
        )?;
        writeln!(out, "  hosts             {:>14}", t.hosts)?;
        if t.decode_errors > 0 {
            writeln!(out, "  undecodable batches {:>12}", t.decode_errors)?;
        }
        writeln!(out)?;
        self.write_talkers(out)?;
        write_protocols(out, "L4 protocols", &self.l4_protocols)?;
        write_protocols(out, "L7 protocols", &self.l7_protocols)?;
        self.write_points(out)?;
        self.devices.write_text(out)?;
        self.servicemap.write_text(out)?;
        self.analysis.write_text(out)
    }

    fn write_talkers(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "Top talkers")?;
        writeln!(
            out,
            "  {:<40} {:>5} {:>14} {:>14} {:>10} {:>7}",
            "host", "vlan", "sent", "received", "packets", "flows"
        )?;
        for h in &self.top_talkers {
            writeln!(
                out,
                "  {:<40} {:>5} {:>14} {:>14} {:>10} {:>7}",
                h.ip.to_string(),
                h.vlan,
                h.bytes_sent,
                h.bytes_rcvd,
                h.packets,
                h.flows
            )?;
        }
        writeln!(out)
    }

    fn write_points(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "Observation points")?;
        writeln!(
            out,
            "  {:<40} {:>8} {:>10} {:>14} {:>7}",
            "point", "flows", "packets", "bytes", "hosts"
        )?;
        for p in &self.observation_points {
            writeln!(
                out,
                "  {:<40} {:>8} {:>10} {:>14} {:>7}",
                p.name, p.flows, p.packets, p.bytes, p.hosts
            )?;
        }
        writeln!(out)
    }
}

fn write_protocols(
    out: &mut impl Write,
    title: &str,
    rows: &[ProtocolTotalsRow],
) -> std::io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(
        out,
        "  {:<32} {:>8} {:>10} {:>14}",
        "protocol", "flows", "packets", "bytes"
    )?;
    for r in rows {
        writeln!(
            out,
            "  {:<32} {:>8} {:>10} {:>14}",
            r.name, r.flows, r.packets, r.bytes
        )?;
    }
    writeln!(out)
}

/// `1536` → `1.5 KiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, ip_to_bytes};

    use super::*;
    use crate::state::StateConfig;

    fn state() -> State {
        let mut s = State::new(&StateConfig::default());
        for i in 0..15u8 {
            s.apply_record(FlowRecord {
                flow_id: u64::from(i),
                client_ip: ip_to_bytes(IpAddr::from([10, 0, 0, i])),
                server_ip: ip_to_bytes(IpAddr::from([10, 0, 1, 1])),
                l4_proto: if i % 3 == 0 { 17 } else { 6 },
                update: FlowUpdate::Final as i32,
                c2s: Some(DirectionStats {
                    packets: 1,
                    bytes: 100 * u64::from(i),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        s
    }

    #[test]
    fn report_tops_and_totals() {
        let r = Report::build(&state(), 3, 0, None);
        assert_eq!(r.summary.flows, 15);
        assert_eq!(r.summary.hosts, 16);
        assert_eq!(r.summary.bytes, (0..15).map(|i| 100 * i).sum::<u64>());
        assert_eq!(r.top_talkers.len(), TOP_N);
        assert_eq!(r.top_talkers[0].ip, IpAddr::from([10, 0, 1, 1]));
        assert_eq!(r.top_talkers[1].ip, IpAddr::from([10, 0, 0, 14]));
        let names: Vec<_> = r.l4_protocols.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["TCP", "UDP"]);
        assert_eq!(r.l7_protocols[0].name, "Unknown");
    }

    #[test]
    fn text_and_json_render() {
        let r = Report::build(
            &state(),
            3,
            0,
            Some(SensorSection {
                packets: 15,
                ..Default::default()
            }),
        );
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("Top talkers")
                && text.contains("10.0.1.1")
                && text.contains("L7 protocols"),
            "{text}"
        );
        let mut json = Vec::new();
        r.write_json(&mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["summary"]["flows"], 15);
        assert_eq!(v["sensor"]["packets"], 15);
        assert_eq!(v["top_talkers"][0]["ip"], "10.0.1.1");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
