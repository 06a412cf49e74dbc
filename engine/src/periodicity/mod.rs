//! Periodicity: which (client, server, port, protocol) pairs open flows at a steady period —
//! beaconing (REFERENCE.md §5: ntopng's PeriodicityMap, nDPI's `PERIODIC_FLOW` risk).
//!
//! Owns: the bounded [`PeriodicityMap`] (idle entries expire after 1 h of flow time, the least
//! recently used go first when it is full, both counted), the per-pair detector
//! ([`Detector`]: period, jitter, observations) and the changes it reports ([`Change`]:
//! `periodic`, `changed`, `no longer periodic`). Pure: fed flow starts in flow time by `state`
//! (through [`crate::servicemap`]), no clock, no I/O. Must not: raise alerts itself (the
//! service-map hook turns a periodic pair into `periodic_flow` and a change into
//! `periodicity_changed` on the flow that revealed it).
//!
//! How a period is found: the interval between two flow starts of a pair is compared with the
//! current period; within the tolerance (25 % of the period, at least 1 s) it is one more
//! observation and the period and jitter follow it (running means). After
//! [`PeriodicityConfig::min_observations`] consistent intervals the pair is periodic. Intervals
//! that do not fit are collected as a candidate period; when as many fit the candidate, the
//! period changed (or, if the pair was not periodic yet, became this one). A periodic pair that
//! sees that many intervals that fit nothing, or no flow for 3 periods, is no longer periodic.
//! A flow starting less than 1 s after the previous one continues its burst (parallel
//! connections); intervals are measured between burst starts, so a pair with flows every few
//! milliseconds is one endless burst and never periodic.

pub mod api;

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

const SEC: u64 = 1_000_000_000;

/// Periodicity map settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeriodicityConfig {
    /// Most pairs tracked (0: the service map's size).
    pub max_entries: usize,
    /// A pair idle this long (flow time, seconds) is forgotten (ntopng: 1 h).
    pub idle_secs: u64,
    /// Consistent intervals before a pair counts as periodic (and before a new period replaces
    /// the old one).
    pub min_observations: u32,
    /// Tolerance of an interval around the period, percent of the period.
    pub tolerance_pct: u8,
}

impl Default for PeriodicityConfig {
    fn default() -> Self {
        Self {
            max_entries: 0,
            idle_secs: 3600,
            min_observations: 4,
            tolerance_pct: 25,
        }
    }
}

/// A pair whose flows may be periodic. `Copy + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct PeriodKey {
    /// The client.
    #[schema(value_type = String)]
    pub client: IpAddr,
    /// The server.
    #[schema(value_type = String)]
    pub server: IpAddr,
    /// The server port.
    pub port: u16,
    /// The L4 protocol number.
    pub l4: u8,
    /// The VLAN.
    pub vlan: u16,
}

/// Where a pair stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodStatus {
    /// Not enough consistent intervals yet.
    #[default]
    Learning,
    /// Periodic.
    Periodic,
    /// Was periodic, is no longer.
    NoLongerPeriodic,
}

/// What changed for a pair (ntopng's PeriodicityChanged kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The pair became periodic at `period_ns`.
    Periodic {
        /// The period, ns.
        period_ns: u64,
    },
    /// The period moved from `from_ns` to `to_ns`.
    Changed {
        /// The old period, ns.
        from_ns: u64,
        /// The new period, ns.
        to_ns: u64,
    },
    /// The pair was periodic at `period_ns` and is no longer.
    NoLongerPeriodic {
        /// The period it had, ns.
        period_ns: u64,
    },
}

