//! The bounded edge table: a slab of slots, one per edge, each holding the edge **and its
//! periodicity detector** (one lookup per record for both), indexed by a hash table of slot
//! numbers, with two approximate-LRU queues (CLOCK / second chance, like [`crate::bounded`]):
//! one for *undecided* edges and one for decided (allowed or denied) edges. To make room an
//! undecided edge goes first; a decided one only when no undecided edge is left. So a flood of
//! unique edges (a port scan after learning) recycles its own undecided edges and never pushes
//! out what was learned or declared.
//!
//! The slab is allocated as edges arrive, never beyond the capacity, and a freed slot is
//! reused by the next edge, so memory per edge is the slot (the edge, its detector and two
//! ticks) plus four bytes of index (docs/PERFORMANCE.md: memory per edge). A one-slot hint
//! makes the second lookup of a record (its traffic, right after its observation) free.

use std::collections::VecDeque;

use hashbrown::HashTable;

use super::edge::{Edge, Status};
use crate::periodicity::Detector;

/// Which queue an edge sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Undecided = 0,
    Decided = 1,
}

fn class_of(status: Status) -> Class {
    if status == Status::Undecided {
        Class::Undecided
    } else {
        Class::Decided
    }
}

struct Slot {
    edge: Edge,
    /// The periodicity of the edge's flows.
    period: Detector,
    touched: u64,
    queued: u64,
    class: Class,
    /// False once removed (the slot waits in the free list).
    live: bool,
}

/// What made room in the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EdgeEvictions {
    /// Undecided edges evicted.
    pub undecided: u64,
    /// Allowed or denied edges evicted (only when no undecided edge was left).
    pub decided: u64,
    /// Edges forgotten after being idle.
    pub expired: u64,
}

/// Most removed edge ids remembered for [`EdgeTable::take_removed`].
const MAX_REMOVED: usize = 1 << 16;

/// The bounded edge table.
pub struct EdgeTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    queues: [VecDeque<(u32, u64)>; 2],
    tick: u64,
    capacity: usize,
    live: usize,
    /// The slot of the latest lookup.
    hint: u32,
    /// Ids of edges evicted or expired since the last [`Self::take_removed`], when tracked.
    removed: Option<Vec<u64>>,
    /// What was evicted or expired.
    pub evictions: EdgeEvictions,
    /// Evicted edges whose periodicity detector had seen flows.
    pub detectors_evicted: u64,
}

