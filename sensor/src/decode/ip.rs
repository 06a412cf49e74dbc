//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers, IPv4 fragmentation and IPv6 extension headers.
//!
//! Owns the addresses, the final protocol number, fragmentation and the IP payload bounds
//! (captured bytes and wire length); hands the payload to [`super::transport`]. Lenient where
//! ndpiReader is: a capture shorter than the IP length is decoded as far as it goes, and a zero
//! length field (TSO/LRO offload captures) means "as long as the capture".

use std::net::IpAddr;

use etherparse::err::{ip_auth, ipv4, ipv6};
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice,
};

use super::{Ctx, DecodeError, Fragment, MAX_IPV6_EXTENSIONS, PacketView, layer, transport};

type Decoded<'a> = Result<PacketView<'a>, DecodeError>;

/// The network-layer facts of one IP packet, handed to the transport decoder.
#[derive(Debug, Clone, Copy)]
pub(super) struct Net<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Final protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// IP payload as captured, bounded by the IP length field.
    pub payload: &'a [u8],
    /// IP payload length on the wire.
    pub payload_len: u32,
}

impl<'a> Net<'a> {
    /// The packet as seen at the IP layer: no ports, payload = the IP payload.
    pub fn view(&self, ctx: Ctx) -> PacketView<'a> {
        PacketView {
            vlan: ctx.vlan,
            tunnel: ctx.tunnel,
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            fragment: self.fragment,
            payload: self.payload,
            payload_len: self.payload_len,
            ..PacketView::empty()
        }
    }
}

/// An IP packet whose version nibble decides between IPv4 and IPv6 (raw IP, null/loopback,
/// MPLS and GTP-U payloads).
pub(super) fn raw(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, ctx),
        Some(6) => ipv6(data, ctx),
        Some(_) => Err(DecodeError::Malformed { layer: layer::IP }),
        None => Err(DecodeError::Truncated { layer: layer::IP }),
    }
}

/// An IPv4 packet (RFC 791 §3.1).
pub(super) fn ipv4(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let header = Ipv4HeaderSlice::from_slice(data).map_err(|e| match e {
        ipv4::HeaderSliceError::Len(_) => DecodeError::Truncated { layer: layer::IPV4 },
        ipv4::HeaderSliceError::Content(_) => DecodeError::Malformed { layer: layer::IPV4 },
    })?;
    let header_len = header.slice().len();
    let end = match usize::from(header.total_len()) {
        // Offloaded (TSO/LRO) packets are captured with total length 0: take the capture.
        0 => data.len(),
        total if total < header_len => {
            return Err(DecodeError::Malformed { layer: layer::IPV4 });
        }
        total => total,
    };
    // Bounded by the capture (snaplen) and by the total length (Ethernet padding).
    let payload = data
        .get(header_len..end.min(data.len()))
        .unwrap_or_default();
    let id = u32::from(header.identification());
    let more = header.more_fragments();
    let fragment = match header.fragments_offset().value() {
        0 if more => Fragment::First { id },
        0 => Fragment::None,
        _ => Fragment::Later { id, more },
    };
    let net = Net {
        src: IpAddr::V4(header.source_addr()),
        dst: IpAddr::V4(header.destination_addr()),
        proto: header.protocol().0,
        fragment,
        payload,
        payload_len: (end - header_len) as u32,
    };
    transport::decode(&net, ctx)
}

/// An IPv6 packet (RFC 8200 §3) and its extension headers (RFC 8200 §4): hop-by-hop (0),
/// routing (43), fragment (44), destination options (60), AH (51, RFC 4302 §2), mobility (135),
/// HIP (139) and shim6 (140). At most [`MAX_IPV6_EXTENSIONS`] are walked.
pub(super) fn ipv6(data: &[u8], ctx: Ctx) -> Decoded<'_> {
    let ctx = ctx.enter()?;
    let header = Ipv6HeaderSlice::from_slice(data).map_err(|e| match e {
        ipv6::HeaderSliceError::Len(_) => DecodeError::Truncated { layer: layer::IPV6 },
        ipv6::HeaderSliceError::Content(_) => DecodeError::Malformed { layer: layer::IPV6 },
    })?;
    let header_len = header.slice().len();
    let after_header = data.get(header_len..).unwrap_or_default();
    // Payload length 0: a jumbogram (RFC 2675) or an offloaded capture; take the capture.
    let wire_len = match usize::from(header.payload_length()) {
        0 => after_header.len(),
        len => len,
    };
    let mut payload = after_header
        .get(..wire_len.min(after_header.len()))
        .unwrap_or_default();
    let mut ext_len = 0usize;
    let mut proto = header.next_header().0;
    let mut fragment = Fragment::None;
    let truncated = DecodeError::Truncated {
        layer: layer::IPV6_EXT,
    };
    let mut walked = 0u8;
    loop {
        let consumed = match proto {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(payload).map_err(|_| truncated)?;
                proto = ext.next_header().0;
                ext.slice().len()
            }
            51 => {
                let ext = IpAuthHeaderSlice::from_slice(payload).map_err(|e| match e {
                    ip_auth::HeaderSliceError::Len(_) => truncated,
                    ip_auth::HeaderSliceError::Content(_) => DecodeError::Malformed {
                        layer: layer::IPV6_EXT,
                    },
                })?;
                proto = ext.next_header().0;
                ext.slice().len()
            }
            44 => {
                let ext = Ipv6FragmentHeaderSlice::from_slice(payload).map_err(|_| truncated)?;
                proto = ext.next_header().0;
                let id = ext.identification();
                let more = ext.more_fragments();
                if ext.fragment_offset().value() != 0 {
                    // The rest is fragment data: no further header to walk.
                    fragment = Fragment::Later { id, more };
                    ext_len += ext.slice().len();
                    payload = payload.get(ext.slice().len()..).unwrap_or_default();
                    break;
                }
                if more {
                    fragment = Fragment::First { id };
                }
                ext.slice().len()
            }
            _ => break,
        };
        walked += 1;
        if walked > MAX_IPV6_EXTENSIONS {
            return Err(DecodeError::TooDeep);
        }
        ext_len += consumed;
        payload = payload.get(consumed..).unwrap_or_default();
    }
    let net = Net {
        src: IpAddr::V6(header.source_addr()),
        dst: IpAddr::V6(header.destination_addr()),
        proto,
        fragment,
        payload,
        payload_len: wire_len.saturating_sub(ext_len) as u32,
    };
    transport::decode(&net, ctx)
}