impl Change {
    /// ntopng's words: `periodic`, `changed`, `no longer periodic`.
    pub fn words(&self) -> &'static str {
        match self {
            Self::Periodic { .. } => "periodic",
            Self::Changed { .. } => "changed",
            Self::NoLongerPeriodic { .. } => "no longer periodic",
        }
    }

    /// For people: `periodic every 60.0 s`, `changed from 60.0 s to 120.0 s`...
    pub fn describe(&self) -> String {
        let s = |ns: u64| format!("{:.1} s", ns as f64 / SEC as f64);
        match *self {
            Self::Periodic { period_ns } => format!("periodic every {}", s(period_ns)),
            Self::Changed { from_ns, to_ns } => {
                format!("period changed from {} to {}", s(from_ns), s(to_ns))
            }
            Self::NoLongerPeriodic { period_ns } => {
                format!("no longer periodic (was every {})", s(period_ns))
            }
        }
    }
}

/// The detector of one pair (see the module documentation). About 100 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Detector {
    /// Start of the last burst (the flow that began it), ns.
    pub last_start_ns: u64,
    /// Start of the latest flow, ns.
    pub last_any_ns: u64,
    /// First flow start seen, ns.
    pub first_seen_ns: u64,
    /// The period, ns (0 until the first interval).
    pub period_ns: f64,
    /// Mean absolute deviation of the intervals from the period, ns.
    pub jitter_ns: f64,
    /// Consistent intervals behind the period.
    pub observations: u32,
    /// Flow starts seen.
    pub flows: u64,
    /// Where the pair stands.
    pub status: PeriodStatus,
    /// Changes reported so far.
    pub changes: u32,
    cand_ns: f64,
    cand_jitter_ns: f64,
    cand_count: u32,
    misses: u32,
}

impl Detector {
    fn fits(period: f64, d: f64, cfg: &PeriodicityConfig) -> bool {
        let tol = (period * f64::from(cfg.tolerance_pct) / 100.0).max(SEC as f64);
        (d - period).abs() <= tol
    }

    /// Feeds a flow start; returns a change when there is one.
    pub fn observe(&mut self, start_ns: u64, cfg: &PeriodicityConfig) -> Option<Change> {
        self.flows += 1;
        if self.flows == 1 {
            self.first_seen_ns = start_ns;
            self.last_start_ns = start_ns;
            self.last_any_ns = start_ns;
            return None;
        }
        // Out of order, or less than 1 s after the previous flow: the burst goes on (a pair
        // with flows every few ms is one endless burst, never periodic).
        if start_ns < self.last_any_ns.saturating_add(SEC) {
            self.last_any_ns = self.last_any_ns.max(start_ns);
            return None;
        }
        self.last_any_ns = start_ns;
        #[allow(clippy::cast_precision_loss)]
        let d = (start_ns - self.last_start_ns) as f64;
        self.last_start_ns = start_ns;
        let min = cfg.min_observations.max(2);
        if self.observations == 0 {
            self.period_ns = d;
            self.jitter_ns = 0.0;
            self.observations = 1;
            return None;
        }
        if Self::fits(self.period_ns, d, cfg) {
            self.observations += 1;
            let n = f64::from(self.observations.min(16));
            self.jitter_ns += ((d - self.period_ns).abs() - self.jitter_ns) / n;
            self.period_ns += (d - self.period_ns) / n;
            self.misses = 0;
            self.cand_count = 0;
            if self.status != PeriodStatus::Periodic && self.observations >= min {
                self.status = PeriodStatus::Periodic;
                self.changes += 1;
                return Some(Change::Periodic {
                    period_ns: self.period(),
                });
            }
            return None;
        }
        self.misses += 1;
        if self.cand_count > 0 && Self::fits(self.cand_ns, d, cfg) {
            self.cand_count += 1;
            let n = f64::from(self.cand_count.min(16));
            self.cand_jitter_ns += ((d - self.cand_ns).abs() - self.cand_jitter_ns) / n;
            self.cand_ns += (d - self.cand_ns) / n;
        } else {
            self.cand_ns = d;
            self.cand_jitter_ns = 0.0;
            self.cand_count = 1;
        }
        // The candidate counts its first interval too: `min` intervals of the new period.
        if self.cand_count >= min {
            let old = self.period();
            let was = self.status;
            self.period_ns = self.cand_ns;
            self.jitter_ns = self.cand_jitter_ns;
            self.observations = self.cand_count;
            self.cand_count = 0;
            self.misses = 0;
            self.status = PeriodStatus::Periodic;
            self.changes += 1;
            return Some(if was == PeriodStatus::Periodic {
                Change::Changed {
                    from_ns: old,
                    to_ns: self.period(),
                }
            } else {
                Change::Periodic {
                    period_ns: self.period(),
                }
            });
        }
        if self.status == PeriodStatus::Periodic && self.misses >= min {
            return Some(self.lose());
        }
        if self.status != PeriodStatus::Periodic && self.misses >= min {
            // Nothing steady: start over from this interval.
            self.period_ns = d;
            self.jitter_ns = 0.0;
            self.observations = 1;
            self.misses = 0;
            self.cand_count = 0;
        }
        None
    }

