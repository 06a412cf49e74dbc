//! The state of one flow in the table, and its conversion to a [`FlowRecord`].

use netwarden_api::flow::{
    DirectionStats, EndReason, FlowRecord, FlowSource, FlowUpdate, ObservationPoint, ip_to_bytes,
    proto,
};

use super::key::FlowKey;
use super::tcp::{SeqTrack, TcpCounters};
use crate::decode::{PacketView, tcp_flags};
use crate::dpi::{Dpi, FlowDpi, PacketCtx};

/// Ports that identify the server side of a conversation when the first packet is ambiguous,
/// besides every port below 1024.
const KNOWN_SERVICE_PORTS: &[u16] = &[
    1194, 1433, 1521, 1883, 2049, 2152, 3306, 3389, 3478, 4500, 4789, 5060, 5061, 5222, 5353, 5355,
    5432, 5671, 5672, 5900, 6379, 6443, 8080, 8443, 8883, 9000, 9092, 9200, 9418, 10250, 11211,
    27017, 51820,
];

/// Whether `port` is one servers usually listen on.
pub fn is_server_port(port: u16) -> bool {
    port < 1024 || KNOWN_SERVICE_PORTS.contains(&port)
}

/// Whether the sender of the first packet seen of a flow is its client (DESIGN.md section 3).
///
/// A SYN without ACK comes from the client; a SYN-ACK from the server; an ICMP echo reply
/// from the server. Otherwise the sender is the client unless it sends from a server port
/// to a port that is not one (a reply seen before its request).
pub fn sender_is_client(pkt: &PacketView<'_>) -> bool {
    if let Some(tcp) = pkt.tcp {
        match tcp.flags & (tcp_flags::SYN | tcp_flags::ACK) {
            tcp_flags::SYN => return true,
            f if f == tcp_flags::SYN | tcp_flags::ACK => return false,
            _ => {}
        }
    }
    if let Some((icmp_type, _)) = pkt.icmp {
        match (pkt.proto, icmp_type) {
            (proto::ICMP, 0) | (proto::ICMPV6, 129) => return false,
            (proto::ICMP, 8) | (proto::ICMPV6, 128) => return true,
            _ => {}
        }
    }
    !is_server_port(pkt.src_port) || is_server_port(pkt.dst_port)
}

