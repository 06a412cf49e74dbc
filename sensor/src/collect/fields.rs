//! From exporter fields to a [`FlowRecord`]: the information elements we read (NetFlow v9
//! field types 1-127 are the same numbers as IPFIX elements, RFC 7012 / IANA "IPFIX
//! Information Elements"), time conversion, sampling, and the client/server decision.
//!
//! Unknown elements and enterprise-specific ones (other than RFC 5103 reverse elements)
//! are skipped by the template walk: they never stop a record.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netwarden_api::flow::{
    Confidence, DirectionStats, EndReason, FlowRecord, FlowSource, FlowUpdate, L7Info,
    ObservationPoint, ip_to_bytes, proto,
};

use super::wire::uint;
use super::{ExportedFlow, FlowExtras};

/// RFC 5103 reverse information element PEN.
pub const REVERSE_PEN: u32 = 29305;

/// Seconds between the NTP era (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Ports that identify the server side besides every port below 1024 (the flow table's list).
const KNOWN_SERVICE_PORTS: &[u16] = &[
    1194, 1433, 1521, 1883, 2049, 2152, 3306, 3389, 3478, 4500, 4789, 5060, 5061, 5222, 5353, 5355,
    5432, 5671, 5672, 5900, 6379, 6443, 8080, 8443, 8883, 9000, 9092, 9200, 9418, 10250, 11211,
    27017, 51820,
];

/// Whether `port` is one servers usually listen on.
pub fn is_server_port(port: u16) -> bool {
    port != 0 && (port < 1024 || KNOWN_SERVICE_PORTS.contains(&port))
}

/// Whether a unidirectional exporter record from `src_port` to `dst_port` goes from server to
/// client: the side with the (lower) well-known port is the server; otherwise `src` is the
/// client. Only for protocols with ports.
pub fn source_is_server(l4: u8, src_port: u16, dst_port: u16) -> bool {
    if !matches!(l4, proto::TCP | proto::UDP | proto::SCTP | 33 | 136) {
        return false;
    }
    match (is_server_port(src_port), is_server_port(dst_port)) {
        (true, false) => true,
        (true, true) => src_port < dst_port,
        _ => false,
    }
}

/// A time field, before it is made absolute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Time {
    /// Not in the record.
    #[default]
    None,
    /// Absolute, ns since the Unix epoch.
    AbsNs(u64),
    /// Milliseconds of exporter uptime (NetFlow v5/v9 First/Last, IPFIX 21/22).
    UptimeMs(u32),
    /// Microseconds before the export time (IPFIX 158/159).
    DeltaUs(u64),
}

/// What a datagram header says about time, to make record times absolute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeBase {
    /// Export time of the datagram (ns since the Unix epoch).
    pub export_ns: u64,
    /// Exporter uptime at export (NetFlow v5/v9 header), ms.
    pub uptime_ms: Option<u32>,
    /// Exporter boot time (IPFIX systemInitTimeMilliseconds from options data), ms since epoch.
    pub sys_init_ms: Option<u64>,
}

impl TimeBase {
    /// Absolute ns of `t`, or `None` when the datagram gives no reference for it.
    pub fn resolve(&self, t: Time, record_init_ms: Option<u64>) -> Option<u64> {
        match t {
            Time::None => None,
            Time::AbsNs(ns) => Some(ns),
            Time::UptimeMs(at) => {
                if let Some(up) = self.uptime_ms {
                    // Signed 32-bit distance: survives the 49.7-day uptime wrap and a record
                    // stamped slightly after the header.
                    let before_ms = i64::from(up.wrapping_sub(at) as i32);
                    Some(offset_ns(self.export_ns, -before_ms * 1_000_000))
                } else {
                    let init = record_init_ms.or(self.sys_init_ms)?;
                    Some(init.saturating_add(u64::from(at)).saturating_mul(1_000_000))
                }
            }
            Time::DeltaUs(us) => Some(self.export_ns.saturating_sub(us.saturating_mul(1000))),
        }
    }
}

fn offset_ns(base: u64, delta: i64) -> u64 {
    if delta >= 0 {
        base.saturating_add(delta.unsigned_abs())
    } else {
        base.saturating_sub(delta.unsigned_abs())
    }
}

/// NTP 64-bit timestamp (RFC 7011 section 6.1.9-10) to Unix ns; `micro` ignores the 11
/// low fraction bits as dateTimeMicroseconds requires.
fn ntp_to_ns(v: u64, micro: bool) -> u64 {
    let secs = (v >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let mut frac = v & 0xffff_ffff;
    if micro {
        frac &= !0x7ff;
    }
    secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)
}

fn ipv4(v: &[u8]) -> Option<IpAddr> {
    <[u8; 4]>::try_from(v)
        .ok()
        .map(|b| IpAddr::V4(Ipv4Addr::from(b)))
}

