//! Transport headers: TCP (RFC 9293 §3.1), UDP (RFC 768), SCTP common header (RFC 9260 §3.1),
//! ICMP (RFC 792) and ICMPv6 (RFC 4443 §2.1); and the hand-over to tunnels carried by IP
//! (IP-in-IP, GRE) or UDP (VXLAN, GTP-U).
//!
//! Owns ports, TCP facts and the transport payload. A header cut by the snaplen still yields the
//! packet when its ports were captured, as ndpiReader counts such packets in their flow.

use etherparse::{TcpHeaderSlice, TcpOptionElement, UdpHeaderSlice};

use super::ip::Net;
use super::{Ctx, DecodeError, Fragment, PacketView, TcpInfo, be16, be32, layer, tail, tunnel};

type Decoded<'a> = Result<PacketView<'a>, DecodeError>;

/// IANA protocol numbers this module dispatches on.
mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Decodes what the IP packet `net` carries.
pub(super) fn decode<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    if matches!(net.fragment, Fragment::Later { .. }) {
        // Fragment data: no transport header to read.
        return Ok(net.view(ctx));
    }
    match net.proto {
        proto::TCP => tcp(net, ctx),
        proto::UDP => udp(net, ctx),
        proto::SCTP => sctp(net, ctx),
        proto::ICMP | proto::ICMPV6 => icmp(net, ctx),
        proto::IPIP | proto::IPV6 => tunnel::ip_in_ip(net, ctx),
        proto::GRE => tunnel::gre(net, ctx),
        _ => Ok(net.view(ctx)),
    }
}

/// Source and destination ports: the first 4 bytes of TCP, UDP and SCTP headers.
fn ports(data: &[u8]) -> Option<(u16, u16)> {
    Some((be16(data, 0)?, be16(data, 2)?))
}

/// A packet whose transport header is incomplete or unusable.
///
/// When the IP packet itself is shorter than `min_len`, the fixed part of the header (a tiny first fragment, garbage), the
/// bytes are no real header: like ndpiReader (which reads ports only from a complete header), the
/// packet is kept with ports 0 and the IP payload. When the header was cut by the capture
/// (snaplen) or is malformed, the ports are kept if captured, with what follows the header; else
/// the header is
/// [`DecodeError::Truncated`]. `header_len` is the whole header's length, when known.
fn ports_only<'a>(
    net: &Net<'a>,
    ctx: Ctx,
    layer: &'static str,
    min_len: usize,
    header_len: usize,
) -> Decoded<'a> {
    if (net.payload_len as usize) < min_len {
        return Ok(net.view(ctx));
    }
    let (src_port, dst_port) = ports(net.payload).ok_or(DecodeError::Truncated { layer })?;
    Ok(PacketView {
        src_port,
        dst_port,
        payload: tail(net.payload, header_len),
        payload_len: net.payload_len.saturating_sub(header_len as u32),
        ..net.view(ctx)
    })
}

/// TCP (RFC 9293 §3.1).
fn tcp<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let data = net.payload;
    let Ok(header) = TcpHeaderSlice::from_slice(data) else {
        return tcp_partial(net, ctx);
    };
    let header_len = header.slice().len();
    let window_scale = if header.syn() {
        window_scale(&header)
    } else {
        None
    };
    Ok(PacketView {
        src_port: header.source_port(),
        dst_port: header.destination_port(),
        tcp: Some(TcpInfo {
            seq: header.sequence_number(),
            ack: header.acknowledgment_number(),
            flags: header.slice().get(13).copied().unwrap_or_default(),
            window: header.window_size(),
            window_scale,
        }),
        payload: tail(data, header_len),
        payload_len: net.payload_len.saturating_sub(header_len as u32),
        ..net.view(ctx)
    })
}

/// The window scale option (RFC 7323 §2.2) of a SYN segment, if present and well formed.
fn window_scale(header: &TcpHeaderSlice<'_>) -> Option<u8> {
    for option in header.options_iterator() {
        match option {
            Ok(TcpOptionElement::WindowScale(shift)) => return Some(shift),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A TCP header etherparse refused: cut by the capture, or with a data offset below 5. Keeps
/// the ports, and the fixed header's facts when all 20 bytes are there (options are lost).
fn tcp_partial<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let data = net.payload;
    let data_offset = data.get(12).map_or(5, |b| usize::from(b >> 4));
    let header_len = data_offset.max(5) * 4;
    let mut view = ports_only(net, ctx, layer::TCP, 20, header_len)?;
    if let (true, Some(seq), Some(ack), Some(&flags), Some(window)) = (
        data_offset >= 5 && net.payload_len >= 20,
        be32(data, 4),
        be32(data, 8),
        data.get(13),
        be16(data, 14),
    ) {
        view.tcp = Some(TcpInfo {
            seq,
            ack,
            flags,
            window,
            window_scale: None,
        });
    }
    Ok(view)
}

/// UDP (RFC 768); then VXLAN and GTP-U, which UDP carries. The UDP length field is not trusted
/// (the IP length already bounds the payload), as in ndpiReader.
fn udp<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let data = net.payload;
    let Ok(header) = UdpHeaderSlice::from_slice(data) else {
        return ports_only(net, ctx, layer::UDP, 8, 8);
    };
    let header_len = header.slice().len();
    let view = PacketView {
        src_port: header.source_port(),
        dst_port: header.destination_port(),
        payload: tail(data, header_len),
        payload_len: net.payload_len.saturating_sub(header_len as u32),
        ..net.view(ctx)
    };
    tunnel::over_udp(view, ctx)
}

/// SCTP common header (RFC 9260 §3.1): ports (2+2), verification tag (4), checksum (4). The
/// payload is the chunks. etherparse has no SCTP.
fn sctp<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let mut view = ports_only(net, ctx, layer::SCTP, 12, 12)?;
    if net.payload_len >= 12 {
        view.payload = tail(net.payload, 12);
    }
    Ok(view)
}

/// ICMP (RFC 792) and ICMPv6 (RFC 4443 §2.1): type and code are the first two bytes. The
/// payload is the whole ICMP message.
fn icmp<'a>(net: &Net<'a>, ctx: Ctx) -> Decoded<'a> {
    let data = net.payload;
    let (Some(&kind), Some(&code)) = (data.first(), data.get(1)) else {
        return Err(DecodeError::Truncated { layer: layer::ICMP });
    };
    Ok(PacketView {
        icmp: Some((kind, code)),
        ..net.view(ctx)
    })
}