/// Multicast, limited broadcast, or an IPv4 address ending in `.255` (a /24 broadcast).
fn is_multicast_or_broadcast(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.octets()[3] == 255,
        std::net::IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direction {
    pub packets: u64,
    pub bytes: u64,
    pub goodput: u64,
    pub flags: u8,
    pub tcp: TcpCounters,
    pub zero_window: u32,
    pub fragments: u32,
    pub seq: SeqTrack,
}

impl Direction {
    fn stats(&self) -> DirectionStats {
        DirectionStats {
            packets: self.packets,
            bytes: self.bytes,
            goodput_bytes: self.goodput,
            tcp_flags: u32::from(self.flags),
            retransmissions: self.tcp.retransmissions,
            out_of_order: self.tcp.out_of_order,
            lost: self.tcp.lost,
            zero_window: self.zero_window,
            fragments: self.fragments,
        }
    }
}

/// Handshake timestamps seen (bits of [`Flow::handshake_seen`]).
mod hs {
    pub const SYN: u8 = 1;
    pub const SYNACK: u8 = 2;
    pub const RTT_CLIENT: u8 = 4;
}

/// One flow's state. Directions are stored `[lo → hi, hi → lo]` (see [`FlowKey`]).
///
/// The key is not stored here: the table's map holds it, and the functions that need it take
/// it as an argument. This keeps a table bucket small (small-packet throughput is bound by
/// cache misses on flow lookup; see docs/PERFORMANCE.md).
#[derive(Debug)]
pub struct Flow {
    pub id: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Packet time of the last record emitted (or of the first packet).
    pub last_report_ns: u64,
    pub dirs: [Direction; 2],
    /// When the flow ended (both FINs or a RST) and why; kept for a linger before finalising.
    pub closed: Option<(u64, EndReason)>,
    /// SYN time (valid when `handshake_seen & hs::SYN`).
    pub syn_ns: u64,
    /// SYN-ACK time (valid when `handshake_seen & hs::SYNACK`).
    pub synack_ns: u64,
    /// SYN-ACK → ACK, 0 until measured.
    pub rtt_client_ns: u64,
    /// SYN → SYN-ACK, 0 until measured.
    pub rtt_server_ns: u64,
    /// DPI state: 16 bytes until a dissector claims the flow.
    pub dpi: FlowDpi,
    pub update_seq: u32,
    /// Index in the table's interface names of where the flow was first seen.
    pub interface: u16,
    /// Whether the client is the `lo` endpoint of the key.
    pub client_is_lo: bool,
    pub fin_seen: [bool; 2],
    /// Which handshake times are set (`hs` bits).
    pub handshake_seen: u8,
    /// Whether DPI is over for this flow (done, or disabled).
    pub dpi_done: bool,
    /// Ethernet address of each endpoint, by direction index (the sender of `dirs[i]`);
    /// zero until seen.
    pub macs: [[u8; 6]; 2],
}

impl Flow {
    /// A new flow for the first packet `pkt` (travelling `lo → hi` when `forward`).
    pub fn new(id: u64, interface: u16, pkt: &PacketView<'_>, forward: bool) -> Self {
        Self {
            id,
            first_ns: pkt.ts_ns,
            last_ns: pkt.ts_ns,
            last_report_ns: pkt.ts_ns,
            dirs: [Direction::default(); 2],
            closed: None,
            syn_ns: 0,
            synack_ns: 0,
            rtt_client_ns: 0,
            rtt_server_ns: 0,
            dpi: FlowDpi::default(),
            update_seq: 0,
            interface,
            client_is_lo: sender_is_client(pkt) == forward,
            fin_seen: [false; 2],
            handshake_seen: 0,
            dpi_done: false,
            macs: [[0; 6]; 2],
        }
    }

    /// Index in `dirs` of the client → server direction.
    #[inline]
    pub fn c2s_index(&self) -> usize {
        usize::from(!self.client_is_lo)
    }

    /// Whether this is a TCP flow that saw traffic both ways (longer idle timeout).
    #[inline]
    pub fn is_established_tcp(&self, key: &FlowKey) -> bool {
        key.proto == proto::TCP && self.dirs[0].packets > 0 && self.dirs[1].packets > 0
    }

    /// Accounts one packet (not a later fragment) travelling in direction `dir`.
    #[inline]
    pub fn update(&mut self, pkt: &PacketView<'_>, dir: usize) {
        if pkt.ts_ns > self.last_ns {
            self.last_ns = pkt.ts_ns;
        }
        let from_client = dir == self.c2s_index();
        self.learn_macs(pkt, dir);
        let d = &mut self.dirs[dir];
        d.packets += 1;
        d.bytes += u64::from(pkt.wire_len);
        if !matches!(pkt.fragment, crate::decode::Fragment::None) {
            d.fragments += 1;
        }
        let Some(tcp) = pkt.tcp else {
            d.goodput += u64::from(pkt.payload_len);
            return;
        };
        d.flags |= tcp.flags;
        let rst = tcp.flags & tcp_flags::RST != 0;
        if tcp.window == 0 && !rst {
            d.zero_window += 1;
        }
        d.goodput += d.seq.on_segment(&tcp, pkt.payload_len, &mut d.tcp);
        self.handshake(pkt.ts_ns, tcp.flags, from_client);
        if tcp.flags & tcp_flags::FIN != 0 {
            self.fin_seen[dir] = true;
        }
        if self.closed.is_none() {
            if rst {
                self.closed = Some((pkt.ts_ns, EndReason::Rst));
            } else if self.fin_seen[0] && self.fin_seen[1] {
                self.closed = Some((pkt.ts_ns, EndReason::Fin));
            }
        }
    }

    /// Handshake RTTs: server side = SYN → SYN-ACK, client side = SYN-ACK → ACK.
    #[inline]
    fn handshake(&mut self, ts: u64, flags: u8, from_client: bool) {
        const SA: u8 = tcp_flags::SYN | tcp_flags::ACK;
        match flags & (SA | tcp_flags::RST) {
            tcp_flags::SYN if from_client && self.handshake_seen & hs::SYN == 0 => {
                self.syn_ns = ts;
                self.handshake_seen |= hs::SYN;
            }
            SA if !from_client && self.handshake_seen & hs::SYNACK == 0 => {
                self.synack_ns = ts;
                self.handshake_seen |= hs::SYNACK;
                if self.handshake_seen & hs::SYN != 0 {
                    self.rtt_server_ns = ts.saturating_sub(self.syn_ns);
                }
            }
            tcp_flags::ACK
                if from_client
                    && self.handshake_seen & (hs::SYNACK | hs::RTT_CLIENT) == hs::SYNACK =>
            {
                self.rtt_client_ns = ts.saturating_sub(self.synack_ns);
                self.handshake_seen |= hs::RTT_CLIENT;
            }
            _ => {}
        }
    }

    /// Hands the packet's payload (direction `dir`) to `dpi` while the flow's inspection is
    /// not over; frees the reassembly state once it is. Packets cut short by the snaplen are
    /// skipped, as ndpiReader does.
    #[inline]
    pub fn inspect(&mut self, dpi: &Dpi, key: &FlowKey, pkt: &PacketView<'_>, dir: usize) {
        if self.dpi_done || pkt.payload.is_empty() || pkt.is_truncated() {
            return;
        }
        let ctx = PacketCtx {
            from_client: dir == self.c2s_index(),
            l4_proto: key.proto,
            client_port: key.endpoint(self.client_is_lo).1,
            server_port: key.endpoint(!self.client_is_lo).1,
            ts_ns: pkt.ts_ns,
            tcp_seq: pkt.tcp.map(|t| t.seq),
            fragmented: matches!(pkt.fragment, crate::decode::Fragment::First { .. }),
        };
        if dpi.inspect(&mut self.dpi, &ctx, pkt.payload) {
            dpi.shrink(&mut self.dpi);
            self.dpi_done = true;
        }
    }

    /// Risks the flow table knows of by itself (nDPI ids, as in `api::risk`):
    /// `unidirectional_traffic` on the final record of a flow seen one way only, and
    /// `dns_fragmented` for DNS carried in IP fragments.
    pub fn flow_risks(&self, record: &mut FlowRecord, is_final: bool) {
        const DNS_FRAGMENTED: u16 = 38;
        const UNIDIRECTIONAL_TRAFFIC: u16 = 46;
        // nDPI leaves out traffic to multicast and broadcast addresses, one-way by nature.
        let one_to_many = [record.client_addr(), record.server_addr()]
            .into_iter()
            .flatten()
            .any(is_multicast_or_broadcast);
        // Nor does it for protocols that only ever send one way (log shipping, announcements).
        let one_way_protocol = record
            .l7
            .as_ref()
            .is_some_and(|l7| matches!(l7.master_protocol.as_str(), "Syslog" | "MDNS"));
        if is_final
            && !one_to_many
            && !one_way_protocol
            && (self.dirs[0].packets == 0 || self.dirs[1].packets == 0)
        {
            record.set_risk(UNIDIRECTIONAL_TRAFFIC, None);
        }
        let fragmented = self.dirs.iter().any(|d| d.fragments > 0);
        if fragmented
            && record
                .l7
                .as_ref()
                .is_some_and(|l7| l7.master_protocol == "DNS")
        {
            record.set_risk(DNS_FRAGMENTED, None);
        }
    }

    /// Accounts a later fragment (no transport header) of direction `dir`.
    #[inline]
    pub fn update_fragment(&mut self, pkt: &PacketView<'_>, dir: usize) {
        if pkt.ts_ns > self.last_ns {
            self.last_ns = pkt.ts_ns;
        }
        let d = &mut self.dirs[dir];
        d.packets += 1;
        d.bytes += u64::from(pkt.wire_len);
        d.goodput += u64::from(pkt.payload_len);
        d.fragments += 1;
    }

    /// Remembers the Ethernet addresses of `pkt` (sent in direction `dir`): its source is the
    /// sender's; its destination stands for the peer until the peer sends (a multicast or
    /// broadcast destination never does).
    fn learn_macs(&mut self, pkt: &PacketView<'_>, dir: usize) {
        let [src, dst] = pkt.macs;
        if src != [0; 6] {
            self.macs[dir] = src;
        }
        if self.macs[1 - dir] == [0; 6] && dst != [0; 6] {
            self.macs[1 - dir] = dst;
        }
    }

    /// The record of this flow as of now.
    pub fn record(
        &self,
        key: &FlowKey,
        sensor: &str,
        interface: &str,
        update: FlowUpdate,
        reason: EndReason,
    ) -> FlowRecord {
        let (client, server) = (
            key.endpoint(self.client_is_lo),
            key.endpoint(!self.client_is_lo),
        );
        let c2s = self.c2s_index();
        FlowRecord {
            flow_id: self.id,
            observation_point: Some(ObservationPoint {
                sensor: sensor.to_owned(),
                interface: interface.to_owned(),
                ..Default::default()
            }),
            source: FlowSource::Pcap as i32,
            sampling_rate: 1,
            vlan: u32::from(key.vlan),
            ip_version: key.ip_version(),
            client_ip: ip_to_bytes(client.0),
            server_ip: ip_to_bytes(server.0),
            client_port: u32::from(client.1),
            server_port: u32::from(server.1),
            l4_proto: u32::from(key.proto),
            tunnel: key.tunnel.as_str().to_owned(),
            first_seen_ns: self.first_ns,
            last_seen_ns: self.last_ns,
            update: update as i32,
            end_reason: reason as i32,
            c2s: Some(self.dirs[c2s].stats()),
            s2c: Some(self.dirs[1 - c2s].stats()),
            rtt_client_ns: self.rtt_client_ns,
            rtt_server_ns: self.rtt_server_ns,
            update_seq: self.update_seq,
            client_mac: mac_bytes(self.macs[c2s]),
            server_mac: mac_bytes(self.macs[1 - c2s]),
            ..Default::default()
        }
    }
}

/// A MAC address as record bytes: empty when unknown (all zero).
fn mac_bytes(mac: [u8; 6]) -> Vec<u8> {
    if mac == [0; 6] {
        Vec::new()
    } else {
        mac.to_vec()
    }
}