fn ipv6(v: &[u8]) -> Option<IpAddr> {
    <[u8; 16]>::try_from(v)
        .ok()
        .map(|b| IpAddr::V6(Ipv6Addr::from(b)))
}

/// The fields of one data (or options) record we care about.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowFields {
    /// Source address (8 / 27).
    pub src: Option<IpAddr>,
    /// Destination address (12 / 28).
    pub dst: Option<IpAddr>,
    /// Source port (7).
    pub src_port: u16,
    /// Destination port (11).
    pub dst_port: u16,
    /// Protocol (4).
    pub proto: u8,
    /// tcpControlBits (6), low byte.
    pub tcp_flags: u8,
    /// Reverse tcpControlBits.
    pub rev_tcp_flags: u8,
    /// octetDeltaCount (1).
    pub octets: Option<u64>,
    /// packetDeltaCount (2).
    pub packets: Option<u64>,
    /// octetTotalCount (85).
    pub octets_total: Option<u64>,
    /// packetTotalCount (86).
    pub packets_total: Option<u64>,
    /// NetFlow v9 OUT_BYTES / IPFIX postOctetDeltaCount (23), used when 1 is absent.
    pub out_octets: Option<u64>,
    /// NetFlow v9 OUT_PKTS / IPFIX postPacketDeltaCount (24), used when 2 is absent.
    pub out_packets: Option<u64>,
    /// Reverse octets (RFC 5103 reverse 1/85, or NSEL responderOctets 232).
    pub rev_octets: Option<u64>,
    /// Reverse packets (RFC 5103 reverse 2/86, or NSEL responderPackets 299).
    pub rev_packets: Option<u64>,
    /// vlanId (58) or dot1qVlanId (243).
    pub vlan: Option<u16>,
    /// postVlanId (59) or postDot1qVlanId (254), used when no ingress VLAN.
    pub post_vlan: Option<u16>,
    /// ingressInterface (10).
    pub ingress_if: Option<u32>,
    /// egressInterface (14).
    pub egress_if: Option<u32>,
    /// mplsTopLabelStackSection (70): the label (20 bits).
    pub mpls_top_label: Option<u32>,
    /// applicationId (95): classification engine id and selector id.
    pub application_id: Option<(u8, u64)>,
    /// flowDirection (61).
    pub direction: Option<u8>,
    /// Flow start.
    pub start: Time,
    /// Flow end.
    pub end: Time,
    /// systemInitTimeMilliseconds (160).
    pub sys_init_ms: Option<u64>,
    /// samplingInterval (34) or samplerRandomInterval (50).
    pub sampling_interval: Option<u64>,
    /// samplerId (48) or selectorId (302).
    pub sampler_id: Option<u64>,
    /// samplingPacketInterval (305).
    pub packet_interval: Option<u64>,
    /// samplingPacketSpace (306).
    pub packet_space: Option<u64>,
    /// samplingSize (309): n of random n-out-of-N sampling.
    pub sampling_size: Option<u64>,
    /// samplingPopulation (310): N of random n-out-of-N sampling.
    pub sampling_population: Option<u64>,
}

impl FlowFields {
    /// Applies one field value. Lengths that do not fit an element are ignored.
    #[inline]
    pub fn apply(&mut self, id: u16, pen: u32, v: &[u8]) {
        match pen {
            0 => self.apply_iana(id, v),
            REVERSE_PEN => match id {
                1 | 85 => self.rev_octets = Some(uint(v)),
                2 | 86 => self.rev_packets = Some(uint(v)),
                6 => self.rev_tcp_flags = uint(v) as u8,
                _ => {}
            },
            _ => {}
        }
    }