impl EdgeTable {
    /// A table of at most `capacity` edges (at most 2³² − 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: ahash::RandomState::new(),
            queues: [VecDeque::new(), VecDeque::new()],
            tick: 0,
            capacity: capacity.clamp(1, u32::MAX as usize),
            live: 0,
            hint: u32::MAX,
            removed: None,
            evictions: EdgeEvictions::default(),
            detectors_evicted: 0,
        }
    }

    /// Most edges kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Edges held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no edge is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, id: u64) -> Option<usize> {
        if let Some(s) = self.slots.get(self.hint as usize)
            && s.live
            && s.edge.id == id
        {
            return Some(self.hint as usize);
        }
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(id), |&i| {
                slots[i as usize].edge.id == id
            })
            .map(|&i| i as usize)
    }

    /// The edge `id`.
    pub fn get(&self, id: u64) -> Option<&Edge> {
        self.find(id).map(|i| &self.slots[i].edge)
    }

    /// The periodicity detector of edge `id`.
    pub fn detector(&self, id: u64) -> Option<&Detector> {
        self.find(id).map(|i| &self.slots[i].period)
    }

    /// The edge `id`, mutably, counting as a use. Call [`Self::requeue`] after changing its
    /// status.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Edge> {
        self.get_both_mut(id).map(|(e, _)| e)
    }

    /// The edge `id` and its periodicity detector, mutably, counting as a use.
    pub fn get_both_mut(&mut self, id: u64) -> Option<(&mut Edge, &mut Detector)> {
        let i = self.find(id)?;
        self.tick += 1;
        self.hint = i as u32;
        let s = &mut self.slots[i];
        s.touched = self.tick;
        Some((&mut s.edge, &mut s.period))
    }

    /// Every edge, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Edge> {
        self.slots.iter().filter(|s| s.live).map(|s| &s.edge)
    }

    /// Every edge with its periodicity detector, in no particular order.
    pub fn iter_with_detectors(&self) -> impl Iterator<Item = (&Edge, &Detector)> {
        self.slots
            .iter()
            .filter(|s| s.live)
            .map(|s| (&s.edge, &s.period))
    }

    /// Ids of every edge.
    pub fn ids(&self) -> Vec<u64> {
        self.iter().map(|e| e.id).collect()
    }

    /// Inserts a new edge (its id must not be present), evicting first when full.
    pub fn insert(&mut self, edge: Edge) {
        self.insert_new(edge);
    }

    /// Inserts a new edge (its id must not be present), evicting first when full; returns it
    /// and its (fresh) periodicity detector.
    pub fn insert_new(&mut self, edge: Edge) -> (&mut Edge, &mut Detector) {
        if self.live >= self.capacity {
            self.evict_one();
        }
        self.tick += 1;
        let tick = self.tick;
        let class = class_of(edge.status);
        let slot = Slot {
            edge,
            period: Detector::default(),
            touched: tick,
            queued: tick,
            class,
            live: true,
        };
        let i = if let Some(i) = self.free.pop() {
            self.slots[i as usize] = slot;
            i
        } else {
            self.slots.push(slot);
            // The capacity bounds the slab below u32::MAX.
            #[allow(clippy::cast_possible_truncation)]
            let i = (self.slots.len() - 1) as u32;
            i
        };
        let id = self.slots[i as usize].edge.id;
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hasher.hash_one(id), i, |&j| {
            hasher.hash_one(slots[j as usize].edge.id)
        });
        self.live += 1;
        self.hint = i;
        self.queues[class as usize].push_back((i, tick));
        self.compact_if_needed();
        let s = &mut self.slots[i as usize];
        (&mut s.edge, &mut s.period)
    }

    /// Moves `id` to the queue of its (changed) status.
    pub fn requeue(&mut self, id: u64) {
        let Some(i) = self.find(id) else {
            return;
        };
        self.tick += 1;
        let tick = self.tick;
        let s = &mut self.slots[i];
        let class = class_of(s.edge.status);
        if class != s.class {
            s.class = class;
            s.queued = tick;
            s.touched = tick;
            #[allow(clippy::cast_possible_truncation)]
            self.queues[class as usize].push_back((i as u32, tick));
        }
        self.compact_if_needed();
    }

    /// Frees slot `i` (live) and returns its edge id.
    fn free_slot(&mut self, i: usize) -> u64 {
        let id = self.slots[i].edge.id;
        let hash = self.hasher.hash_one(id);
        #[allow(clippy::cast_possible_truncation)]
        let n = i as u32;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == n) {
            entry.remove();
        }
        self.slots[i].live = false;
        self.free.push(n);
        self.live -= 1;
        if let Some(r) = self.removed.as_mut()
            && r.len() < MAX_REMOVED
        {
            r.push(id);
        }
        id
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: u64) -> Option<Edge> {
        let i = self.find(id)?;
        let e = self.slots[i].edge.clone();
        self.free_slot(i);
        self.compact_if_needed();
        Some(e)
    }

    /// Forgets edges last seen before `cutoff_ns` (flow time); returns how many.
    pub fn expire(&mut self, cutoff_ns: u64) -> usize {
        self.sweep(cutoff_ns, |_, _| {})
    }

    /// Visits every edge with its detector (`visit`), then forgets those last seen before
    /// `cutoff_ns` (flow time); returns how many were forgotten. One pass over the slab.
    pub fn sweep(&mut self, cutoff_ns: u64, mut visit: impl FnMut(&Edge, &mut Detector)) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if !s.live {
                continue;
            }
            visit(&s.edge, &mut s.period);
            if s.edge.last_seen_ns < cutoff_ns {
                self.free_slot(i);
                n += 1;
            }
        }
        self.evictions.expired += n as u64;
        self.compact_if_needed();
        n
    }

    /// Starts (or stops) remembering the ids of edges that leave the table (evicted, expired
    /// or removed), for deleting them from `nw-servicemap`.
    pub fn track_removed(&mut self, on: bool) {
        self.removed = on.then(Vec::new);
    }

    /// The ids of edges that left the table since the last call (at most 65,536 are kept
    /// between calls; more are not remembered).
    pub fn take_removed(&mut self) -> Vec<u64> {
        self.removed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn evict_one(&mut self) {
        for class in [Class::Undecided, Class::Decided] {
            if self.evict_from(class) {
                match class {
                    Class::Undecided => self.evictions.undecided += 1,
                    Class::Decided => self.evictions.decided += 1,
                }
                return;
            }
        }
    }

    fn evict_from(&mut self, class: Class) -> bool {
        let q = class as usize;
        while let Some((i, queued)) = self.queues[q].pop_front() {
            let slot = &mut self.slots[i as usize];
            if !slot.live || slot.class != class || slot.queued != queued {
                continue;
            }
            if slot.touched > slot.queued {
                // Second chance.
                self.tick += 1;
                slot.queued = self.tick;
                self.queues[q].push_back((i, self.tick));
                continue;
            }
            self.detectors_evicted += u64::from(slot.period.flows > 0);
            self.free_slot(i as usize);
            return true;
        }
        false
    }

    fn compact_if_needed(&mut self) {
        if self.queues[0].len() + self.queues[1].len() <= 2 * self.live + 64 {
            return;
        }
        let mut entries: Vec<(u32, u64, Class)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| {
                #[allow(clippy::cast_possible_truncation)]
                let i = i as u32;
                (i, s.queued, s.class)
            })
            .collect();
        entries.sort_unstable_by_key(|e| e.1);
        self.queues = [VecDeque::new(), VecDeque::new()];
        for (i, queued, class) in entries {
            self.queues[class as usize].push_back((i, queued));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::servicemap::edge::{Learned, Node};

    fn edge(id: u64, status: Status) -> Edge {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        Edge {
            id,
            client: Node::Host { ip },
            server: Node::Host { ip },
            port: 80,
            l4: 6,
            l7: "HTTP".into(),
            vlan: 0,
            observation_point: "".into(),
            first_seen_ns: 0,
            last_seen_ns: id,
            flows: 1,
            bytes_c2s: 0,
            bytes_s2c: 0,
            remote: [0; 3],
            status,
            learned: Learned::DuringLearning,
            policy: None,
            client_ip: ip,
            server_ip: ip,
        }
    }

    #[test]
    fn undecided_edges_go_first_then_the_least_recently_used() {
        let mut t = EdgeTable::new(4);
        t.track_removed(true);
        t.insert(edge(1, Status::Allowed));
        t.insert(edge(2, Status::Undecided));
        t.insert(edge(3, Status::Denied));
        t.insert(edge(4, Status::Undecided));
        t.insert(edge(5, Status::Undecided));
        assert!(t.get(2).is_none() && t.get(1).is_some() && t.get(3).is_some());
        // Decided: 4 no longer counts as undecided, so 5 goes next.
        t.get_mut(4).unwrap().status = Status::Allowed;
        t.requeue(4);
        t.insert(edge(6, Status::Allowed));
        assert!(t.get(5).is_none());
        assert_eq!(t.evictions.undecided, 2);
        // Only decided edges left: the least recently used goes (1 was used last).
        t.get_mut(1);
        t.insert(edge(7, Status::Allowed));
        assert_eq!(t.len(), 4);
        assert_eq!(t.evictions.decided, 1);
        assert!(t.get(1).is_some() && t.get(3).is_none());
        assert_eq!(t.expire(5), 2);
        assert_eq!(t.evictions.expired, 2);
        assert_eq!(t.take_removed(), vec![2, 5, 3, 1, 4]);
        assert!(t.take_removed().is_empty());
        let mut left = t.ids();
        left.sort_unstable();
        assert_eq!(left, vec![6, 7]);
    }

    #[test]
    fn slots_are_reused_and_the_slab_never_outgrows_the_capacity() {
        let mut t = EdgeTable::new(8);
        for id in 0..1000 {
            t.insert(edge(id * 7919 + 1, Status::Undecided));
            assert!(t.len() <= 8 && t.slots.len() <= 8);
        }
        for id in 992..1000 {
            assert_eq!(t.get(id * 7919 + 1).unwrap().id, id * 7919 + 1);
        }
        assert_eq!(t.evictions.undecided, 992);
        assert!(t.queues[0].len() <= 2 * 8 + 64);
        assert_eq!(t.remove(999 * 7919 + 1).unwrap().id, 999 * 7919 + 1);
        assert!(t.get(999 * 7919 + 1).is_none());
        assert_eq!(t.len(), 7);
    }
}
