//! sFlow version 5 (sflow.org "sFlow Version 5", XDR encoding).
//!
//! Datagram header with the agent address (IPv4 or IPv6) and sub-agent id, then samples:
//! flow samples (1) and expanded flow samples (3) become one small flow record each (one
//! sampled packet × the sampling rate: packets = rate, bytes = frame length × rate), from the
//! raw packet header record (1, decoded with [`crate::decode::decode`]) or the sampled IPv4 /
//! IPv6 records (3, 4); extended switch data (1001) gives the VLAN. Counter samples (2) and
//! expanded counter samples (4) are parsed: generic interface counters (record 1) become
//! [`InterfaceCounters`]; other counter records are counted and skipped. Unknown formats and
//! enterprise-specific structures are skipped by their length.
//!
//! The observation point is the agent address from the datagram and the sub-agent id; the
//! datagram sequence number is tracked per (UDP source, sub-agent).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashMap;
use netwarden_api::flow::{FlowRecord, FlowSource, ObservationPoint};

use super::error::At;
use super::fields::{FlowFields, Origin, TimeBase, clamp_rate};
use super::wire::{pad4, u32_at, u64_at};
use super::{Cx, InterfaceCounters, Output, Result};
use crate::decode::{LinkType, decode as decode_packet};
use crate::flow::{FlowConfig, FlowTable};

/// Most observation points (agent, sub-agent) with their own flow table; samples of later
/// points become one record each, as without tables (`FlowTables::overflow`).
pub const MAX_FLOW_TABLES: usize = 64;
/// Most flows per point's table (the oldest are evicted beyond, as in capture): with
/// [`MAX_FLOW_TABLES`], at most about a million flows over all points.
pub const MAX_FLOWS_PER_TABLE: usize = 16_384;

/// Flow tables per sFlow observation point (agent address, sub-agent) for sampled packet
/// headers (`CollectorConfig::sflow_flow_table`): each decoded header goes through the same
/// flow table and DPI as captured packets; the table's records leave with the point's
/// observation point, source `sflow`, and packets/bytes scaled by the sampling rate.
#[derive(Default)]
pub struct FlowTables {
    tables: HashMap<(Arc<str>, u32), PointFlows>,
    /// Sampled headers of points beyond [`MAX_FLOW_TABLES`] (emitted one record each).
    pub overflow: u64,
    /// Sampled headers given to a table.
    pub packets: u64,
}

struct PointFlows {
    table: FlowTable,
    point: ObservationPoint,
    rate: u32,
}

impl std::fmt::Debug for FlowTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTables")
            .field("points", &self.tables.len())
            .field("packets", &self.packets)
            .field("overflow", &self.overflow)
            .finish()
    }
}

/// Flow ids of table records: above the collector's own counter's range.
const TABLE_FLOW_IDS: u64 = 1 << 47;

/// A table's record as an exported flow of its point.
fn adopt(mut r: FlowRecord, point: &ObservationPoint, rate: u32, base: u64) -> Output {
    let scale = u64::from(rate.max(1));
    r.flow_id = base.wrapping_add(TABLE_FLOW_IDS).wrapping_add(r.flow_id);
    r.observation_point = Some(point.clone());
    r.source = FlowSource::Sflow as i32;
    r.sampling_rate = rate.max(1);
    for d in [r.c2s.as_mut(), r.s2c.as_mut()].into_iter().flatten() {
        d.packets = d.packets.saturating_mul(scale);
        d.bytes = d.bytes.saturating_mul(scale);
        d.goodput_bytes = d.goodput_bytes.saturating_mul(scale);
    }
    Output::Flow(super::ExportedFlow {
        record: r,
        extras: super::FlowExtras::default(),
    })
}

impl FlowTables {
    /// Points with a table.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no point has a table.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Moves every table's clock to `now_ns` (ending idle flows, periodic records).
    pub fn advance(&mut self, now_ns: u64, base: u64, sink: &mut dyn FnMut(Output)) {
        for t in self.tables.values_mut() {
            let (point, rate) = (&t.point, t.rate);
            t.table
                .advance(now_ns, &mut |r| sink(adopt(r, point, rate, base)));
        }
    }

