//! The bounded host table.

use crate::bounded::BoundedMap;
use crate::hosts::{Host, HostKey};

/// Hosts remembered by default.
pub const DEFAULT_MAX_HOSTS: usize = 1_000_000;

/// Hosts by (address, VLAN), bounded, least recently updated evicted first.
pub struct HostTable {
    hosts: BoundedMap<HostKey, Host>,
}

impl Default for HostTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HOSTS)
    }
}

impl HostTable {
    /// A table of at most `capacity` hosts.
    pub fn new(capacity: usize) -> Self {
        Self {
            hosts: BoundedMap::new(capacity),
        }
    }

    /// The host `key`, created when new. Returns the host evicted to make room, if any (the
    /// caller counts it and releases what it referenced).
    pub fn entry(&mut self, key: HostKey) -> (&mut Host, Option<Host>) {
        let (host, evicted) = self.hosts.get_or_insert_with(key, || Host::new(key));
        (host, evicted.map(|(_, h)| h))
    }

    /// The host `key`, if known, mutably (an access: it counts for eviction).
    pub fn get_mut(&mut self, key: &HostKey) -> Option<&mut Host> {
        self.hosts.get_mut(key)
    }

    /// Removes the host `key` (a shard handed over to another replica).
    pub fn remove(&mut self, key: &HostKey) -> Option<Host> {
        self.hosts.remove(key)
    }

    /// Puts a host back (a shard taken over); returns the host evicted to make room, if any.
    pub fn insert(&mut self, host: Host) -> Option<Host> {
        self.hosts.insert(host.key, host).map(|(_, h)| h)
    }

    /// The host `key`, if known.
    pub fn get(&self, key: &HostKey) -> Option<&Host> {
        self.hosts.peek(key)
    }

    /// Every host, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// How many hosts are known.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host is known.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}
