//! Hosts: what the engine knows about each (address, VLAN) and each observation point.
//!
//! Owns the bounded host table ([`HostTable`]), the per-(flow, side) counter snapshots that turn
//! a record's cumulative counters into host deltas ([`DeltaTracker`]), and the per-observation
//! point totals ([`PointTable`]). Pure data structures: no I/O, no clock, no locks — the ingest
//! stage drives them under the state lock.

mod deltas;
mod host;
mod points;
mod table;

pub use deltas::{Advance, Counters, DeltaTracker, Observation, Snapshot};
pub use host::{
    Host, HostUpdate, MAX_HOST_PEERS, MAX_HOST_POINTS, MAX_HOST_PROTOCOLS, PeerCount, ProtocolCount,
};
pub use points::{PointKey, PointTable, PointTotals, follow_point_stats, point_label};
pub use table::{DEFAULT_MAX_HOSTS, HostTable};

use std::net::IpAddr;

use serde::Serialize;

/// A host is an address on a VLAN (the same private address on two VLANs is two hosts).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HostKey {
    /// The address.
    pub ip: IpAddr,
    /// The innermost 802.1Q VLAN id, 0 when untagged.
    pub vlan: u32,
}

/// Which end of a flow a host is.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the flow.
    Client,
    /// The side that answered.
    Server,
}
