//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records (Cisco "NetFlow Export
//! Datagram Format", version 5).
//!
//! Times: First/Last are exporter uptime in ms, made absolute with the header's
//! `unix_secs`/`unix_nsecs` and `sys_uptime`. Sampling: the header's 14-bit interval (mode in
//! the top 2 bits) scales the counters and is recorded as `sampling_rate`. Sequence:
//! `flow_sequence` counts records, per engine type/id (the observation domain here).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use netwarden_api::flow::FlowSource;

use super::fields::{FlowFields, Origin, Time, TimeBase};
use super::wire::{u16_at, u32_at};
use super::{Cx, Output, Result};

/// Header length.
pub const HEADER_LEN: usize = 24;
/// Record length.
pub const RECORD_LEN: usize = 48;

/// Decodes one NetFlow v5 datagram.
pub(crate) fn decode(cx: &mut Cx<'_>, d: &[u8], sink: &mut dyn FnMut(Output)) -> Result<()> {
    let at = cx.at;
    if d.len() < HEADER_LEN {
        return Err(at.truncated(0, d.len(), "netflow5 header"));
    }
    let h = |o| u32_at(d, o).unwrap_or(0);
    let count = usize::from(u16_at(d, 2).unwrap_or(0));
    let uptime = h(4);
    let secs = u64::from(h(8));
    let nsecs = u64::from(h(12)).min(999_999_999);
    let sequence = h(16);
    let domain = u32::from(u16_at(d, 20).unwrap_or(0));
    let at = super::error::At { domain, ..at };
    let sampling = u16_at(d, 22).unwrap_or(0) & 0x3fff;
    let rate = u32::from(sampling.max(1));

    cx.sequence(domain, sequence, count as u32, true);
    let time = TimeBase {
        export_ns: secs * 1_000_000_000 + nsecs,
        uptime_ms: Some(uptime),
        sys_init_ms: None,
    };
    let config = cx.config;
    let exporter = Arc::clone(&cx.exp.text);
    let origin = Origin {
        source: FlowSource::Netflow5,
        sensor: &config.sensor,
        exporter: &exporter,
        domain,
    };

    let mut pos = HEADER_LEN;
    for _ in 0..count {
        let Some(r) = d.get(pos..pos + RECORD_LEN) else {
            return Err(at.truncated(0, pos, "netflow5 record"));
        };
        let r32 = |o| u32_at(r, o).unwrap_or(0);
        let r16 = |o| u16_at(r, o).unwrap_or(0);
        let fields = FlowFields {
            src: Some(IpAddr::V4(Ipv4Addr::from(r32(0)))),
            dst: Some(IpAddr::V4(Ipv4Addr::from(r32(4)))),
            ingress_if: Some(u32::from(r16(12))),
            egress_if: Some(u32::from(r16(14))),
            packets: Some(u64::from(r32(16))),
            octets: Some(u64::from(r32(20))),
            start: Time::UptimeMs(r32(24)),
            end: Time::UptimeMs(r32(28)),
            src_port: r16(32),
            dst_port: r16(34),
            tcp_flags: r[37],
            proto: r[38],
            ..FlowFields::default()
        };
        cx.emit(&fields, &origin, &time, rate, sink);
        pos += RECORD_LEN;
    }
    Ok(())
}