    fn lose(&mut self) -> Change {
        let period_ns = self.period();
        self.status = PeriodStatus::NoLongerPeriodic;
        self.observations = 0;
        self.misses = 0;
        self.cand_count = 0;
        self.changes += 1;
        Change::NoLongerPeriodic { period_ns }
    }

    /// The period, whole ns.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn period(&self) -> u64 {
        self.period_ns.max(0.0).round() as u64
    }

    /// The jitter, whole ns.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn jitter(&self) -> u64 {
        self.jitter_ns.max(0.0).round() as u64
    }

    /// Whether the pair is periodic now.
    pub fn is_periodic(&self) -> bool {
        self.status == PeriodStatus::Periodic
    }
}

/// A change with its pair and time, kept for `GET /api/v2/periodicity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    /// The pair.
    pub key: PeriodKey,
    /// When (flow time, ns).
    pub t_ns: u64,
    /// What changed.
    pub change: Change,
}

/// Counters of the periodicity map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeriodicityCounters {
    /// Flow starts observed.
    pub observed: u64,
    /// Pairs evicted because the map was full.
    pub evicted: u64,
    /// Pairs forgotten after being idle.
    pub expired: u64,
    /// Changes reported.
    pub changes: u64,
}

/// Changes kept for the API.
pub const RECENT_CHANGES: usize = 256;

/// The periodicity map's state: its settings, counters and latest changes. The detectors
/// themselves live in the service map's edge slots (one lookup per record for both, no second
/// table): a pair here is an edge, keyed for people by its last client and server addresses.
pub struct PeriodicityMap {
    config: PeriodicityConfig,
    /// Counters.
    pub counters: PeriodicityCounters,
    /// The latest changes, oldest first (at most [`RECENT_CHANGES`]).
    pub recent: VecDeque<ChangeEvent>,
    capacity: usize,
}

