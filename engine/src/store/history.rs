//! Which ended flows a history query is about: plain data, matched in memory (the history ring)
//! and rendered to SQL by the persistent store ([`crate::store::db`]) with the same meaning.

use std::net::IpAddr;

use netwarden_api::flow::{FlowRecord, ip_to_bytes};

use crate::alerts::store::filter::point_matches;

/// What to sort history by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistorySortKey {
    /// Last seen.
    #[default]
    LastSeen,
    /// First seen.
    FirstSeen,
    /// Bytes, both directions.
    Bytes,
    /// Packets, both directions.
    Packets,
    /// Last seen minus first seen.
    Duration,
}

/// A validated filter over ended flows; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Client or server address.
    pub host: Option<IpAddr>,
    /// Client or server port.
    pub port: Option<u16>,
    /// L4 protocol number.
    pub l4: Option<u8>,
    /// VLAN id.
    pub vlan: Option<u32>,
    /// Observation point name or a `/`-prefix of it (a sensor).
    pub point: Option<String>,
    /// Last seen at or after (ns).
    pub from: Option<u64>,
    /// First seen at or before (ns).
    pub to: Option<u64>,
}

impl HistoryFilter {
    /// Whether `r` passes.
    pub fn matches(&self, r: &FlowRecord) -> bool {
        self.host.is_none_or(|h| {
            let b = ip_to_bytes(h);
            r.client_ip == b || r.server_ip == b
        }) && self
            .port
            .is_none_or(|p| r.client_port == u32::from(p) || r.server_port == u32::from(p))
            && self.l4.is_none_or(|p| r.l4_proto == u32::from(p))
            && self.vlan.is_none_or(|v| r.vlan == v)
            && self.from.is_none_or(|f| r.last_seen_ns >= f)
            && self.to.is_none_or(|t| r.first_seen_ns <= t)
            && self.point.as_ref().is_none_or(|p| {
                let name = r
                    .observation_point
                    .as_ref()
                    .map(crate::hosts::point_label)
                    .unwrap_or_default();
                point_matches(&name, p)
            })
    }
}

/// The value a flow sorts by.
pub fn sort_value(key: HistorySortKey, r: &FlowRecord) -> u64 {
    match key {
        HistorySortKey::LastSeen => r.last_seen_ns,
        HistorySortKey::FirstSeen => r.first_seen_ns,
        HistorySortKey::Bytes => r.total_bytes(),
        HistorySortKey::Packets => r.total_packets(),
        HistorySortKey::Duration => r.last_seen_ns.saturating_sub(r.first_seen_ns),
    }
}
