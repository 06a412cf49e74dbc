//! The flow key: one value for both directions of a conversation.

use std::net::IpAddr;

use crate::decode::{PacketView, Tunnel};

/// Identity of a bidirectional flow: VLAN, tunnel, L4 protocol and the two endpoints, ordered
/// so that both directions of a conversation map to the same key (`lo` ≤ `hi` as `(ip, port)`).
///
/// `Copy + Hash` and a few dozen bytes: it is hashed once per packet on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Lower endpoint address.
    pub lo_ip: IpAddr,
    /// Higher endpoint address.
    pub hi_ip: IpAddr,
    /// Port of the lower endpoint (0 for protocols without ports).
    pub lo_port: u16,
    /// Port of the higher endpoint.
    pub hi_port: u16,
    /// IANA L4 protocol number.
    pub proto: u8,
    /// Innermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Encapsulation removed to reach the packet.
    pub tunnel: Tunnel,
}

impl FlowKey {
    /// The key of a packet, and whether the packet travels from `lo` to `hi`.
    #[inline]
    pub fn of_packet(pkt: &PacketView<'_>) -> (Self, bool) {
        let forward = (pkt.src, pkt.src_port) <= (pkt.dst, pkt.dst_port);
        let key = if forward {
            Self {
                lo_ip: pkt.src,
                hi_ip: pkt.dst,
                lo_port: pkt.src_port,
                hi_port: pkt.dst_port,
                proto: pkt.proto,
                vlan: pkt.vlan,
                tunnel: pkt.tunnel,
            }
        } else {
            Self {
                lo_ip: pkt.dst,
                hi_ip: pkt.src,
                lo_port: pkt.dst_port,
                hi_port: pkt.src_port,
                proto: pkt.proto,
                vlan: pkt.vlan,
                tunnel: pkt.tunnel,
            }
        };
        (key, forward)
    }

    /// The `(address, port)` of side `lo` (`true`) or `hi` (`false`).
    pub fn endpoint(&self, lo: bool) -> (IpAddr, u16) {
        if lo {
            (self.lo_ip, self.lo_port)
        } else {
            (self.hi_ip, self.hi_port)
        }
    }

    /// 4 or 6.
    pub fn ip_version(&self) -> u32 {
        if self.lo_ip.is_ipv4() { 4 } else { 6 }
    }
}
