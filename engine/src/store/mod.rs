//! The flow store: the latest record of every active flow, and a bounded history of ended
//! flows for drill-down, plus running totals per L4 and L7 protocol.
//!
//! Both tables are bounded: the active table evicts its least recently updated flow when full,
//! the history ring drops its oldest ended flow. The caller counts what left. With `--data DIR`
//! every ended flow also goes to the persistent store ([`db`]), whose history is bounded by its
//! own retention (age, rows, bytes) and serves `GET /api/v2/flows/history`.

pub mod db;
pub mod history;
mod protocols;

pub use protocols::{ProtocolTotals, ProtocolTotalsRow};

use std::collections::VecDeque;

use netwarden_api::flow::FlowRecord;

use crate::bounded::BoundedMap;
use crate::hosts::PointKey;

/// Active flows remembered by default.
pub const DEFAULT_MAX_ACTIVE_FLOWS: usize = 512 * 1024;
/// Ended flows remembered by default.
pub const DEFAULT_HISTORY: usize = 100_000;

/// A flow's identity: its observation point and the id the sensor gave it there.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// Where the flow was observed.
    pub point: PointKey,
    /// The sensor's id of the flow at that point.
    pub flow_id: u64,
}

/// Whether a stored flow is active or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Its final record has not arrived.
    Active,
    /// Its final record arrived.
    Ended,
}

/// What [`FlowStore::apply`] pushed out of the tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreEvictions {
    /// An active flow was evicted to make room.
    pub active: bool,
    /// The oldest ended flow left the history.
    pub history: bool,
}

/// Active flows and the history of ended ones.
pub struct FlowStore {
    active: BoundedMap<FlowKey, FlowRecord>,
    history: VecDeque<FlowRecord>,
    history_capacity: usize,
    sink: Option<db::StoreSink>,
}

impl Default for FlowStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ACTIVE_FLOWS, DEFAULT_HISTORY)
    }
}

impl FlowStore {
    /// A store of at most `max_active` active flows and `history` ended ones.
    pub fn new(max_active: usize, history: usize) -> Self {
        Self {
            active: BoundedMap::new(max_active),
            history: VecDeque::new(),
            history_capacity: history,
            sink: None,
        }
    }

    /// Hands every ended flow to `sink` (the persistent store) from now on.
    pub fn attach(&mut self, sink: db::StoreSink) {
        self.sink = Some(sink);
    }

    /// Whether ended flows also go to the persistent store.
    pub fn is_persistent(&self) -> bool {
        self.sink.is_some()
    }

    /// Keeps `record` as the latest state of its flow; a final record moves the flow to the
    /// history.
    pub fn apply(&mut self, key: FlowKey, record: FlowRecord) -> StoreEvictions {
        let mut out = StoreEvictions::default();
        if record.is_final() {
            self.active.remove(&key);
            if let Some(sink) = &self.sink {
                sink.flow(&record);
            }
            if self.history_capacity == 0 {
                out.history = true;
                return out;
            }
            if self.history.len() >= self.history_capacity {
                self.history.pop_front();
                out.history = true;
            }
            self.history.push_back(record);
        } else if let Some(slot) = self.active.get_mut(&key) {
            *slot = record;
        } else {
            out.active = self.active.insert(key, record).is_some();
        }
        out
    }

    /// Active flows, in no particular order.
    pub fn active(&self) -> impl Iterator<Item = &FlowRecord> {
        self.active.values()
    }

    /// Ended flows, oldest first.
    pub fn ended(&self) -> impl Iterator<Item = &FlowRecord> {
        self.history.iter()
    }

    /// Active flows count.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Ended flows kept.
    pub fn ended_len(&self) -> usize {
        self.history.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netwarden_api::flow::FlowUpdate;

    fn record(id: u64, update: FlowUpdate) -> (FlowKey, FlowRecord) {
        let key = FlowKey {
            point: PointKey(1),
            flow_id: id,
        };
        (
            key,
            FlowRecord {
                flow_id: id,
                update: update as i32,
                ..Default::default()
            },
        )
    }

    #[test]
    fn final_moves_to_history_and_both_are_bounded() {
        let mut s = FlowStore::new(2, 2);
        for id in 0..3 {
            let (k, r) = record(id, FlowUpdate::Periodic);
            let ev = s.apply(k, r);
            assert_eq!(ev.active, id == 2);
        }
        assert_eq!(s.active_len(), 2);
        let (k, r) = record(2, FlowUpdate::Final);
        s.apply(k, r);
        assert_eq!((s.active_len(), s.ended_len()), (1, 1));
        for id in 10..12 {
            let (k, r) = record(id, FlowUpdate::Final);
            let ev = s.apply(k, r);
            assert_eq!(ev.history, id == 11);
        }
        assert_eq!(
            s.ended().map(|r| r.flow_id).collect::<Vec<_>>(),
            vec![10, 11]
        );
    }
}