    /// Ends every flow of every table (at stop).
    pub fn finish(&mut self, base: u64, sink: &mut dyn FnMut(Output)) {
        for t in self.tables.values_mut() {
            let (point, rate) = (&t.point, t.rate);
            t.table.finish(&mut |r| sink(adopt(r, point, rate, base)));
        }
    }
}

/// Reads the 32-bit word at `o` or fails with a truncation naming `what`.
fn word(d: &[u8], o: usize, at: At, what: &'static str) -> Result<u32> {
    u32_at(d, o).ok_or_else(|| at.truncated(0, o, what))
}

/// Decodes one sFlow v5 datagram.
pub(crate) fn decode(cx: &mut Cx<'_>, d: &[u8], sink: &mut dyn FnMut(Output)) -> Result<()> {
    let at = cx.at;
    let addr_type = word(d, 4, at, "sflow header")?;
    let (agent, mut p) = match addr_type {
        1 => {
            let a = word(d, 8, at, "agent address")?;
            (Some(IpAddr::V4(Ipv4Addr::from(a))), 12)
        }
        2 => {
            let b = d
                .get(8..24)
                .ok_or_else(|| at.truncated(0, 8, "agent address"))?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            (Some(IpAddr::V6(Ipv6Addr::from(a))), 24)
        }
        0 => (None, 8),
        _ => return Err(at.malformed(0, 4, "agent address type")),
    };
    let sub_agent = word(d, p, at, "sflow header")?;
    let at = At {
        domain: sub_agent,
        ..at
    };
    let sequence = word(d, p + 4, at, "sflow header")?;
    let _uptime = word(d, p + 8, at, "sflow header")?;
    let samples = word(d, p + 12, at, "sflow header")?;
    p += 16;
    cx.sequence(sub_agent, sequence, 1, false);

    let exporter: std::sync::Arc<str> = match agent {
        Some(a) => a.to_string().into(),
        None => std::sync::Arc::clone(&cx.exp.text),
    };
    if cx.config.points.is_some() {
        // The point is named by the agent address: loss is reported under that name.
        let state = cx.domain(sub_agent);
        if state.point_exporter.as_deref() != Some(&*exporter) {
            state.point_exporter = Some(std::sync::Arc::clone(&exporter));
        }
    }
    let config = cx.config;
    let origin = Origin {
        source: FlowSource::Sflow,
        sensor: &config.sensor,
        exporter: &exporter,
        domain: sub_agent,
    };
    let time = TimeBase {
        export_ns: cx.now_ns,
        uptime_ms: None,
        sys_init_ms: None,
    };

    for _ in 0..samples {
        if p >= d.len() {
            return Err(at.truncated(0, p, "sample"));
        }
        let format = word(d, p, at, "sample header")?;
        let len = word(d, p + 4, at, "sample header")? as usize;
        let body_at = p + 8;
        let body = d
            .get(body_at..body_at.saturating_add(len))
            .ok_or_else(|| at.truncated(0, p, "sample"))?;
        match format {
            1 | 3 => flow_sample(cx, at, body, body_at, format == 3, &origin, &time, sink)?,
            2 | 4 => counter_sample(cx, at, body, body_at, format == 4, agent, sub_agent, sink)?,
            _ => {}
        }
        p = body_at + len;
    }
    Ok(())
}

