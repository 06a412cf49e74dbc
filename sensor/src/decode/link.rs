//! Link layers and what sits between them and IP: Ethernet II, 802.1Q/802.1ad VLAN tags,
//! PPPoE session, PPP, MPLS, Linux cooked captures (SLL, SLL2) and BSD null/loopback.
//!
//! Owns the walk from the first byte of a frame to the first IP header; hands that header to
//! [`super::ip`]. Must not look above IP.

use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice};

use super::{Ctx, DecodeError, PacketView, be16, ip, layer, tail};

/// EtherType IPv4.
pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub(super) const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType 802.1Q customer VLAN tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType 802.1ad service VLAN tag (QinQ outer tag).
const ETHERTYPE_QINQ: u16 = 0x88A8;
/// Pre-standard QinQ outer tag used by older switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// EtherType PPPoE session stage (RFC 2516 §4).
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// EtherType MPLS unicast (RFC 3032 §5).
const ETHERTYPE_MPLS_UNICAST: u16 = 0x8847;
/// EtherType MPLS multicast (RFC 5332).
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;

type Decoded<'a> = Result<PacketView<'a>, DecodeError>;

/// An Ethernet II frame (no FCS, as pcap delivers it).
pub(super) fn ethernet(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| DecodeError::Truncated {
        layer: layer::ETHERNET,
    })?;
    ethertype(eth.ether_type().0, tail(data, eth.slice().len()), ctx)
}

/// Dispatches on an EtherType (or SLL protocol, or GRE protocol type) whose payload is `data`.
///
/// VLAN tags and MPLS labels are walked in a loop, bounded by [`Ctx::enter`]; the innermost VLAN
/// id wins, as in ndpiReader.
pub(super) fn ethertype(mut ether_type: u16, mut data: &[u8], mut ctx: Ctx) -> Decoded<'_> {
    loop {
        match ether_type {
            ETHERTYPE_IPV4 => return ip::ipv4(data, ctx),
            ETHERTYPE_IPV6 => return ip::ipv6(data, ctx),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                // IEEE 802.1Q §9.6: TCI (PCP 3 bits, DEI 1 bit, VID 12 bits), then EtherType.
                ctx = ctx.enter()?;
                let tag = SingleVlanHeaderSlice::from_slice(data)
                    .map_err(|_| DecodeError::Truncated { layer: layer::VLAN })?;
                ctx.vlan = tag.vlan_identifier().value();
                ether_type = tag.ether_type().0;
                data = tail(data, tag.slice().len());
            }
            ETHERTYPE_PPPOE_SESSION => return pppoe_session(data, ctx),
            ETHERTYPE_MPLS_UNICAST | ETHERTYPE_MPLS_MULTICAST => return mpls(data, ctx),
            other => return Err(DecodeError::NotIp { ethertype: other }),
        }
    }
}

/// PPPoE session stage, RFC 2516 §4: VER/TYPE (1), CODE (1), SESSION_ID (2), LENGTH (2), then a
/// PPP frame without address/control fields. The header fields are not checked: ndpiReader
/// does not either.
fn pppoe_session(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let ppp_frame = data.get(6..).ok_or(DecodeError::Truncated {
        layer: layer::PPPOE,
    })?;
    ppp(ppp_frame, ctx, ETHERTYPE_PPPOE_SESSION)
}

/// A PPP frame (RFC 1661 §2) as carried by PPPoE and PPTP's enhanced GRE: optional
/// address/control bytes `FF 03` (absent when Address-and-Control-Field-Compression is on,
/// RFC 1661 §6.6), then the protocol field, one byte when Protocol-Field-Compression shortened
/// it (odd first byte, RFC 1661 §6.5) or two. Protocol 0x0021 is IPv4 (RFC 1332), 0x0057 IPv6
/// (RFC 5072). `carrier` is the EtherType reported when the frame is not IP.
pub(super) fn ppp(data: &[u8], ctx: Ctx, carrier: u16) -> Decoded<'_> {
    let data = data.strip_prefix(&[0xFF, 0x03]).unwrap_or(data);
    let truncated = DecodeError::Truncated { layer: layer::PPP };
    let (protocol, rest) = match data.first() {
        Some(&b) if b & 1 == 1 => (u16::from(b), tail(data, 1)),
        Some(_) => (be16(data, 0).ok_or(truncated)?, tail(data, 2)),
        None => return Err(truncated),
    };
    match protocol {
        0x0021 => ip::ipv4(rest, ctx),
        0x0057 => ip::ipv6(rest, ctx),
        _ => Err(DecodeError::NotIp { ethertype: carrier }),
    }
}

/// An MPLS label stack, RFC 3032 §2.1: 4-byte entries (label 20 bits, TC 3, S 1, TTL 8) until
/// the bottom-of-stack bit S; the payload's version nibble then says IPv4 or IPv6, as
/// ndpiReader guesses it (RFC 3032 §4.1 leaves the payload type to the label's binding).
fn mpls(mut data: &[u8], mut ctx: Ctx) -> Decoded<'_> {
    loop {
        ctx = ctx.enter()?;
        let entry = data
            .get(..4)
            .ok_or(DecodeError::Truncated { layer: layer::MPLS })?;
        let bottom = entry.get(2).is_some_and(|b| b & 0x01 != 0);
        data = tail(data, 4);
        if bottom {
            break;
        }
    }
    match data.first().map(|b| b >> 4) {
        Some(4 | 6) => ip::raw(data, ctx),
        _ => Err(DecodeError::NotIp {
            ethertype: ETHERTYPE_MPLS_UNICAST,
        }),
    }
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL,
/// <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html>): packet type (2), ARPHRD type
/// (2), link-layer address length (2), address (8), protocol (2, an EtherType for the usual
/// ARPHRD types). Hand-written because etherparse's `LinuxSllHeaderSlice` rejects packet types
/// and ARPHRD/protocol pairs that ndpiReader accepts.
pub(super) fn linux_sll(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let protocol = be16(data, 14).ok_or(DecodeError::Truncated { layer: layer::SLL })?;
    ethertype(protocol, tail(data, 16), ctx)
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2,
/// <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html>): protocol (2, an EtherType),
/// reserved (2), interface index (4), ARPHRD type (2), packet type (1), address length (1),
/// address (8). etherparse has no SLL2.
pub(super) fn linux_sll2(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    if data.len() < 20 {
        return Err(DecodeError::Truncated { layer: layer::SLL2 });
    }
    let protocol = be16(data, 0).ok_or(DecodeError::Truncated { layer: layer::SLL2 })?;
    ethertype(protocol, tail(data, 20), ctx)
}

/// BSD null/loopback (LINKTYPE_NULL, LINKTYPE_LOOP,
/// <https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html>): a 4-byte address family, in the
/// capturing host's byte order for NULL and big-endian for LOOP, so both orders are accepted.
/// AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD, OpenBSD, BSD/OS), 28 (FreeBSD,
/// DragonFly) or 30 (macOS). The IP header's version nibble then decides, as for raw IP.
pub(super) fn null(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let family: [u8; 4] = data
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated { layer: layer::NULL })?;
    let little = u32::from_le_bytes(family);
    let big = u32::from_be_bytes(family);
    let is_ip = |af: u32| matches!(af, 2 | 10 | 24 | 28 | 30);
    if is_ip(little) || is_ip(big) {
        ip::raw(tail(data, 4), ctx)
    } else {
        Err(DecodeError::NotIp {
            ethertype: little.min(big) as u16,
        })
    }
}