impl PeriodicityMap {
    /// The state of a map of at most `capacity` pairs (the edge table's size;
    /// `config.max_entries` is not used any more: a pair lives in its edge's slot).
    pub fn new(config: PeriodicityConfig, capacity: usize) -> Self {
        Self {
            config,
            counters: PeriodicityCounters::default(),
            recent: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PeriodicityConfig {
        &self.config
    }

    /// Most pairs kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Feeds a flow start at `start_ns` to the detector `d` of pair `key`; returns whether
    /// the pair is periodic now and the change, if any (noted in [`Self::recent`]).
    pub fn observe(
        &mut self,
        d: &mut Detector,
        key: impl FnOnce() -> PeriodKey,
        start_ns: u64,
    ) -> (bool, Option<Change>) {
        self.counters.observed += 1;
        let change = d.observe(start_ns, &self.config);
        if let Some(change) = change {
            self.note(key(), start_ns, change);
        }
        (d.is_periodic(), change)
    }

    fn note(&mut self, key: PeriodKey, t_ns: u64, change: Change) {
        self.counters.changes += 1;
        if self.recent.len() == RECENT_CHANGES {
            self.recent.pop_front();
        }
        self.recent.push_back(ChangeEvent { key, t_ns, change });
    }

    /// The sweep of one detector at flow time `now_ns` (the service map runs it over every
    /// edge at most once a minute): a pair idle for `idle_secs` is forgotten (its detector
    /// starts over), a periodic pair silent for 3 periods is no longer periodic (noted).
    pub fn sweep_one(&mut self, d: &mut Detector, key: impl FnOnce() -> PeriodKey, now_ns: u64) {
        if d.flows == 0 {
            return;
        }
        let idle = self.config.idle_secs.saturating_mul(SEC);
        let quiet = now_ns.saturating_sub(d.last_any_ns);
        if quiet > idle {
            self.counters.expired += 1;
            if d.is_periodic() {
                let period_ns = d.period();
                self.note(key(), now_ns, Change::NoLongerPeriodic { period_ns });
            }
            *d = Detector::default();
        } else if d.is_periodic() && quiet > d.period().saturating_mul(3) {
            let c = d.lose();
            self.note(key(), now_ns, c);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn feed(d: &mut Detector, starts: &[u64]) -> Vec<Change> {
        let cfg = PeriodicityConfig::default();
        starts.iter().filter_map(|s| d.observe(*s, &cfg)).collect()
    }

    #[test]
    fn steady_starts_become_periodic_after_min_observations() {
        let mut d = Detector::default();
        let starts: Vec<u64> = (0..6).map(|i| i * 60 * SEC).collect();
        let changes = feed(&mut d, &starts);
        assert_eq!(
            changes,
            vec![Change::Periodic {
                period_ns: 60 * SEC
            }]
        );
        assert_eq!((d.observations, d.jitter()), (5, 0));
    }

    #[test]
    fn bursts_do_not_count_as_intervals() {
        let mut d = Detector::default();
        let starts: Vec<u64> = (0..6)
            .flat_map(|i| [i * 30 * SEC, i * 30 * SEC + SEC / 10])
            .collect();
        feed(&mut d, &starts);
        assert!(d.is_periodic());
        assert_eq!(d.period(), 30 * SEC);
    }

    #[test]
    fn a_continuous_stream_is_not_periodic() {
        let mut d = Detector::default();
        let starts: Vec<u64> = (0..10_000).map(|i| i * SEC / 50).collect();
        assert!(feed(&mut d, &starts).is_empty());
        assert_eq!(d.observations, 0);
    }

    #[test]
    fn random_starts_are_not_periodic() {
        let mut d = Detector::default();
        let mut t = 0;
        for gap in [3, 40, 7, 90, 15, 2, 61, 5, 33, 120, 9, 4] {
            t += gap * SEC;
            d.observe(t, &PeriodicityConfig::default());
        }
        assert!(!d.is_periodic());
    }

    #[test]
    fn silent_pairs_are_no_longer_periodic_and_idle_ones_expire() {
        let mut m = PeriodicityMap::new(PeriodicityConfig::default(), 16);
        let key = || PeriodKey {
            client: "10.0.0.1".parse().unwrap(),
            server: "10.0.0.2".parse().unwrap(),
            port: 443,
            l4: 6,
            vlan: 0,
        };
        let mut d = Detector::default();
        for i in 0..6 {
            m.observe(&mut d, key, i * 60 * SEC);
        }
        assert!(d.is_periodic());
        m.sweep_one(&mut d, key, 600 * SEC);
        assert_eq!(d.status, PeriodStatus::NoLongerPeriodic);
        assert_eq!(
            m.recent.back().unwrap().change,
            Change::NoLongerPeriodic {
                period_ns: 60 * SEC
            }
        );
        m.sweep_one(&mut d, key, 2 * 3600 * SEC);
        assert_eq!(d.flows, 0);
        assert_eq!(m.counters.expired, 1);
    }
}
