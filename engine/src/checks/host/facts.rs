//! What one flow record tells the host checks about one of its hosts.

use std::net::{IpAddr, Ipv4Addr};

use netwarden_api::flow::{FlowRecord, proto};

use crate::checks::ChecksConfig;

/// Services whose servers the contacts checks count (the discriminant is a bit and an index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// DNS (port 53, or nDPI's DNS).
    Dns = 0,
    /// SMTP (ports 25, 465, 587, or nDPI's SMTP/SMTPS).
    Smtp = 1,
    /// NTP (UDP port 123, or nDPI's NTP).
    Ntp = 2,
}

impl Service {
    /// The service of a flow, by its L7 protocol or, failing that, its server port.
    pub fn of(r: &FlowRecord) -> Option<Self> {
        let l7 = r.l7.as_ref();
        let named = |p: &str| {
            l7.is_some_and(|l| {
                l.master_protocol.eq_ignore_ascii_case(p) || l.app_protocol.eq_ignore_ascii_case(p)
            })
        };
        let port = r.server_port;
        let (tcp, udp) = (
            r.l4_proto == u32::from(proto::TCP),
            r.l4_proto == u32::from(proto::UDP),
        );
        if named("DNS") || ((tcp || udp) && port == 53) {
            Some(Self::Dns)
        } else if named("SMTP") || named("SMTPS") || (tcp && matches!(port, 25 | 465 | 587)) {
            Some(Self::Smtp)
        } else if named("NTP") || (udp && port == 123) {
            Some(Self::Ntp)
        } else {
            None
        }
    }
}

/// What one record told the host checks about one host.
#[derive(Clone, Copy, Debug)]
pub struct FlowFacts {
    /// The host is the flow's client.
    pub as_client: bool,
    /// First record of the flow for this host.
    pub new_flow: bool,
    /// A TCP SYN without SYN/ACK in return (counted once per flow, on its final record).
    pub unanswered_syn: bool,
    /// A TCP flow opened without SYN, ACK or RST from the client: a FIN, Xmas or NULL probe
    /// (final record).
    pub stealth_probe: bool,
    /// A TCP flow the client opened with a RST, without SYN (final record).
    pub rst_probe: bool,
    /// A TCP SYN whose client never sent an ACK: a half-open connection (final record).
    pub half_open: bool,
    /// The flow ended without an answer or without a TCP handshake.
    pub incomplete: bool,
    /// ICMP packets the client sent in this record (delta).
    pub icmp_packets: u64,
    /// DNS query packets the client sent in this record (delta).
    pub dns_queries: u64,
    /// The server answered.
    pub answered: bool,
    /// The other end of the flow.
    pub peer: IpAddr,
    /// TCP or UDP server port.
    pub server_port: Option<u16>,
    /// DNS, SMTP or NTP.
    pub service: Option<Service>,
    /// Hash of the domain name asked (DNS query, SNI or HTTP Host), 0 when none.
    pub domain: u64,
    /// A remote-access flow (as the `remote_access` flow check sees it).
    pub remote_access: bool,
    /// Flow time, ns.
    pub t_ns: u64,
}

impl Default for FlowFacts {
    fn default() -> Self {
        Self {
            as_client: false,
            new_flow: false,
            unanswered_syn: false,
            stealth_probe: false,
            rst_probe: false,
            half_open: false,
            incomplete: false,
            icmp_packets: 0,
            dns_queries: 0,
            answered: false,
            peer: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            server_port: None,
            service: None,
            domain: 0,
            remote_access: false,
            t_ns: 0,
        }
    }
}

const FIN: u32 = 0x01;
const SYN: u32 = 0x02;
const RST: u32 = 0x04;
const ACK: u32 = 0x10;

impl FlowFacts {
    /// The facts of `r` for its client (`as_client`) or server; `c2s_packets` is what this
    /// record added to the client-to-server packet count.
    pub fn of(
        r: &FlowRecord,
        cfg: &ChecksConfig,
        as_client: bool,
        new_flow: bool,
        c2s_packets: u64,
    ) -> Self {
        let cf = r.c2s.as_ref().map_or(0, |d| d.tcp_flags);
        let sf = r.s2c.as_ref().map_or(0, |d| d.tcp_flags);
        let sent = r.c2s.as_ref().is_some_and(|d| d.packets > 0);
        let tcp = r.l4_proto == u32::from(proto::TCP);
        let udp = r.l4_proto == u32::from(proto::UDP);
        let icmp = r.l4_proto == u32::from(proto::ICMP) || r.l4_proto == u32::from(proto::ICMPV6);
        let answered = r.s2c.as_ref().is_some_and(|d| d.packets > 0);
        let handshake = sf & (SYN | ACK) == (SYN | ACK);
        let fin = r.is_final();
        let service = Service::of(r);
        let (client, server) = (r.client_addr(), r.server_addr());
        let peer = if as_client { server } else { client };
        let l7 = r.l7.as_ref();
        let name = l7
            .map(|l| l.hostname.as_str())
            .filter(|h| !h.is_empty())
            .or_else(|| l7.and_then(|l| l.tls.as_ref()).map(|t| t.sni.as_str()))
            .filter(|h| !h.is_empty())
            .or_else(|| l7.and_then(|l| l.dns.as_ref()).map(|d| d.query.as_str()))
            .unwrap_or("");
        Self {
            as_client,
            new_flow,
            unanswered_syn: fin && tcp && cf & SYN != 0 && !handshake,
            stealth_probe: fin && tcp && sent && cf & (SYN | ACK | RST) == 0,
            // Nothing from the client but RST (and maybe FIN): no connection behind it.
            rst_probe: fin && tcp && cf & RST != 0 && cf & !(RST | FIN) == 0,
            half_open: fin && tcp && cf & SYN != 0 && cf & ACK == 0,
            incomplete: fin && (!answered || (tcp && !handshake)),
            icmp_packets: if icmp { c2s_packets } else { 0 },
            dns_queries: if service == Some(Service::Dns) && (udp || tcp) {
                c2s_packets
            } else {
                0
            },
            answered,
            peer: peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            server_port: (tcp || udp).then(|| u16::try_from(r.server_port).unwrap_or(0)),
            service,
            domain: if name.is_empty() {
                0
            } else {
                super::window::hash_name(name)
            },
            remote_access: crate::checks::flow::is_remote_access(r, cfg),
            t_ns: r.last_seen_ns,
        }
    }
}