/// Flow sample (format 1) or expanded flow sample (format 3).
#[allow(clippy::too_many_arguments, clippy::many_single_char_names)]
fn flow_sample(
    cx: &mut Cx<'_>,
    at: At,
    s: &[u8],
    base: usize,
    expanded: bool,
    origin: &Origin<'_>,
    time: &TimeBase,
    sink: &mut dyn FnMut(Output),
) -> Result<()> {
    let w = |o: usize| {
        word(s, o, at, "flow sample").map_err(|e| super::CollectError {
            offset: base + o,
            ..e
        })
    };
    // Offsets of rate, input, output, record count.
    let (rate_at, in_at, out_at, n_at) = if expanded {
        (12, 28, 36, 40)
    } else {
        (8, 20, 24, 28)
    };
    let rate = clamp_rate(u64::from(w(rate_at)?));
    let input = w(in_at)?;
    let output = w(out_at)?;
    let n = w(n_at)?;
    let mut fields = FlowFields {
        ingress_if: Some(if expanded { input } else { input & 0x3fff_ffff }),
        egress_if: Some(if expanded {
            output
        } else {
            output & 0x3fff_ffff
        }),
        packets: Some(1),
        ..FlowFields::default()
    };
    let mut p = n_at + 4;
    let mut have_header = false;
    for _ in 0..n {
        let format = w(p)?;
        let len = w(p + 4)? as usize;
        let r = s
            .get(p + 8..(p + 8).saturating_add(len))
            .ok_or_else(|| at.truncated(0, base + p, "flow record"))?;
        match format {
            1 if !have_header
                && cx.config.sflow_flow_table
                && to_table(cx, r, origin, rate, sink) =>
            {
                return Ok(());
            }
            1 if !have_header => have_header = raw_header(r, &mut fields),
            3 if !have_header && r.len() >= 32 => {
                have_header = true;
                let rw = |o| u32_at(r, o).unwrap_or(0);
                fields.octets = Some(u64::from(rw(0)));
                fields.proto = rw(4) as u8;
                fields.src = Some(IpAddr::V4(Ipv4Addr::from(rw(8))));
                fields.dst = Some(IpAddr::V4(Ipv4Addr::from(rw(12))));
                fields.src_port = rw(16) as u16;
                fields.dst_port = rw(20) as u16;
                fields.tcp_flags = rw(24) as u8;
            }
            4 if !have_header && r.len() >= 56 => {
                have_header = true;
                let rw = |o| u32_at(r, o).unwrap_or(0);
                let v6 = |o: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&r[o..o + 16]);
                    IpAddr::V6(Ipv6Addr::from(a))
                };
                fields.octets = Some(u64::from(rw(0)));
                fields.proto = rw(4) as u8;
                fields.src = Some(v6(8));
                fields.dst = Some(v6(24));
                fields.src_port = rw(40) as u16;
                fields.dst_port = rw(44) as u16;
                fields.tcp_flags = rw(48) as u8;
            }
            1001 if r.len() >= 16 => {
                let vlan = u32_at(r, 0).unwrap_or(0) as u16 & 0x0fff;
                if fields.vlan.is_none() && vlan != 0 {
                    fields.vlan = Some(vlan);
                }
            }
            _ => {}
        }
        p += 8 + pad4(len).unwrap_or(len);
    }
    cx.emit(&fields, origin, time, rate, sink);
    Ok(())
}

/// Gives a sampled packet header (record format 1) to its point's flow table; false when it
/// does not decode or the point has no table (too many points): the caller then makes a
/// record of it alone.
fn to_table(
    cx: &mut Cx<'_>,
    r: &[u8],
    origin: &Origin<'_>,
    rate: u32,
    sink: &mut dyn FnMut(Output),
) -> bool {
    let (Some(proto), Some(frame_len), Some(hlen)) = (u32_at(r, 0), u32_at(r, 4), u32_at(r, 12))
    else {
        return false;
    };
    let link = match proto {
        1 => LinkType::Ethernet,
        11 => LinkType::Ipv4,
        12 => LinkType::Ipv6,
        _ => return false,
    };
    let Some(header) = r.get(16..16usize.saturating_add(hlen as usize)) else {
        return false;
    };
    let Ok(pkt) = decode_packet(link, header, frame_len, cx.now_ns) else {
        return false;
    };
    let base = cx.config.flow_id_base;
    let tables = &mut *cx.sflow;
    let key = (Arc::<str>::from(origin.exporter), origin.domain);
    if !tables.tables.contains_key(&key) {
        if tables.tables.len() >= MAX_FLOW_TABLES {
            tables.overflow += 1;
            return false;
        }
        let point = ObservationPoint {
            sensor: origin.sensor.to_owned(),
            interface: String::new(),
            exporter: origin.exporter.to_owned(),
            domain_id: origin.domain,
        };
        let config = FlowConfig {
            max_flows: MAX_FLOWS_PER_TABLE,
            ..FlowConfig::default()
        };
        let table = FlowTable::new(config, origin.sensor);
        tables
            .tables
            .insert(key.clone(), PointFlows { table, point, rate });
    }
    let Some(t) = tables.tables.get_mut(&key) else {
        return false;
    };
    tables.packets += 1;
    t.rate = rate;
    let (point, rate) = (&t.point, t.rate);
    t.table
        .process(&pkt, &mut |rec| sink(adopt(rec, point, rate, base)));
    cx.exp.stats.records += 1;
    true
}