    fn apply_iana(&mut self, id: u16, v: &[u8]) {
        match id {
            1 => self.octets = Some(uint(v)),
            2 => self.packets = Some(uint(v)),
            4 => self.proto = uint(v) as u8,
            6 => self.tcp_flags = uint(v) as u8,
            7 => self.src_port = uint(v) as u16,
            11 => self.dst_port = uint(v) as u16,
            8 => self.src = ipv4(v).or(self.src),
            12 => self.dst = ipv4(v).or(self.dst),
            27 => self.src = ipv6(v).or(self.src),
            28 => self.dst = ipv6(v).or(self.dst),
            10 => self.ingress_if = Some(uint(v) as u32),
            14 => self.egress_if = Some(uint(v) as u32),
            21 => self.end = Time::UptimeMs(uint(v) as u32),
            22 => self.start = Time::UptimeMs(uint(v) as u32),
            23 => self.out_octets = Some(uint(v)),
            24 => self.out_packets = Some(uint(v)),
            34 | 50 => self.sampling_interval = Some(uint(v)),
            48 | 302 => self.sampler_id = Some(uint(v)),
            58 | 243 => self.vlan = Some(uint(v) as u16 & 0x0fff),
            59 | 254 => self.post_vlan = Some(uint(v) as u16 & 0x0fff),
            61 => self.direction = Some(uint(v) as u8),
            70 if v.len() >= 3 => self.mpls_top_label = Some((uint(&v[..3]) >> 4) as u32),
            85 => self.octets_total = Some(uint(v)),
            86 => self.packets_total = Some(uint(v)),
            95 => {
                if let Some((&engine, selector)) = v.split_first() {
                    self.application_id = Some((engine, uint(selector)));
                }
            }
            150 => self.start = Time::AbsNs(uint(v).saturating_mul(1_000_000_000)),
            151 => self.end = Time::AbsNs(uint(v).saturating_mul(1_000_000_000)),
            152 => self.start = Time::AbsNs(uint(v).saturating_mul(1_000_000)),
            153 => self.end = Time::AbsNs(uint(v).saturating_mul(1_000_000)),
            154 if v.len() == 8 => self.start = Time::AbsNs(ntp_to_ns(uint(v), true)),
            155 if v.len() == 8 => self.end = Time::AbsNs(ntp_to_ns(uint(v), true)),
            156 if v.len() == 8 => self.start = Time::AbsNs(ntp_to_ns(uint(v), false)),
            157 if v.len() == 8 => self.end = Time::AbsNs(ntp_to_ns(uint(v), false)),
            158 => self.start = Time::DeltaUs(uint(v)),
            159 => self.end = Time::DeltaUs(uint(v)),
            160 => self.sys_init_ms = Some(uint(v)),
            // Cisco ASA NSEL initiator/responder counters (bidirectional records).
            231 => self.octets = self.octets.or(Some(uint(v))),
            298 => self.packets = self.packets.or(Some(uint(v))),
            232 => self.rev_octets = Some(uint(v)),
            299 => self.rev_packets = Some(uint(v)),
            305 => self.packet_interval = Some(uint(v)),
            306 => self.packet_space = Some(uint(v)),
            309 => self.sampling_size = Some(uint(v)),
            310 => self.sampling_population = Some(uint(v)),
            _ => {}
        }
    }

    /// The sampling rate the record itself states (309/310, 305/306, or 34/50), if any.
    pub fn inline_sampling_rate(&self) -> Option<u32> {
        if let (Some(size), Some(population)) = (self.sampling_size, self.sampling_population)
            && size > 0
        {
            // RFC 5476 random n-out-of-N: n packets of every N.
            return Some(clamp_rate(population / size));
        }
        if let (Some(interval), Some(space)) = (self.packet_interval, self.packet_space)
            && interval > 0
        {
            // RFC 5476: one packet in (interval + space) / interval is selected.
            return Some(clamp_rate((interval + space) / interval));
        }
        self.sampling_interval.map(clamp_rate)
    }
}

/// A sampling rate as a record carries it: at least 1.
pub fn clamp_rate(rate: u64) -> u32 {
    rate.clamp(1, u64::from(u32::MAX)) as u32
}

/// Who emits the record: the same for every record of a datagram.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Protocol the record came in.
    pub source: FlowSource,
    /// Sensor name for the observation point.
    pub sensor: &'a str,
    /// Exporter address as text.
    pub exporter: &'a str,
    /// Observation domain / source id / sub-agent id.
    pub domain: u32,
}

