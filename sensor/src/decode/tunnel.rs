//! Tunnels followed to the innermost IP packet, as `ndpiReader -t` does: IP-in-IP (protocols 4
//! and 41: 4in4, 6in4, 4in6, 6in6), GRE (protocol 47), VXLAN (UDP 4789), GTP-U (UDP 2152) and
//! the CAPWAP data channel (UDP 5247).
//!
//! Owns the tunnel headers only. A tunnel whose payload is not the expected inner packet is
//! reported as the outer packet, never dropped; only [`DecodeError::TooDeep`] goes through.
//! Teredo (UDP 3544) is deliberately not decapsulated: nDPI reports it as the outer UDP flow.

use super::ip::{self, Net};
use super::link::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::{Ctx, DecodeError, PacketView, Tunnel, be16};

type Decoded<'a> = Result<PacketView<'a>, DecodeError>;

/// UDP port of VXLAN (RFC 7348 §5).
const VXLAN_PORT: u16 = 4789;
/// UDP port of GTP-U (3GPP TS 29.281 §4.4.2.3).
const GTP_U_PORT: u16 = 2152;
/// UDP port of the CAPWAP data channel (RFC 5415 §3.1).
const CAPWAP_DATA_PORT: u16 = 5247;
/// GRE protocol type of transparent Ethernet bridging (RFC 1701 §3.1, used by NVGRE/Linux gretap).
const GRE_PROTO_TEB: u16 = 0x6558;
/// GRE protocol type of PPP, as carried by PPTP (RFC 2637 §4.1).
const GRE_PROTO_PPP: u16 = 0x880B;
/// GTP-U flag: an extension header follows (3GPP TS 29.281 §5.1).
const GTP_FLAG_E: u8 = 0x04;
/// GTP-U flag: the sequence number field is meaningful.
const GTP_FLAG_S: u8 = 0x02;
/// GTP-U flag: the N-PDU number field is meaningful.
const GTP_FLAG_PN: u8 = 0x01;
/// Most GTP-U extension headers walked.
const MAX_GTP_EXTENSIONS: usize = 8;

/// The inner packet if it decodes, else the outer one; running out of depth is an error.
fn inner_or_outer<'a>(inner: Decoded<'a>, outer: PacketView<'a>) -> Decoded<'a> {
    match inner {
        Ok(view) => Ok(view),
        Err(DecodeError::TooDeep) => Err(DecodeError::TooDeep),
        Err(_) => Ok(outer),
    }
}

/// The context of a tunnel's inner packet: the innermost tunnel names the flow's tunnel.
fn inside(ctx: Ctx, tunnel: Tunnel) -> Ctx {
    Ctx { tunnel, ..ctx }
}

/// IP-in-IP (RFC 2003, protocol 4) and IPv6-in-IP (RFC 4213 §3.5, protocol 41). nDPI prints no
/// tunnel prefix for these, so an outer GRE/VXLAN/GTP tunnel keeps its name.
pub(super) fn ip_in_ip<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let tunnel = match ctx.tunnel {
        Tunnel::None => Tunnel::IpInIp,
        outer => outer,
    };
    let inner_ctx = inside(ctx, tunnel);
    let inner = if net.proto == 4 {
        ip::ipv4(net.payload, inner_ctx)
    } else {
        ip::ipv6(net.payload, inner_ctx)
    };
    inner_or_outer(inner, net.view(ctx))
}

/// The payload of a GRE header and its protocol type, or `None` for a GRE header we do not
/// follow.
///
/// Version 0 (RFC 2784 §2.1, RFC 2890 §2): flags C (checksum + reserved, 4 bytes), K (key, 4),
/// S (sequence number, 4); the R bit of RFC 1701 (source routing) is obsolete and not followed.
/// Version 1, PPTP's enhanced GRE (RFC 2637 §4.1): key (payload length + call id, 4) always,
/// S (sequence, 4), A (acknowledgment, 4; high bit of the second byte).
fn gre_header(data: &[u8]) -> Option<(u16, &[u8])> {
    let flags = *data.first()?;
    let version_byte = *data.get(1)?;
    let protocol = be16(data, 2)?;
    let has = |bit: u8| usize::from(flags & bit != 0) * 4;
    let len = match version_byte & 0x07 {
        0 if flags & 0x40 == 0 => 4 + has(0x80) + has(0x20) + has(0x10),
        1 if flags & 0x20 != 0 => 8 + has(0x10) + usize::from(version_byte & 0x80 != 0) * 4,
        _ => return None,
    };
    Some((protocol, data.get(len..)?))
}

