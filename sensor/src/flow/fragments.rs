//! Attribution of later IP fragments (no transport header) to the flow of their first one.
//!
//! Bounded: at most `max` ids, each forgotten after `timeout` of packet time.

use std::net::IpAddr;

use hashbrown::HashMap;

use super::key::FlowKey;

/// Identity of a fragmented datagram (RFC 791 section 3.2, RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentId {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
}

/// Where a datagram's fragments go.
#[derive(Debug, Clone, Copy)]
pub struct FragmentTarget {
    pub key: FlowKey,
    pub dir: usize,
    pub seen_ns: u64,
}

/// The bounded fragment map.
#[derive(Debug, Default)]
pub struct FragmentMap {
    map: HashMap<FragmentId, FragmentTarget, ahash::RandomState>,
}

impl FragmentMap {
    /// Remembers a first fragment; `false` when the map is full.
    pub fn insert(&mut self, id: FragmentId, target: FragmentTarget, max: usize) -> bool {
        if self.map.len() >= max && !self.map.contains_key(&id) {
            return false;
        }
        self.map.insert(id, target);
        true
    }

    /// Where a later fragment goes; forgets the datagram at its last fragment.
    pub fn lookup(&mut self, id: &FragmentId, more: bool) -> Option<FragmentTarget> {
        if more {
            self.map.get(id).copied()
        } else {
            self.map.remove(id)
        }
    }

    /// Forgets ids older than `timeout_ns` at `now`.
    pub fn expire(&mut self, now: u64, timeout_ns: u64) {
        if !self.map.is_empty() {
            self.map
                .retain(|_, t| now.saturating_sub(t.seen_ns) < timeout_ns);
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}
