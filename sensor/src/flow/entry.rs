//! The state of one flow in the table, and its conversion to a [`FlowRecord`].

use netwarden_api::flow::{
    DirectionStats, EndReason, FlowRecord, FlowSource, FlowUpdate, ObservationPoint, ip_to_bytes,
    proto,
};

use super::key::FlowKey;
use super::tcp::{SeqTrack, TcpCounters};
use crate::decode::{PacketView, tcp_flags};

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

/// One flow's state. Directions are stored `[lo → hi, hi → lo]` (see [`FlowKey`]).
#[derive(Debug, Clone)]
pub struct Flow {
    pub key: FlowKey,
    pub id: u64,
    /// Index in the table's interface names of where the flow was first seen.
    pub interface: u16,
    /// Whether the client is the `lo` endpoint of the key.
    pub client_is_lo: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Packet time of the last record emitted (or of the first packet).
    pub last_report_ns: u64,
    pub update_seq: u32,
    pub dirs: [Direction; 2],
    pub fin_seen: [bool; 2],
    /// When the flow ended (both FINs or a RST) and why; kept for a linger before finalising.
    pub closed: Option<(u64, EndReason)>,
    pub syn_ns: Option<u64>,
    pub synack_ns: Option<u64>,
    pub rtt_client_ns: Option<u64>,
    pub rtt_server_ns: Option<u64>,
}

impl Flow {
    /// A new flow for the first packet `pkt` (travelling `lo → hi` when `forward`).
    pub fn new(key: FlowKey, id: u64, interface: u16, pkt: &PacketView<'_>, forward: bool) -> Self {
        Self {
            key,
            id,
            interface,
            client_is_lo: sender_is_client(pkt) == forward,
            first_ns: pkt.ts_ns,
            last_ns: pkt.ts_ns,
            last_report_ns: pkt.ts_ns,
            update_seq: 0,
            dirs: [Direction::default(); 2],
            fin_seen: [false; 2],
            closed: None,
            syn_ns: None,
            synack_ns: None,
            rtt_client_ns: None,
            rtt_server_ns: None,
        }
    }

    /// Index in `dirs` of the client → server direction.
    #[inline]
    pub fn c2s_index(&self) -> usize {
        usize::from(!self.client_is_lo)
    }

    /// Whether this is a TCP flow that saw traffic both ways (longer idle timeout).
    #[inline]
    pub fn is_established_tcp(&self) -> bool {
        self.key.proto == proto::TCP && self.dirs[0].packets > 0 && self.dirs[1].packets > 0
    }

    /// Accounts one packet (not a later fragment) travelling in direction `dir`.
    #[inline]
    pub fn update(&mut self, pkt: &PacketView<'_>, dir: usize) {
        if pkt.ts_ns > self.last_ns {
            self.last_ns = pkt.ts_ns;
        }
        let from_client = dir == self.c2s_index();
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
            tcp_flags::SYN if from_client && self.syn_ns.is_none() => self.syn_ns = Some(ts),
            SA if !from_client && self.synack_ns.is_none() => {
                self.synack_ns = Some(ts);
                if let Some(syn) = self.syn_ns {
                    self.rtt_server_ns = Some(ts.saturating_sub(syn));
                }
            }
            tcp_flags::ACK if from_client && self.rtt_client_ns.is_none() => {
                if let Some(synack) = self.synack_ns {
                    self.rtt_client_ns = Some(ts.saturating_sub(synack));
                }
            }
            _ => {}
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

    /// The record of this flow as of now.
    pub fn record(
        &self,
        sensor: &str,
        interface: &str,
        update: FlowUpdate,
        reason: EndReason,
    ) -> FlowRecord {
        let (client, server) = (
            self.key.endpoint(self.client_is_lo),
            self.key.endpoint(!self.client_is_lo),
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
            vlan: u32::from(self.key.vlan),
            ip_version: self.key.ip_version(),
            client_ip: ip_to_bytes(client.0),
            server_ip: ip_to_bytes(server.0),
            client_port: u32::from(client.1),
            server_port: u32::from(server.1),
            l4_proto: u32::from(self.key.proto),
            tunnel: self.key.tunnel.as_str().to_owned(),
            first_seen_ns: self.first_ns,
            last_seen_ns: self.last_ns,
            update: update as i32,
            end_reason: reason as i32,
            c2s: Some(self.dirs[c2s].stats()),
            s2c: Some(self.dirs[1 - c2s].stats()),
            rtt_client_ns: self.rtt_client_ns.unwrap_or(0),
            rtt_server_ns: self.rtt_server_ns.unwrap_or(0),
            update_seq: self.update_seq,
            ..Default::default()
        }
    }
}
