//! Per-observation-point totals: where traffic was seen (a sensor interface, or an exporter and
//! its observation domain).

use std::hash::{Hash, Hasher};

use netwarden_api::flow::ObservationPoint;
use netwarden_api::stats::{PointStats, PointStatsMessage};
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
    /// Export datagrams (IPFIX messages) the sensor received for this point (exported flows
    /// only; totals since the sensor started, from `nw.stats.<sensor>`).
    pub datagrams: u64,
    /// Datagrams the exporter's sequence numbers say never arrived (NetFlow v9, sFlow).
    pub lost_datagrams: u64,
    /// Records the exporter's sequence numbers say never arrived (NetFlow v5, IPFIX).
    pub lost_records: u64,
    /// Datagrams that arrived behind the expected sequence number (late or reordered).
    pub sequence_late: u64,
    /// Sequence jumps too large to be loss (exporter restarts).
    pub sequence_resets: u64,
    /// NetFlow v9 / IPFIX templates the sensor holds for this point now.
    pub templates: u64,
    /// When the sensor last reported these statistics, ns since the Unix epoch (0: never).
    pub stats_at_ns: u64,
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
            datagrams: 0,
            lost_datagrams: 0,
            lost_records: 0,
            sequence_late: 0,
            sequence_resets: 0,
            templates: 0,
            stats_at_ns: 0,
        }
    }

    /// Takes a sensor's statistics of this point (totals since the sensor started: the latest
    /// message wins).
    fn set_stats(&mut self, s: &PointStats, at_ns: u64) {
        self.datagrams = s.datagrams;
        self.lost_datagrams = s.lost_datagrams;
        self.lost_records = s.lost_records;
        self.sequence_late = s.sequence_late;
        self.sequence_resets = s.sequence_resets;
        self.templates = s.templates;
        self.stats_at_ns = at_ns;
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

    /// Folds a sensor's per-point statistics in: each point (created when no flow named it
    /// yet, so loss shows before the first record) takes the message's totals. Returns how many
    /// points had to be evicted to make room.
    pub fn apply_stats(&mut self, msg: &PointStatsMessage) -> u64 {
        let mut evicted = 0;
        for s in &msg.points {
            let point = ObservationPoint {
                sensor: msg.sensor.clone(),
                interface: String::new(),
                exporter: s.exporter.clone(),
                domain_id: s.domain_id,
            };
            let (key, gone) = self.touch(Some(&point));
            evicted += u64::from(gone);
            if let Some(p) = self.points.get_mut(&key) {
                p.set_stats(s, msg.sent_ns);
            }
        }
        evicted
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

/// Subscribes `engine` to every sensor's point statistics (`nw.stats.>`) and folds each
/// message into its observation points until `shutdown` (or the bus closes). Subscribes before
/// returning, so nothing published after the call is missed. Bad messages are counted in the
/// logs (debug) and skipped.
pub async fn follow_point_stats(
    engine: crate::Engine,
    bus: std::sync::Arc<dyn netwarden_api::bus::Bus>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    use futures::StreamExt;
    let mut stream = match bus
        .subscribe(netwarden_api::stats::STATS_ALL.to_owned())
        .await
    {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to point statistics");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut rejected = 0u64;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    match PointStatsMessage::decode(&msg.payload) {
                        Ok(stats) => {
                            let mut state = engine
                                .state
                                .write()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            state.points.apply_stats(&stats);
                        }
                        Err(error) => {
                            rejected += 1;
                            tracing::debug!(%error, rejected, "point statistics message rejected");
                        }
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_create_and_update_points() {
        let mut t = PointTable::new(8);
        let msg = |lost: u64| PointStatsMessage {
            sensor: "s1".into(),
            sent_ns: 5,
            points: vec![PointStats {
                exporter: "192.0.2.9".into(),
                domain_id: 3,
                datagrams: 10,
                lost_datagrams: lost,
                templates: 2,
                ..PointStats::default()
            }],
        };
        assert_eq!(t.apply_stats(&msg(4)), 0);
        let all = t.sorted();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "s1/192.0.2.9/3");
        assert_eq!((all[0].lost_datagrams, all[0].templates), (4, 2));
        // The same point as flow records name it.
        let point = ObservationPoint {
            sensor: "s1".into(),
            interface: String::new(),
            exporter: "192.0.2.9".into(),
            domain_id: 3,
        };
        let (key, _) = t.touch(Some(&point));
        t.apply_stats(&msg(7));
        let p = t.get(key).expect("point");
        assert_eq!((p.lost_datagrams, p.datagrams, p.stats_at_ns), (7, 10, 5));
        assert_eq!(t.len(), 1);
    }
}
