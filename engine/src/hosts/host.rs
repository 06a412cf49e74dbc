//! One host's totals.

use std::net::IpAddr;

use serde::Serialize;

use crate::hosts::{Counters, HostKey, PointKey, Side};

/// L7 protocols remembered per host; further protocols are not listed (their bytes still count).
pub const MAX_HOST_PROTOCOLS: usize = 32;
/// Peers remembered per host; a new peer replaces the smallest one when full.
pub const MAX_HOST_PEERS: usize = 32;
/// Observation points remembered per host.
pub const MAX_HOST_POINTS: usize = 16;

/// Flows and bytes of one L7 protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProtocolCount {
    /// nDPI's name (`TLS.Google`), `Unknown` when the DPI had nothing to say.
    pub name: String,
    /// Flows counted under this protocol.
    pub flows: u64,
    /// Bytes (both directions) of those flows.
    pub bytes: u64,
}

/// Flows and bytes exchanged with one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeerCount {
    /// The peer's address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// Flows with the peer.
    pub flows: u64,
    /// Bytes (both directions) exchanged with the peer.
    pub bytes: u64,
}

/// What the engine knows about one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Address and VLAN.
    pub key: HostKey,
    /// Bytes sent by the host.
    pub bytes_sent: u64,
    /// Bytes received by the host.
    pub bytes_rcvd: u64,
    /// Packets sent by the host.
    pub packets_sent: u64,
    /// Packets received by the host.
    pub packets_rcvd: u64,
    /// Flows the host opened.
    pub flows_as_client: u64,
    /// Flows the host answered.
    pub flows_as_server: u64,
    /// Flows the host opened that have not ended.
    pub active_flows_as_client: u64,
    /// Flows the host answered that have not ended.
    pub active_flows_as_server: u64,
    /// First packet time, ns since the Unix epoch.
    pub first_seen_ns: u64,
    /// Last packet time, ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// L7 protocols seen (bounded by [`MAX_HOST_PROTOCOLS`]).
    pub protocols: Vec<ProtocolCount>,
    /// Peers (bounded by [`MAX_HOST_PEERS`]).
    pub peers: Vec<PeerCount>,
    /// Observation points where the host was seen (bounded by [`MAX_HOST_POINTS`]).
    pub points: Vec<PointKey>,
}

/// One record's contribution to one host.
#[derive(Clone, Copy, Debug)]
pub struct HostUpdate<'a> {
    /// Which end of the flow the host is.
    pub side: Side,
    /// Counter deltas of the flow (client/server directions).
    pub delta: Counters,
    /// First record of the flow for this host: count the flow.
    pub new_flow: bool,
    /// The flow ended with this record and was active for this host.
    pub ended_active: bool,
    /// The flow is still running after this record (and was not counted active yet).
    pub started_active: bool,
    /// Count the flow under `protocol` now.
    pub count_protocol: bool,
    /// The L7 protocol name.
    pub protocol: &'a str,
    /// The other end.
    pub peer: IpAddr,
    /// Record first/last seen, ns.
    pub first_seen_ns: u64,
    /// Record last seen, ns.
    pub last_seen_ns: u64,
}

impl Host {
    /// A host never seen before.
    pub fn new(key: HostKey) -> Self {
        Self {
            key,
            bytes_sent: 0,
            bytes_rcvd: 0,
            packets_sent: 0,
            packets_rcvd: 0,
            flows_as_client: 0,
            flows_as_server: 0,
            active_flows_as_client: 0,
            active_flows_as_server: 0,
            first_seen_ns: u64::MAX,
            last_seen_ns: 0,
            protocols: Vec::new(),
            peers: Vec::new(),
            points: Vec::new(),
        }
    }

