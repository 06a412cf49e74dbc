//! Cumulative counters to deltas.
//!
//! A flow record carries counters cumulative since the flow's first packet, and a flow sends
//! several records (periodic updates, then a final one). To add a record to host totals we
//! subtract what was already applied for the same (flow, side), remembered here, and forget it
//! when the final record is applied. Snapshots of flows whose final record never comes are
//! evicted when the table is full (and counted by the caller).

use crate::bounded::BoundedMap;
use crate::hosts::{HostKey, Side};
use crate::store::FlowKey;

/// Packet and byte counters of both directions of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Client-to-server packets.
    pub c2s_packets: u64,
    /// Client-to-server bytes.
    pub c2s_bytes: u64,
    /// Server-to-client packets.
    pub s2c_packets: u64,
    /// Server-to-client bytes.
    pub s2c_bytes: u64,
}

impl Counters {
    /// The counters of a record.
    pub fn of(record: &netwarden_api::flow::FlowRecord) -> Self {
        let c2s = record.c2s.as_ref();
        let s2c = record.s2c.as_ref();
        Self {
            c2s_packets: c2s.map_or(0, |d| d.packets),
            c2s_bytes: c2s.map_or(0, |d| d.bytes),
            s2c_packets: s2c.map_or(0, |d| d.packets),
            s2c_bytes: s2c.map_or(0, |d| d.bytes),
        }
    }

    /// `self - earlier`, per counter, never below zero (a reordered or replayed record adds
    /// nothing instead of wrapping).
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            c2s_packets: self.c2s_packets.saturating_sub(earlier.c2s_packets),
            c2s_bytes: self.c2s_bytes.saturating_sub(earlier.c2s_bytes),
            s2c_packets: self.s2c_packets.saturating_sub(earlier.s2c_packets),
            s2c_bytes: self.s2c_bytes.saturating_sub(earlier.s2c_bytes),
        }
    }

    /// The larger of each counter.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            c2s_packets: self.c2s_packets.max(other.c2s_packets),
            c2s_bytes: self.c2s_bytes.max(other.c2s_bytes),
            s2c_packets: self.s2c_packets.max(other.s2c_packets),
            s2c_bytes: self.s2c_bytes.max(other.s2c_bytes),
        }
    }

    /// Packets in both directions.
    pub fn packets(self) -> u64 {
        self.c2s_packets.saturating_add(self.s2c_packets)
    }

    /// Bytes in both directions.
    pub fn bytes(self) -> u64 {
        self.c2s_bytes.saturating_add(self.s2c_bytes)
    }
}

/// What was already applied for one (flow, side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The host this side updated (to release its active-flow count on eviction).
    pub host: HostKey,
    /// Counters applied so far.
    pub applied: Counters,
    /// The flow's first packet time: tells a reused flow id from the flow it replaces.
    pub first_seen_ns: u64,
    /// Whether the flow was already counted under an L7 protocol.
    pub l7_counted: bool,
}

/// The outcome of [`DeltaTracker::advance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advance {
    /// What this record adds.
    pub delta: Counters,
    /// The snapshot before this record; `None` when it is the first record seen for the side.
    pub previous: Option<Snapshot>,
    /// A snapshot of an earlier flow with the same id, dropped.
    pub stale: Option<Snapshot>,
    /// A snapshot evicted to make room, if any, with its side.
    pub evicted: Option<(Side, Snapshot)>,
}

/// One record as seen from one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The host of that side.
    pub host: HostKey,
    /// The record's cumulative counters.
    pub counters: Counters,
    /// The record's `first_seen_ns`.
    pub first_seen_ns: u64,
    /// Whether the record is the flow's last.
    pub is_final: bool,
    /// Whether the flow is (now) counted under an L7 protocol.
    pub l7_counted: bool,
}

/// Per-(flow, side) snapshots of applied counters, bounded.
pub struct DeltaTracker {
    snapshots: BoundedMap<(FlowKey, Side), Snapshot>,
}

impl DeltaTracker {
    /// A tracker remembering at most `capacity` live (flow, side) pairs.
    pub fn new(capacity: usize) -> Self {
        Self {
            snapshots: BoundedMap::new(capacity),
        }
    }

    /// How many (flow, side) pairs are remembered.
    pub fn len(&self) -> usize {
        self.snapshots.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// Every remembered (flow, side) with its snapshot (shard snapshots of the sharded engine).
    pub fn entries(&self) -> impl Iterator<Item = ((FlowKey, Side), Snapshot)> + '_ {
        self.snapshots.iter().map(|(k, v)| (*k, *v))
    }

    /// Puts back a snapshot taken elsewhere (a shard taken over); returns one evicted for room.
    pub fn restore(
        &mut self,
        flow: FlowKey,
        side: Side,
        snapshot: Snapshot,
    ) -> Option<(Side, Snapshot)> {
        self.snapshots
            .insert((flow, side), snapshot)
            .map(|((_, side), s)| (side, s))
    }

