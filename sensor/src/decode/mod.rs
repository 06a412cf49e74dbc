//! Packet decoding: from a captured frame (borrowed) to the few facts the flow table needs.
//!
//! Owns: link layers (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback/null), 802.1Q/QinQ
//! VLANs, PPPoE, IPv4 (with fragments), IPv6 (with extension headers), TCP/UDP/ICMP/ICMPv6,
//! and the tunnels nDPI follows (IP-in-IP, 6in4, 4in6, GRE, VXLAN, GTP-U): the innermost
//! IP packet is what a flow is about. Must not: allocate, keep state, or panic on any input.

use std::net::{IpAddr, Ipv4Addr};

/// Link-layer framing of a capture (pcap `DLT_*` / `LINKTYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_NULL (0) and LINKTYPE_LOOP (108): 4-byte address family header.
    Null,
    /// LINKTYPE_RAW (101), DLT_RAW (12 or 14 on some systems): starts with an IP header.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1 (`any`).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2 (`any` on newer libpcap).
    LinuxSll2,
}

impl LinkType {
    /// Maps a pcap link-type number; `None` for framings we do not decode.
    pub fn from_pcap(linktype: i32) -> Option<Self> {
        match linktype {
            1 => Some(Self::Ethernet),
            0 | 108 => Some(Self::Null),
            101 | 12 | 14 => Some(Self::RawIp),
            228 => Some(Self::Ipv4),
            229 => Some(Self::Ipv6),
            113 => Some(Self::LinuxSll),
            276 => Some(Self::LinuxSll2),
            _ => None,
        }
    }
}

/// Encapsulation removed to reach the innermost IP packet (nDPI's `tunnel` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tunnel {
    /// No tunnel.
    #[default]
    None,
    /// IPv4/IPv6 in IPv4/IPv6 (protocols 4 and 41). nDPI prints no prefix for these.
    IpInIp,
    /// GRE (protocol 47).
    Gre,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// GTP-U (UDP 2152).
    Gtp,
}

impl Tunnel {
    /// nDPI's name of the tunnel, as written in the flow record; empty for none/IP-in-IP.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None | Self::IpInIp => "",
            Self::Gre => "GRE",
            Self::Vxlan => "VXLAN",
            Self::Gtp => "GTP",
        }
    }
}

/// IPv4/IPv6 fragmentation of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fragment {
    /// Not a fragment.
    #[default]
    None,
    /// First fragment (offset 0, more fragments follow): carries the transport header.
    First {
        /// IP identification (IPv4 16-bit, IPv6 32-bit).
        id: u32,
    },
    /// Later fragment: no transport header; attribute it to its flow by (addresses, proto, id).
    Later {
        /// IP identification.
        id: u32,
        /// Whether more fragments follow.
        more: bool,
    },
}

/// TCP header facts used by the flow table's TCP analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Flag byte: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80.
    pub flags: u8,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Window scale option, on SYN segments that carry one.
    pub window_scale: Option<u8>,
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// One decoded packet: what the flow table needs, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length of the whole frame on the wire (pcap `len`), L2 included: what byte counters count.
    pub wire_len: u32,
    /// Innermost 802.1Q VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Encapsulation removed to reach the IP packet below.
    pub tunnel: Tunnel,
    /// Source address of the innermost IP header.
    pub src: IpAddr,
    /// Destination address of the innermost IP header.
    pub dst: IpAddr,
    /// Transport protocol (IANA number) of the innermost IP packet (after IPv6 extension headers).
    pub proto: u8,
    /// Source port (TCP/UDP/SCTP); 0 for other protocols and for later fragments.
    pub src_port: u16,
    /// Destination port; 0 likewise.
    pub dst_port: u16,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// TCP header facts, for TCP packets that carry the header.
    pub tcp: Option<TcpInfo>,
    /// ICMP/ICMPv6 type and code, for ICMP packets.
    pub icmp: Option<(u8, u8)>,
    /// Transport payload as captured (may be shorter than on the wire when the snaplen cut it).
    pub payload: &'a [u8],
    /// Transport payload length on the wire, from the IP length fields.
    pub payload_len: u32,
}

impl PacketView<'_> {
    /// An empty view (for tests and defaults): IPv4 0.0.0.0 both ways.
    pub const fn empty() -> Self {
        Self {
            ts_ns: 0,
            wire_len: 0,
            vlan: 0,
            tunnel: Tunnel::None,
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proto: 0,
            src_port: 0,
            dst_port: 0,
            fragment: Fragment::None,
            tcp: None,
            icmp: None,
            payload: &[],
            payload_len: 0,
        }
    }
}

/// Why a frame yielded no packet. Each variant is counted by the caller, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended inside a header (`layer` names it).
    #[error("truncated {layer} header")]
    Truncated {
        /// Which header.
        layer: &'static str,
    },
    /// A header field is impossible (bad IHL, bad version, length smaller than the header...).
    #[error("malformed {layer} header")]
    Malformed {
        /// Which header.
        layer: &'static str,
    },
    /// Not an IP packet (ARP, LLDP, STP...): not an error, but not a flow either.
    #[error("not IP (ethertype 0x{ethertype:04x})")]
    NotIp {
        /// The EtherType (or SLL protocol) found.
        ethertype: u16,
    },
    /// Too many nested encapsulations (bounded to stop hostile input).
    #[error("too many nested headers")]
    TooDeep,
}