    /// Bytes sent and received.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent.saturating_add(self.bytes_rcvd)
    }

    /// Packets sent and received.
    pub fn packets(&self) -> u64 {
        self.packets_sent.saturating_add(self.packets_rcvd)
    }

    /// Flows as client and as server.
    pub fn flows(&self) -> u64 {
        self.flows_as_client + self.flows_as_server
    }

    /// Adds one record's contribution.
    pub fn apply(&mut self, u: &HostUpdate<'_>) {
        let d = u.delta;
        let (sent_b, sent_p, rcvd_b, rcvd_p) = match u.side {
            Side::Client => (d.c2s_bytes, d.c2s_packets, d.s2c_bytes, d.s2c_packets),
            Side::Server => (d.s2c_bytes, d.s2c_packets, d.c2s_bytes, d.c2s_packets),
        };
        // Saturating: absurd exporter counters must not panic (or wrap).
        self.bytes_sent = self.bytes_sent.saturating_add(sent_b);
        self.packets_sent = self.packets_sent.saturating_add(sent_p);
        self.bytes_rcvd = self.bytes_rcvd.saturating_add(rcvd_b);
        self.packets_rcvd = self.packets_rcvd.saturating_add(rcvd_p);
        let (flows, active) = match u.side {
            Side::Client => (&mut self.flows_as_client, &mut self.active_flows_as_client),
            Side::Server => (&mut self.flows_as_server, &mut self.active_flows_as_server),
        };
        if u.new_flow {
            *flows += 1;
        }
        if u.started_active {
            *active += 1;
        }
        if u.ended_active {
            *active = active.saturating_sub(1);
        }
        if u.first_seen_ns != 0 {
            self.first_seen_ns = self.first_seen_ns.min(u.first_seen_ns);
        }
        self.last_seen_ns = self.last_seen_ns.max(u.last_seen_ns);
        self.add_protocol(u.protocol, u.count_protocol, d.bytes());
        self.add_peer(u.peer, u.new_flow, d.bytes());
    }

    /// Releases one active flow of `side` (its snapshot was evicted: its end will not be seen).
    pub fn release_active(&mut self, side: Side) {
        let active = match side {
            Side::Client => &mut self.active_flows_as_client,
            Side::Server => &mut self.active_flows_as_server,
        };
        *active = active.saturating_sub(1);
    }

    /// Remembers `point`; returns whether it is new for this host.
    pub fn add_point(&mut self, point: PointKey) -> bool {
        if self.points.contains(&point) || self.points.len() >= MAX_HOST_POINTS {
            return false;
        }
        self.points.push(point);
        true
    }

    fn add_protocol(&mut self, name: &str, count_flow: bool, bytes: u64) {
        if name.is_empty() || (bytes == 0 && !count_flow) {
            return;
        }
        if let Some(p) = self.protocols.iter_mut().find(|p| p.name == name) {
            p.flows += u64::from(count_flow);
            p.bytes = p.bytes.saturating_add(bytes);
        } else if self.protocols.len() < MAX_HOST_PROTOCOLS {
            self.protocols.push(ProtocolCount {
                name: name.to_owned(),
                flows: u64::from(count_flow),
                bytes,
            });
        }
    }

    fn add_peer(&mut self, ip: IpAddr, new_flow: bool, bytes: u64) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.ip == ip) {
            p.flows += u64::from(new_flow);
            p.bytes = p.bytes.saturating_add(bytes);
            return;
        }
        let fresh = PeerCount {
            ip,
            flows: u64::from(new_flow),
            bytes,
        };
        if self.peers.len() < MAX_HOST_PEERS {
            self.peers.push(fresh);
        } else if let Some(smallest) = self.peers.iter_mut().min_by_key(|p| p.bytes)
            && smallest.bytes <= bytes
        {
            *smallest = fresh;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn update(side: Side, delta: Counters, new_flow: bool) -> HostUpdate<'static> {
        HostUpdate {
            side,
            delta,
            new_flow,
            ended_active: false,
            started_active: new_flow,
            count_protocol: new_flow,
            protocol: "DNS",
            peer: "10.0.0.2".parse().unwrap(),
            first_seen_ns: 5,
            last_seen_ns: 9,
        }
    }

    #[test]
    fn client_sends_c2s_and_server_sends_s2c() {
        let key = HostKey {
            ip: "10.0.0.1".parse().unwrap(),
            vlan: 0,
        };
        let d = Counters {
            c2s_packets: 1,
            c2s_bytes: 100,
            s2c_packets: 2,
            s2c_bytes: 300,
        };
        let mut c = Host::new(key);
        c.apply(&update(Side::Client, d, true));
        assert_eq!(
            (c.bytes_sent, c.bytes_rcvd, c.packets_sent, c.packets_rcvd),
            (100, 300, 1, 2)
        );
        assert_eq!(
            (
                c.flows_as_client,
                c.active_flows_as_client,
                c.flows_as_server
            ),
            (1, 1, 0)
        );
        let mut s = Host::new(key);
        s.apply(&update(Side::Server, d, true));
        assert_eq!((s.bytes_sent, s.bytes_rcvd), (300, 100));
        assert_eq!(s.flows_as_server, 1);
        assert_eq!(
            s.protocols,
            vec![ProtocolCount {
                name: "DNS".into(),
                flows: 1,
                bytes: 400
            }]
        );
        assert_eq!((s.first_seen_ns, s.last_seen_ns), (5, 9));
    }

    #[test]
    fn peers_and_protocols_are_bounded() {
        let mut h = Host::new(HostKey {
            ip: "10.0.0.1".parse().unwrap(),
            vlan: 0,
        });
        for i in 0..100u32 {
            let mut u = update(
                Side::Client,
                Counters {
                    c2s_bytes: u64::from(i),
                    ..Counters::default()
                },
                true,
            );
            let peer = std::net::Ipv4Addr::from(0x0a00_0100 + i);
            u.peer = peer.into();
            let name = format!("P{i}");
            u.protocol = &name;
            h.apply(&u);
        }
        assert_eq!(h.peers.len(), MAX_HOST_PEERS);
        assert_eq!(h.protocols.len(), MAX_HOST_PROTOCOLS);
        // The biggest peers are kept.
        assert!(h.peers.iter().any(|p| p.bytes == 99));
    }
}