/// Builds the record of a flow: `fields` already resolved to one direction, `rate` applied to
/// the counters. `None` when the record has no address pair (not a flow).
pub fn build_flow(
    f: &FlowFields,
    origin: &Origin<'_>,
    time: &TimeBase,
    rate: u32,
    flow_id: u64,
) -> Option<ExportedFlow> {
    let ((Some(src @ IpAddr::V4(_)), Some(dst @ IpAddr::V4(_)))
    | (Some(src @ IpAddr::V6(_)), Some(dst @ IpAddr::V6(_)))) = (f.src, f.dst)
    else {
        return None;
    };
    let scale = u64::from(rate.max(1));
    let fwd = DirectionStats {
        packets: f
            .packets
            .or(f.packets_total)
            .or(f.out_packets)
            .unwrap_or(0)
            .saturating_mul(scale),
        bytes: f
            .octets
            .or(f.octets_total)
            .or(f.out_octets)
            .unwrap_or(0)
            .saturating_mul(scale),
        tcp_flags: u32::from(f.tcp_flags),
        ..DirectionStats::default()
    };
    let rev = DirectionStats {
        packets: f.rev_packets.unwrap_or(0).saturating_mul(scale),
        bytes: f.rev_octets.unwrap_or(0).saturating_mul(scale),
        tcp_flags: u32::from(f.rev_tcp_flags),
        ..DirectionStats::default()
    };
    let mut first = time.resolve(f.start, f.sys_init_ms);
    let mut last = time.resolve(f.end, f.sys_init_ms);
    if first.is_none() {
        first = last;
    }
    if last.is_none() {
        last = first;
    }
    let (first, last) = match (first, last) {
        (Some(a), Some(b)) => (a.min(b), a.max(b)),
        _ => (time.export_ns, time.export_ns),
    };
    let swapped = source_is_server(f.proto, f.src_port, f.dst_port);
    let (client, server, cport, sport, c2s, s2c) = if swapped {
        (dst, src, f.dst_port, f.src_port, rev, fwd)
    } else {
        (src, dst, f.src_port, f.dst_port, fwd, rev)
    };
    let l7 = f.application_id.map(|(engine, selector)| L7Info {
        app_protocol: format!("ipfix-app:{engine}:{selector}"),
        confidence: Confidence::Exporter as i32,
        ..L7Info::default()
    });
    let record = FlowRecord {
        flow_id,
        observation_point: Some(ObservationPoint {
            sensor: origin.sensor.to_owned(),
            interface: String::new(),
            exporter: origin.exporter.to_owned(),
            domain_id: origin.domain,
        }),
        source: origin.source as i32,
        sampling_rate: rate.max(1),
        vlan: u32::from(f.vlan.or(f.post_vlan).unwrap_or(0)),
        ip_version: if src.is_ipv4() { 4 } else { 6 },
        client_ip: ip_to_bytes(client),
        server_ip: ip_to_bytes(server),
        client_port: u32::from(cport),
        server_port: u32::from(sport),
        l4_proto: u32::from(f.proto),
        first_seen_ns: first,
        last_seen_ns: last,
        update: FlowUpdate::Final as i32,
        end_reason: EndReason::Exporter as i32,
        c2s: Some(c2s),
        s2c: Some(s2c),
        l7,
        ..FlowRecord::default()
    };
    Some(ExportedFlow {
        record,
        extras: FlowExtras {
            ingress_if: f.ingress_if,
            egress_if: f.egress_if,
            mpls_top_label: f.mpls_top_label,
            application_id: f.application_id,
            direction: f.direction,
            swapped,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_by_well_known_port() {
        assert!(!source_is_server(6, 40000, 443));
        assert!(source_is_server(6, 443, 40000));
        assert!(
            source_is_server(6, 53, 443),
            "lower well-known port is the server"
        );
        assert!(
            !source_is_server(6, 50000, 60000),
            "no well-known port: src is the client"
        );
        assert!(source_is_server(17, 5432, 40000), "listed service port");
        assert!(!source_is_server(1, 0, 771), "ICMP has no ports");
    }

    #[test]
    fn uptime_times_survive_the_wrap() {
        let base = TimeBase {
            export_ns: 1_000_000_000_000,
            uptime_ms: Some(5),
            sys_init_ms: None,
        };
        assert_eq!(
            base.resolve(Time::UptimeMs(u32::MAX - 4), None),
            Some(1_000_000_000_000 - 10_000_000)
        );
        assert_eq!(
            base.resolve(Time::UptimeMs(6), None),
            Some(1_000_000_000_000 + 1_000_000)
        );
        let ipfix = TimeBase {
            export_ns: 0,
            uptime_ms: None,
            sys_init_ms: Some(1000),
        };
        assert_eq!(
            ipfix.resolve(Time::UptimeMs(500), None),
            Some(1_500_000_000)
        );
        assert_eq!(
            ipfix.resolve(Time::UptimeMs(500), Some(2000)),
            Some(2_500_000_000)
        );
        assert_eq!(TimeBase::default().resolve(Time::UptimeMs(1), None), None);
    }

    #[test]
    fn ntp_timestamps() {
        // 2020-01-01T00:00:00.5Z in NTP: seconds 3786825600, fraction 2^31.
        let v = (3_786_825_600u64 << 32) | 0x8000_0000;
        assert_eq!(ntp_to_ns(v, false), 1_577_836_800_500_000_000);
        assert_eq!(ntp_to_ns(v | 0x7ff, true), 1_577_836_800_500_000_000);
    }

    #[test]
    fn packet_space_sampling() {
        let f = FlowFields {
            packet_interval: Some(1),
            packet_space: Some(99),
            ..Default::default()
        };
        assert_eq!(f.inline_sampling_rate(), Some(100));
        let n = FlowFields {
            sampling_size: Some(1),
            sampling_population: Some(256),
            ..Default::default()
        };
        assert_eq!(n.inline_sampling_rate(), Some(256));
        let g = FlowFields {
            sampling_interval: Some(0),
            ..Default::default()
        };
        assert_eq!(g.inline_sampling_rate(), Some(1));
    }
}