    /// Forgets (`flow`, `side`) (a shard handed over to another replica).
    pub fn forget(&mut self, flow: FlowKey, side: Side) -> Option<Snapshot> {
        self.snapshots.remove(&(flow, side))
    }

    /// The snapshot of (`flow`, `side`) for the flow that started at `first_seen_ns`.
    pub fn current(&self, flow: FlowKey, side: Side, first_seen_ns: u64) -> Option<&Snapshot> {
        self.snapshots
            .peek(&(flow, side))
            .filter(|s| s.first_seen_ns == first_seen_ns)
    }

    /// Records that `seen.counters` (cumulative) are now applied for (`flow`, `side`), and
    /// returns the delta. A final record forgets the pair.
    ///
    /// A snapshot whose `first_seen_ns` differs from the record's belongs to an earlier flow
    /// that reused the id (a restarted sensor): it is dropped and returned as `stale`, and the
    /// record counts as a new flow.
    pub fn advance(&mut self, flow: FlowKey, side: Side, seen: &Observation) -> Advance {
        let key = (flow, side);
        let existing = if seen.is_final {
            self.snapshots.remove(&key)
        } else {
            self.snapshots.peek(&key).copied()
        };
        let (previous, stale) = match existing {
            Some(s) if s.first_seen_ns != seen.first_seen_ns => (None, Some(s)),
            other => (other, None),
        };
        let applied_before = previous.map(|p| p.applied).unwrap_or_default();
        let delta = seen.counters.since(applied_before);
        let mut evicted = None;
        if !seen.is_final {
            let snapshot = Snapshot {
                host: seen.host,
                applied: seen.counters.max(applied_before),
                first_seen_ns: seen.first_seen_ns,
                l7_counted: seen.l7_counted,
            };
            if let Some(slot) = self.snapshots.get_mut(&key) {
                *slot = snapshot;
            } else {
                evicted = self
                    .snapshots
                    .insert(key, snapshot)
                    .map(|((_, side), s)| (side, s));
            }
        }
        Advance {
            delta,
            previous,
            stale,
            evicted,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hosts::PointKey;

    fn counters(c2s_bytes: u64, s2c_bytes: u64) -> Counters {
        Counters {
            c2s_packets: c2s_bytes / 100,
            c2s_bytes,
            s2c_packets: s2c_bytes / 100,
            s2c_bytes,
        }
    }

    fn flow(id: u64) -> FlowKey {
        FlowKey {
            point: PointKey(1),
            flow_id: id,
        }
    }

    fn seen(counters: Counters, is_final: bool, l7_counted: bool) -> Observation {
        let host = HostKey {
            ip: "10.0.0.1".parse().unwrap(),
            vlan: 0,
        };
        Observation {
            host,
            counters,
            first_seen_ns: 1000,
            is_final,
            l7_counted,
        }
    }

    #[test]
    fn cumulative_updates_become_deltas_and_final_forgets() {
        let mut t = DeltaTracker::new(16);
        let a = t.advance(
            flow(9),
            Side::Client,
            &seen(counters(100, 200), false, false),
        );
        assert_eq!(a.delta, counters(100, 200));
        assert!(a.previous.is_none());
        let b = t.advance(
            flow(9),
            Side::Client,
            &seen(counters(300, 200), false, true),
        );
        assert_eq!(b.delta, counters(200, 0));
        assert!(b.previous.is_some());
        let c = t.advance(flow(9), Side::Client, &seen(counters(400, 500), true, true));
        assert_eq!(c.delta, counters(100, 300));
        assert!(c.previous.is_some_and(|p| p.l7_counted));
        assert!(t.is_empty());
    }

    #[test]
    fn sides_are_tracked_separately_and_replays_add_nothing() {
        let mut t = DeltaTracker::new(16);
        t.advance(
            flow(9),
            Side::Client,
            &seen(counters(300, 300), false, false),
        );
        let s = t.advance(
            flow(9),
            Side::Server,
            &seen(counters(300, 300), false, false),
        );
        assert_eq!(s.delta, counters(300, 300));
        let replay = t.advance(
            flow(9),
            Side::Client,
            &seen(counters(100, 100), false, false),
        );
        assert_eq!(replay.delta, Counters::default());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_reused_flow_id_starts_a_new_flow() {
        let mut t = DeltaTracker::new(16);
        t.advance(
            flow(9),
            Side::Client,
            &seen(counters(300, 300), false, false),
        );
        let restarted = Observation {
            first_seen_ns: 5000,
            ..seen(counters(50, 50), false, false)
        };
        assert!(t.current(flow(9), Side::Client, 5000).is_none());
        let a = t.advance(flow(9), Side::Client, &restarted);
        assert_eq!(a.delta, counters(50, 50));
        assert!(a.previous.is_none() && a.stale.is_some());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn bounded_with_evictions_reported() {
        let mut t = DeltaTracker::new(2);
        let mut evicted = 0;
        for id in 0..5 {
            let out = t.advance(flow(id), Side::Client, &seen(counters(1, 1), false, false));
            evicted += usize::from(out.evicted.is_some());
        }
        assert_eq!((t.len(), evicted), (2, 3));
    }
}