/// GRE (protocol 47) carrying IPv4, IPv6, PPP (PPTP), Ethernet (0x6558) or any other EtherType
/// (VLAN, MPLS).
pub(super) fn gre<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let outer = net.view(ctx);
    let Some((protocol, payload)) = gre_header(net.payload) else {
        return Ok(outer);
    };
    let inner_ctx = inside(ctx, Tunnel::Gre).enter()?;
    let inner = match protocol {
        ETHERTYPE_IPV4 => ip::ipv4(payload, inner_ctx),
        ETHERTYPE_IPV6 => ip::ipv6(payload, inner_ctx),
        GRE_PROTO_PPP => link::ppp(payload, inner_ctx, GRE_PROTO_PPP),
        GRE_PROTO_TEB => link::ethernet(payload, inner_ctx),
        other => link::ethertype(other, payload, inner_ctx),
    };
    inner_or_outer(inner, outer)
}

/// Tunnels carried by UDP: GTP-U on port 2152 and CAPWAP data on 5247 (either side), VXLAN on
/// destination port 4789.
/// `view` is the UDP packet, reported as is when it carries no tunnel we follow.
pub(super) fn over_udp(view: PacketView<'_>, ctx: Ctx) -> Decoded<'_> {
    if view.src_port == GTP_U_PORT || view.dst_port == GTP_U_PORT {
        let Some(inner) = gtp_u_payload(view.payload) else {
            return Ok(view);
        };
        let inner_ctx = inside(ctx, Tunnel::Gtp).enter()?;
        inner_or_outer(ip::raw(inner, inner_ctx), view)
    } else if view.src_port == CAPWAP_DATA_PORT || view.dst_port == CAPWAP_DATA_PORT {
        let Some((ether_type, inner)) = capwap_80211_payload(view.payload) else {
            return Ok(view);
        };
        let inner_ctx = inside(ctx, Tunnel::Capwap).enter()?;
        inner_or_outer(link::ethertype(ether_type, inner, inner_ctx), view)
    } else if view.dst_port == VXLAN_PORT {
        let Some(inner) = vxlan_payload(view.payload) else {
            return Ok(view);
        };
        let inner_ctx = inside(ctx, Tunnel::Vxlan).enter()?;
        inner_or_outer(link::ethernet(inner, inner_ctx), view)
    } else {
        Ok(view)
    }
}

/// The inner Ethernet frame of a VXLAN packet (RFC 7348 §5): flags (1, the I bit 0x08 says the
/// VNI is valid), reserved (3), VNI (3), reserved (1).
fn vxlan_payload(data: &[u8]) -> Option<&[u8]> {
    let flags = *data.first()?;
    if flags & 0x08 == 0 {
        return None;
    }
    data.get(8..)
}

/// The inner IP packet of a GTP-U G-PDU (3GPP TS 29.281 §5.1): flags (version 3 bits = 1, PT,
/// spare, E, S, PN), message type (0xFF = G-PDU), length (2), TEID (4); when any of E, S, PN is
/// set, sequence number (2), N-PDU number (1) and next extension header type (1) follow; each
/// extension header (§5.2) is a length in 4-byte units, content, and the next type (0 = last).
/// Like ndpiReader, the PT bit is not checked.
fn gtp_u_payload(data: &[u8]) -> Option<&[u8]> {
    let flags = *data.first()?;
    let message_type = *data.get(1)?;
    if flags >> 5 != 1 || message_type != 0xFF {
        return None;
    }
    let mut offset = 8;
    if flags & (GTP_FLAG_E | GTP_FLAG_S | GTP_FLAG_PN) == 0 {
        return data.get(offset..);
    }
    offset += 4;
    if flags & GTP_FLAG_E != 0 {
        let mut next_type = *data.get(11)?;
        let mut walked = 0;
        while next_type != 0 {
            walked += 1;
            if walked > MAX_GTP_EXTENSIONS {
                return None;
            }
            let len = usize::from(*data.get(offset)?) * 4;
            if len == 0 {
                return None;
            }
            offset += len;
            next_type = *data.get(offset - 1)?;
        }
    }
    data.get(offset..)
}

/// The EtherType and payload of an IEEE 802.11 data frame in a CAPWAP data packet.
///
/// CAPWAP header (RFC 5415 §4.3): preamble (version 4 bits, type 4 bits; type 0 = clear, 1 =
/// DTLS), then HLEN (5 bits, header length in 4-byte words) and flags. The 802.11 frame that
/// follows (IEEE 802.11 §9.2) is recognised as ndpiReader does: second byte 0x08 (a data frame
/// whose frame control some access points write byte-swapped), a 24-byte MAC header, then an
/// 8-byte LLC/SNAP header (RFC 1042) whose last two bytes are the EtherType.
fn capwap_80211_payload(data: &[u8]) -> Option<(u16, &[u8])> {
    let preamble = *data.first()?;
    if preamble & 0x0F != 0 {
        return None;
    }
    let header_len = usize::from(*data.get(1)? >> 3) * 4;
    let frame = data.get(header_len..)?;
    if frame.len() <= 32 || frame.get(1) != Some(&0x08) {
        return None;
    }
    let ether_type = be16(frame, 24 + 6)?;
    Some((ether_type, frame.get(32..)?))
}
