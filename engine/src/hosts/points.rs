//! Per-observation-point totals: where traffic was seen (a sensor interface, or an exporter and
//! its observation domain).

use std::hash::{Hash, Hasher};

use netwarden_api::flow::ObservationPoint;
use serde::Serialize;

use crate::bounded::BoundedMap;
use crate::hosts::Counters;

/// Observation points remembered by default.
pub const DEFAULT_MAX_POINTS: usize = 4096;

/// A compact, `Copy` identity of an observation point (a hash of its fields).
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct PointKey(pub u64);

impl PointKey {
    /// The key of `point` (an absent point is the empty one).
    pub fn of(point: Option<&ObservationPoint>) -> Self {
        // SipHash with fixed keys: stable within the process, which is all a key needs.
        let mut h = std::hash::DefaultHasher::new();
        if let Some(p) = point {
            p.sensor.hash(&mut h);
            p.interface.hash(&mut h);
            p.exporter.hash(&mut h);
            p.domain_id.hash(&mut h);
        }
        Self(h.finish())
    }
}

/// The name of a point in the API and reports: `sensor/interface` for captured traffic,
/// `sensor/exporter/domain` for exported flows.
pub fn point_label(point: &ObservationPoint) -> String {
    if point.exporter.is_empty() {
        format!("{}/{}", point.sensor, point.interface)
    } else {
        format!("{}/{}/{}", point.sensor, point.exporter, point.domain_id)
    }
}

/// Totals of one observation point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PointTotals {
    /// `sensor/interface` or `sensor/exporter/domain` (see [`point_label`]).
    pub name: String,
    /// Sensor node name.
    pub sensor: String,
    /// Capture interface or pcap file name.
    pub interface: String,
    /// Exporter address, empty for captured traffic.
    pub exporter: String,
    /// Observation domain / source id.
    pub domain_id: u32,
    /// Bytes of the flows seen here (both directions).
    pub bytes: u64,
    /// Packets of the flows seen here.
    pub packets: u64,
    /// Flows seen here.
    pub flows: u64,
    /// Hosts of the host table seen here.
    pub hosts: u64,
    /// First packet, ns since the Unix epoch.
    pub first_seen_ns: u64,
    /// Last packet, ns since the Unix epoch.
    pub last_seen_ns: u64,
}

impl PointTotals {
    fn new(point: &ObservationPoint) -> Self {
        Self {
            name: point_label(point),
            sensor: point.sensor.clone(),
            interface: point.interface.clone(),
            exporter: point.exporter.clone(),
            domain_id: point.domain_id,
            bytes: 0,
            packets: 0,
            flows: 0,
            hosts: 0,
            first_seen_ns: u64::MAX,
            last_seen_ns: 0,
        }
    }

    /// Whether a filter value names this point: its full name, or its sensor name.
    pub fn matches(&self, filter: &str) -> bool {
        self.name == filter || self.sensor == filter
    }
}

/// The bounded table of observation points.
pub struct PointTable {
    points: BoundedMap<PointKey, PointTotals>,
}

impl Default for PointTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_POINTS)
    }
}

impl PointTable {
    /// A table remembering at most `capacity` points.
    pub fn new(capacity: usize) -> Self {
        Self {
            points: BoundedMap::new(capacity),
        }
    }

    /// Makes sure `point` is known; returns its key and whether a point had to be evicted.
    pub fn touch(&mut self, point: Option<&ObservationPoint>) -> (PointKey, bool) {
        let key = PointKey::of(point);
        if self.points.contains_key(&key) {
            return (key, false);
        }
        let fresh = PointTotals::new(point.unwrap_or(&ObservationPoint::default()));
        (key, self.points.insert(key, fresh).is_some())
    }

    /// Adds one client-side record's contribution.
    pub fn apply(
        &mut self,
        key: PointKey,
        delta: Counters,
        new_flow: bool,
        first_seen_ns: u64,
        last_seen_ns: u64,
    ) {
        if let Some(p) = self.points.get_mut(&key) {
            p.bytes = p.bytes.saturating_add(delta.bytes());
            p.packets = p.packets.saturating_add(delta.packets());
            p.flows += u64::from(new_flow);
            if first_seen_ns != 0 {
                p.first_seen_ns = p.first_seen_ns.min(first_seen_ns);
            }
            p.last_seen_ns = p.last_seen_ns.max(last_seen_ns);
        }
    }

    /// Adjusts the host count of `key` by +1 or -1.
    pub fn count_host(&mut self, key: PointKey, added: bool) {
        if let Some(p) = self.points.get_mut(&key) {
            p.hosts = if added {
                p.hosts + 1
            } else {
                p.hosts.saturating_sub(1)
            };
        }
    }

    /// The totals of `key`.
    pub fn get(&self, key: PointKey) -> Option<&PointTotals> {
        self.points.peek(&key)
    }

    /// Every point, by name.
    pub fn sorted(&self) -> Vec<&PointTotals> {
        let mut all: Vec<_> = self.points.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Keys of the points a filter value names.
    pub fn matching(&self, filter: &str) -> Vec<PointKey> {
        self.points
            .iter()
            .filter(|(_, p)| p.matches(filter))
            .map(|(k, _)| *k)
            .collect()
    }

    /// How many points are known.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is known.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}