/// Sampled packet header record (format 1): decodes the header to the flow's 5-tuple.
fn raw_header(r: &[u8], f: &mut FlowFields) -> bool {
    let (Some(proto), Some(frame_len), Some(hlen)) = (u32_at(r, 0), u32_at(r, 4), u32_at(r, 12))
    else {
        return false;
    };
    let link = match proto {
        1 => LinkType::Ethernet,
        11 => LinkType::Ipv4,
        12 => LinkType::Ipv6,
        _ => return false,
    };
    let Some(header) = r.get(16..16usize.saturating_add(hlen as usize)) else {
        return false;
    };
    let Ok(pkt) = decode_packet(link, header, frame_len, 0) else {
        return false;
    };
    f.src = Some(pkt.src);
    f.dst = Some(pkt.dst);
    f.proto = pkt.proto;
    f.src_port = pkt.src_port;
    f.dst_port = pkt.dst_port;
    f.tcp_flags = pkt.tcp.map_or(0, |t| t.flags);
    f.octets = Some(u64::from(frame_len));
    if pkt.vlan != 0 {
        f.vlan = Some(pkt.vlan);
    }
    true
}

/// Counter sample (format 2) or expanded counter sample (format 4).
#[allow(clippy::too_many_arguments, clippy::many_single_char_names)]
fn counter_sample(
    cx: &mut Cx<'_>,
    at: At,
    s: &[u8],
    base: usize,
    expanded: bool,
    agent: Option<IpAddr>,
    sub_agent: u32,
    sink: &mut dyn FnMut(Output),
) -> Result<()> {
    let w = |o: usize| {
        word(s, o, at, "counter sample").map_err(|e| super::CollectError {
            offset: base + o,
            ..e
        })
    };
    let sequence = w(0)?;
    let (source_id, n_at) = if expanded {
        ((w(4)? << 24) | (w(8)? & 0x00ff_ffff), 12)
    } else {
        (w(4)?, 8)
    };
    let n = w(n_at)?;
    let mut p = n_at + 4;
    for _ in 0..n {
        let format = w(p)?;
        let len = w(p + 4)? as usize;
        let r = s
            .get(p + 8..(p + 8).saturating_add(len))
            .ok_or_else(|| at.truncated(0, base + p, "counter record"))?;
        if format == 1 && r.len() >= 88 {
            let r32 = |o| u32_at(r, o).unwrap_or(0);
            let r64 = |o| u64_at(r, o).unwrap_or(0);
            let sum = |a, b, c| u64::from(r32(a)) + u64::from(r32(b)) + u64::from(r32(c));
            sink(Output::Counters(InterfaceCounters {
                agent,
                sub_agent,
                sequence,
                source_id,
                if_index: r32(0),
                if_type: r32(4),
                if_speed: r64(8),
                if_direction: r32(16),
                if_status: r32(20),
                in_octets: r64(24),
                in_packets: sum(32, 36, 40),
                in_discards: r32(44),
                in_errors: r32(48),
                out_octets: r64(56),
                out_packets: sum(64, 68, 72),
                out_discards: r32(76),
                out_errors: r32(80),
                received_ns: cx.now_ns,
            }));
            cx.exp.stats.counter_samples += 1;
        }
        p += 8 + pad4(len).unwrap_or(len);
    }
    Ok(())
}
