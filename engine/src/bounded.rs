//! A hash map with a fixed capacity and approximate-LRU eviction (the CLOCK / second-chance
//! scheme): every table of the engine (hosts, active flows, counter snapshots, observation
//! points) is one of these, so none can grow without bound.
//!
//! Each entry sits once in a FIFO queue with the tick at which it was queued. To make room the
//! oldest queue entry is examined: if its entry was touched since it was queued it goes to the
//! back (second chance), otherwise it is evicted. Removals leave stale queue entries that are
//! skipped and compacted away, so every operation is O(1) amortised.

use std::collections::VecDeque;
use std::hash::Hash;

use hashbrown::HashMap;

struct Slot<V> {
    value: V,
    /// Tick of the last access.
    touched: u64,
    /// Tick of this entry's (only valid) queue element.
    queued: u64,
}

/// A bounded map with approximate-LRU eviction.
pub struct BoundedMap<K, V> {
    map: HashMap<K, Slot<V>, ahash::RandomState>,
    order: VecDeque<(K, u64)>,
    tick: u64,
    capacity: usize,
}

impl<K: Copy + Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            order: VecDeque::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// How many entries the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key`, without counting as an access.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of `key`, mutably, counting as an access.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|s| {
            s.touched = tick;
            &mut s.value
        })
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let value = self.map.remove(key).map(|s| s.value);
        self.compact_if_needed();
        value
    }

    /// Inserts `value` under `key` (replacing any previous value). When the map is full, the
    /// least recently used entry is evicted first and returned.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.map.get_mut(&key) {
            slot.value = value;
            slot.touched = tick;
            return None;
        }
        let evicted = if self.map.len() >= self.capacity {
            self.evict_one()
        } else {
            None
        };
        self.map.insert(
            key,
            Slot {
                value,
                touched: tick,
                queued: tick,
            },
        );
        self.order.push_back((key, tick));
        evicted
    }

    /// The value of `key` (an access), inserted with `make` when missing. When the map is full
    /// the least recently used entry is evicted first and returned.
    pub fn get_or_insert_with(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(K, V)>) {
        self.tick += 1;
        let tick = self.tick;
        // The length test first: only a full map pays a second probe for the key.
        let evicted = if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            self.evict_one()
        } else {
            None
        };
        let slot = match self.map.entry(key) {
            hashbrown::hash_map::Entry::Occupied(o) => o.into_mut(),
            hashbrown::hash_map::Entry::Vacant(v) => {
                self.order.push_back((key, tick));
                v.insert(Slot {
                    value: make(),
                    touched: tick,
                    queued: tick,
                })
            }
        };
        slot.touched = tick;
        (&mut slot.value, evicted)
    }

    /// Iterates over every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// Iterates over every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|s| &s.value)
    }

    fn evict_one(&mut self) -> Option<(K, V)> {
        while let Some((key, queued)) = self.order.pop_front() {
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            if slot.queued != queued {
                continue; // stale: the key was removed and inserted again
            }
            if slot.touched > queued {
                // Used since it was queued: second chance at the back of the queue.
                self.tick += 1;
                slot.queued = self.tick;
                slot.touched = self.tick;
                self.order.push_back((key, self.tick));
                continue;
            }
            return self.map.remove(&key).map(|s| (key, s.value));
        }
        None
    }

    fn compact_if_needed(&mut self) {
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(k, q)| map.get(k).is_some_and(|s| s.queued == *q));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_capacity_and_reports_evictions() {
        let mut m = BoundedMap::new(3);
        let mut evicted = Vec::new();
        for k in 0..10u32 {
            evicted.extend(m.insert(k, k * 10));
            assert!(m.len() <= 3);
        }
        assert_eq!(evicted.len(), 7);
        assert_eq!(evicted[0], (0, 0));
    }

    #[test]
    fn recently_used_entries_survive() {
        let mut m = BoundedMap::new(3);
        m.insert(1, ());
        m.insert(2, ());
        m.insert(3, ());
        m.get_mut(&1);
        let evicted = m.insert(4, ());
        assert_eq!(evicted.map(|e| e.0), Some(2));
        assert!(m.contains_key(&1));
    }

    #[test]
    fn removals_do_not_leak_queue_entries() {
        let mut m = BoundedMap::new(10);
        for k in 0..100_000u64 {
            m.insert(k, ());
            m.remove(&k);
        }
        assert!(m.is_empty());
        assert!(m.order.len() <= 1024 + 1);
        // Re-inserted keys are evicted once, in order.
        for k in 0..12u64 {
            m.insert(k % 11, ());
        }
        assert_eq!(m.len(), 10);
    }
}
