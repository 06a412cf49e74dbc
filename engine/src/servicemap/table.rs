//! The bounded edge table: a hash map with two approximate-LRU queues (CLOCK / second chance,
//! like [`crate::bounded`]), one for *undecided* edges and one for decided (allowed or denied)
//! edges. To make room an undecided edge goes first; a decided one only when no undecided edge
//! is left. So a flood of unique edges (a port scan after learning) recycles its own undecided
//! edges and never pushes out what was learned or declared.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::edge::{Edge, Status};

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
    touched: u64,
    queued: u64,
    class: Class,
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

/// The bounded edge table.
pub struct EdgeTable {
    map: HashMap<u64, Slot, ahash::RandomState>,
    queues: [VecDeque<(u64, u64)>; 2],
    tick: u64,
    capacity: usize,
    /// What was evicted or expired.
    pub evictions: EdgeEvictions,
}

impl EdgeTable {
    /// A table of at most `capacity` edges.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            queues: [VecDeque::new(), VecDeque::new()],
            tick: 0,
            capacity: capacity.max(1),
            evictions: EdgeEvictions::default(),
        }
    }

    /// Most edges kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Edges held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no edge is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The edge `id`.
    pub fn get(&self, id: u64) -> Option<&Edge> {
        self.map.get(&id).map(|s| &s.edge)
    }

    /// The edge `id`, mutably, counting as a use. Call [`Self::requeue`] after changing its
    /// status.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Edge> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&id).map(|s| {
            s.touched = tick;
            &mut s.edge
        })
    }

    /// Every edge, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Edge> {
        self.map.values().map(|s| &s.edge)
    }

    /// Ids of every edge.
    pub fn ids(&self) -> Vec<u64> {
        self.map.keys().copied().collect()
    }

    /// Inserts a new edge (its id must not be present), evicting first when full.
    pub fn insert(&mut self, edge: Edge) {
        if self.map.len() >= self.capacity {
            self.evict_one();
        }
        self.tick += 1;
        let class = class_of(edge.status);
        let id = edge.id;
        self.map.insert(
            id,
            Slot {
                edge,
                touched: self.tick,
                queued: self.tick,
                class,
            },
        );
        self.queues[class as usize].push_back((id, self.tick));
        self.compact_if_needed();
    }

    /// Moves `id` to the queue of its (changed) status.
    pub fn requeue(&mut self, id: u64) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(s) = self.map.get_mut(&id) {
            let class = class_of(s.edge.status);
            if class != s.class {
                s.class = class;
                s.queued = tick;
                s.touched = tick;
                self.queues[class as usize].push_back((id, tick));
            }
        }
        self.compact_if_needed();
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: u64) -> Option<Edge> {
        let e = self.map.remove(&id).map(|s| s.edge);
        self.compact_if_needed();
        e
    }

    /// Forgets edges last seen before `cutoff_ns` (flow time); returns how many.
    pub fn expire(&mut self, cutoff_ns: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, s| s.edge.last_seen_ns >= cutoff_ns);
        let n = before - self.map.len();
        self.evictions.expired += n as u64;
        self.compact_if_needed();
        n
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
        while let Some((id, queued)) = self.queues[q].pop_front() {
            let Some(slot) = self.map.get_mut(&id) else {
                continue;
            };
            if slot.class != class || slot.queued != queued {
                continue;
            }
            if slot.touched > slot.queued {
                // Second chance.
                self.tick += 1;
                slot.queued = self.tick;
                self.queues[q].push_back((id, self.tick));
                continue;
            }
            self.map.remove(&id);
            return true;
        }
        false
    }

    fn compact_if_needed(&mut self) {
        let live = self.map.len();
        if self.queues[0].len() + self.queues[1].len() <= 2 * live + 64 {
            return;
        }
        let mut entries: Vec<(u64, u64, Class)> = self
            .map
            .iter()
            .map(|(id, s)| (*id, s.queued, s.class))
            .collect();
        entries.sort_unstable_by_key(|e| e.1);
        self.queues = [VecDeque::new(), VecDeque::new()];
        for (id, queued, class) in entries {
            self.queues[class as usize].push_back((id, queued));
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
    }
}
