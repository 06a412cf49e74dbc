//! Packet decoding: from a captured frame (borrowed) to the few facts the flow table needs.
//!
//! Owns: link layers (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback/null), 802.1Q/QinQ
//! VLANs, PPPoE, IPv4 (with fragments), IPv6 (with extension headers), TCP/UDP/ICMP/ICMPv6,
//! and the tunnels nDPI follows (IP-in-IP, 6in4, 4in6, GRE, VXLAN, GTP-U, CAPWAP): the innermost
//! IP packet is what a flow is about. Must not: allocate, keep state, or panic on any input.

use std::net::{IpAddr, Ipv4Addr};

mod ip;
mod link;
mod transport;
mod tunnel;

#[cfg(test)]
mod tests;

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
    /// CAPWAP data channel (UDP 5247) carrying IEEE 802.11 frames, as ndpiReader `-t` follows it.
    Capwap,
}

impl Tunnel {
    /// nDPI's name of the tunnel, as written in the flow record; empty for none/IP-in-IP.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None | Self::IpInIp => "",
            Self::Gre => "GRE",
            Self::Vxlan => "VXLAN",
            Self::Gtp => "GTP",
            Self::Capwap => "CAPWAP",
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
    /// Source and destination addresses of the outermost Ethernet header; all zero when the
    /// frame has none (raw IP, cooked captures, loopback).
    pub macs: [[u8; 6]; 2],
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
            macs: [[0; 6]; 2],
        }
    }
}

impl PacketView<'_> {
    /// Whether the capture holds less of the payload than the IP length fields announce (cut by
    /// the snaplen, or a length field that lies). ndpiReader ignores such IP packets entirely
    /// (its flows of `telnet.pcap` and `tls_invalid_reads.pcap` leave them out); a caller that
    /// wants nDPI's counters skips them.
    pub const fn is_truncated(&self) -> bool {
        self.payload.len() < self.payload_len as usize
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

/// Most headers (VLAN tags, MPLS labels, PPPoE, IP headers, tunnel headers, inner Ethernet) one
/// frame may stack before we give up with [`DecodeError::TooDeep`]. A real frame rarely needs
/// more than 8 (Ethernet, two VLAN tags, IPv4, GRE, Ethernet, VLAN, IPv4); 16 leaves room for
/// MPLS label stacks while bounding the recursion that tunnels cause.
pub const MAX_LAYERS: u8 = 16;

/// Most IPv6 extension headers walked in one IPv6 header before [`DecodeError::TooDeep`].
pub const MAX_IPV6_EXTENSIONS: u8 = 8;

/// Decodes one captured frame. `frame` is the captured bytes, `wire_len` the pcap `len`.
///
/// Follows tunnels (IP-in-IP, GRE, VXLAN, GTP-U) down to the innermost IP packet, as
/// `ndpiReader -t` does; a tunnel whose payload is not the expected inner packet is reported as
/// the outer packet. Never allocates, never panics, and does bounded work on any input.
pub fn decode(
    link: LinkType,
    frame: &[u8],
    wire_len: u32,
    ts_ns: u64,
) -> Result<PacketView<'_>, DecodeError> {
    let ctx = Ctx::default();
    let mut view = match link {
        LinkType::Ethernet => link::ethernet(frame, ctx),
        LinkType::Null => link::null(frame, ctx),
        LinkType::RawIp => ip::raw(frame, ctx),
        LinkType::Ipv4 => ip::ipv4(frame, ctx),
        LinkType::Ipv6 => ip::ipv6(frame, ctx),
        LinkType::LinuxSll => link::linux_sll(frame, ctx),
        LinkType::LinuxSll2 => link::linux_sll2(frame, ctx),
    }?;
    view.ts_ns = ts_ns;
    view.wire_len = wire_len;
    if link == LinkType::Ethernet
        && let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12))
    {
        // IEEE 802.3 §3.2.3: destination first, then source.
        view.macs[0].copy_from_slice(src);
        view.macs[1].copy_from_slice(dst);
    }
    Ok(view)
}

/// State carried down the layers of one frame: how deep we are, and what the outer layers
/// already said about the packet (VLAN, tunnel). `Copy`, so a tunnel that fails to decode leaves
/// the outer packet's state untouched.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    depth: u8,
    vlan: u16,
    tunnel: Tunnel,
}

impl Ctx {
    /// Enters one more header, or fails with [`DecodeError::TooDeep`].
    fn enter(mut self) -> Result<Self, DecodeError> {
        self.depth += 1;
        if self.depth > MAX_LAYERS {
            Err(DecodeError::TooDeep)
        } else {
            Ok(self)
        }
    }
}

/// Declares the layer names used in [`DecodeError`] and their metric labels, in one place.
macro_rules! layers {
    ($($konst:ident = $name:literal),* $(,)?) => {
        /// Names of the headers a [`DecodeError`] can point at.
        mod layer {
            $(pub(super) const $konst: &str = $name;)*
        }

        fn truncated_key(layer: &str) -> &'static str {
            match layer {
                $($name => concat!("truncated_", $name),)*
                _ => "truncated_other",
            }
        }

        fn malformed_key(layer: &str) -> &'static str {
            match layer {
                $($name => concat!("malformed_", $name),)*
                _ => "malformed_other",
            }
        }
    };
}

layers! {
    ETHERNET = "ethernet",
    VLAN = "vlan",
    PPPOE = "pppoe",
    PPP = "ppp",
    MPLS = "mpls",
    NULL = "null",
    SLL = "sll",
    SLL2 = "sll2",
    IP = "ip",
    IPV4 = "ipv4",
    IPV6 = "ipv6",
    IPV6_EXT = "ipv6_ext",
    TCP = "tcp",
    UDP = "udp",
    SCTP = "sctp",
    ICMP = "icmp",
}

/// A short, stable metric label for a decode error ("truncated_ipv4", "not_ip", "too_deep"...),
/// so callers can count errors per kind without formatting strings on the hot path.
pub fn decode_stats_key(err: &DecodeError) -> &'static str {
    match err {
        DecodeError::Truncated { layer } => truncated_key(layer),
        DecodeError::Malformed { layer } => malformed_key(layer),
        DecodeError::NotIp { .. } => "not_ip",
        DecodeError::TooDeep => "too_deep",
    }
}

/// Reads a big-endian `u16` at `off`, `None` past the end.
fn be16(data: &[u8], off: usize) -> Option<u16> {
    let b: [u8; 2] = data.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

/// Reads a big-endian `u32` at `off`, `None` past the end.
fn be32(data: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The bytes from `off` on; empty past the end.
fn tail(data: &[u8], off: usize) -> &[u8] {
    data.get(off..).unwrap_or_default()
}
