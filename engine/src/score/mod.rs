//! The score (REFERENCE.md §2): a live gauge per host, client and server, each split network
//! and security, rolled up to observation points (= capture interfaces / exporters) and local
//! networks. Every point is held as a named [`Contribution`], so the breakdown explains the
//! whole score.
//!
//! Flow contributions leave when the flow ends; host-alert contributions leave on release.
//! A decrease is applied linearly over [`DECAY_NS`]; an increase cancels the pending decay.
//! Time is flow time (record timestamps), so a pcap replay gives the same scores every time.

use std::collections::HashMap;
use std::net::IpAddr;

use netwarden_api::alert::Entity;
use serde::Serialize;

use crate::bounded::BoundedMap;
use crate::checks::{Cidr, ScoreKind};
use crate::hosts::{HostKey, PointKey, Side};

/// How long a decrease takes to apply (ntopng's `ScoreCounter`).
pub const DECAY_NS: u64 = 60_000_000_000;
/// Contributions listed per host; points beyond are counted in `omitted_points`.
pub const MAX_CONTRIBUTIONS: usize = 256;

/// A gauge whose decreases are spread linearly over [`DECAY_NS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauge {
    target: u64,
    from: u64,
    start_ns: u64,
}

impl Gauge {
    /// The value at `now_ns`.
    pub fn value(&self, now_ns: u64) -> u64 {
        if self.from <= self.target {
            return self.target;
        }
        let gone = now_ns.saturating_sub(self.start_ns);
        if gone >= DECAY_NS {
            return self.target;
        }
        let drop = u128::from(self.from - self.target) * u128::from(gone) / u128::from(DECAY_NS);
        self.from - u64::try_from(drop).unwrap_or(u64::MAX)
    }

    /// The value once every pending decay is over.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Adds `points` (cancels any pending decay).
    pub fn add(&mut self, points: u64) {
        self.target += points;
        self.from = self.target;
    }

    /// `[target, from, start_ns]`: the whole gauge, for shard snapshots (crate::shard).
    pub fn parts(&self) -> [u64; 3] {
        [self.target, self.from, self.start_ns]
    }

    /// The gauge of [`Gauge::parts`].
    pub fn from_parts([target, from, start_ns]: [u64; 3]) -> Self {
        Self {
            target,
            from,
            start_ns,
        }
    }

    /// Removes `points`, spread over the next [`DECAY_NS`] from `now_ns`.
    pub fn sub(&mut self, points: u64, now_ns: u64) {
        self.from = self.value(now_ns);
        self.target = self.target.saturating_sub(points);
        self.start_ns = now_ns;
    }
}

/// Client and server gauges, each network and security.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScoreGauges {
    /// As client: [network, security].
    pub client: [Gauge; 2],
    /// As server: [network, security].
    pub server: [Gauge; 2],
}

/// A score read at one time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScoreValues {
    /// Total.
    pub total: u64,
    /// As client.
    pub client: u64,
    /// As server.
    pub server: u64,
    /// As client, network.
    pub client_network: u64,
    /// As client, security.
    pub client_security: u64,
    /// As server, network.
    pub server_network: u64,
    /// As server, security.
    pub server_security: u64,
}

const fn idx(kind: ScoreKind) -> usize {
    match kind {
        ScoreKind::Network => 0,
        ScoreKind::Security => 1,
    }
}

impl ScoreGauges {
    fn gauge(&mut self, side: Side, kind: ScoreKind) -> &mut Gauge {
        match side {
            Side::Client => &mut self.client[idx(kind)],
            Side::Server => &mut self.server[idx(kind)],
        }
    }

    /// Adds points.
    pub fn add(&mut self, side: Side, kind: ScoreKind, points: u64) {
        self.gauge(side, kind).add(points);
    }

    /// Removes points (decaying from `now_ns`).
    pub fn sub(&mut self, side: Side, kind: ScoreKind, points: u64, now_ns: u64) {
        self.gauge(side, kind).sub(points, now_ns);
    }

    /// The values at `now_ns`.
    pub fn values(&self, now_ns: u64) -> ScoreValues {
        let [cn, cs] = self.client.map(|g| g.value(now_ns));
        let [sn, ss] = self.server.map(|g| g.value(now_ns));
        ScoreValues {
            total: cn + cs + sn + ss,
            client: cn + cs,
            server: sn + ss,
            client_network: cn,
            client_security: cs,
            server_network: sn,
            server_security: ss,
        }
    }
}

/// One alert's points on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    /// The alert's key (`GET /api/v2/alerts/{key}`).
    pub alert_key: String,
    /// The alert type.
    pub alert_type: String,
    /// Flow or host alert.
    #[schema(value_type = String)]
    pub entity: Entity,
    /// Whether the host earned the points as client or as server.
    pub as_client: bool,
    /// Network or security.
    #[schema(value_type = String)]
    pub kind: ScoreKind,
    /// Points.
    pub points: u16,
    /// The other end of the flow (flow alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub peer: Option<IpAddr>,
    /// When the points were added, ns.
    pub since_ns: u64,
    /// When the points started leaving (flow ended, alert released): in a breakdown, `points`
    /// is then what is left of them while the score decays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaving_since_ns: Option<u64>,
    /// Where the points were rolled up to (set by [`ScoreBook::add`]).
    #[serde(skip)]
    pub roll: Option<RollUp>,
}

/// A host's score.
#[derive(Clone, Debug, Default)]
pub struct HostScore {
    /// The gauges.
    pub gauges: ScoreGauges,
    /// Live contributions (bounded by [`MAX_CONTRIBUTIONS`]).
    pub contributions: Vec<Contribution>,
    /// Live points not listed because the list was full.
    pub omitted_points: u64,
    /// Points ever added (never decreases): "how much trouble over the run".
    pub accumulated: u64,
    /// `accumulated` by alert type and side (bounded by [`MAX_CONTRIBUTIONS`]).
    pub accumulated_by: Vec<Accumulated>,
    /// Contributions removed while their gauge still decays.
    pub leaving: Vec<Contribution>,
}

fn gauge_of(g: &ScoreGauges, as_client: bool, kind: ScoreKind) -> &Gauge {
    if as_client {
        &g.client[idx(kind)]
    } else {
        &g.server[idx(kind)]
    }
}

impl HostScore {
    /// Every contribution to the score at `now_ns`: the live ones, then the leaving ones with
    /// what is left of their points (each gauge's decaying part shared in proportion to the
    /// points removed). The points plus the omitted ones sum to the score.
    pub fn breakdown(&self, now_ns: u64) -> (Vec<Contribution>, u64) {
        let mut out = self.contributions.clone();
        let mut omitted = self.omitted_points;
        for as_client in [true, false] {
            for kind in [ScoreKind::Network, ScoreKind::Security] {
                let g = gauge_of(&self.gauges, as_client, kind);
                let decaying = g.value(now_ns) - g.target();
                if decaying == 0 {
                    continue;
                }
                let items: Vec<&Contribution> = self
                    .leaving
                    .iter()
                    .filter(|c| c.as_client == as_client && c.kind == kind)
                    .collect();
                let total: u64 = items.iter().map(|c| u64::from(c.points)).sum();
                if total == 0 {
                    omitted += decaying;
                    continue;
                }
                let mut given = 0;
                let mut shares: Vec<Contribution> = items
                    .iter()
                    .map(|c| {
                        let share = decaying * u64::from(c.points) / total;
                        given += share;
                        let mut c = (*c).clone();
                        c.points = u16::try_from(share).unwrap_or(u16::MAX);
                        c
                    })
                    .collect();
                if let Some(first) = shares.first_mut() {
                    let rest = u16::try_from(decaying - given).unwrap_or(0);
                    first.points = first.points.saturating_add(rest);
                }
                out.extend(shares.into_iter().filter(|c| c.points > 0));
            }
        }
        (out, omitted)
    }
}

/// Points a host earned over the run from one alert type on one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accumulated {
    /// The alert type.
    pub alert_type: String,
    /// As client (else as server).
    pub as_client: bool,
    /// Network or security.
    pub kind: ScoreKind,
    /// Points.
    pub points: u64,
    /// Alerts counted.
    pub alerts: u64,
}

/// What a score change applies to besides the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollUp {
    /// The observation point.
    pub point: PointKey,
    /// The host's local network, if any.
    pub network: Option<Cidr>,
}

/// Every score of the engine.
pub struct ScoreBook {
    hosts: BoundedMap<HostKey, HostScore>,
    /// Per observation point (interface or exporter).
    pub points: HashMap<PointKey, ScoreGauges>,
    /// Per local network.
    pub networks: HashMap<Cidr, ScoreGauges>,
    /// The whole engine.
    pub total: ScoreGauges,
    /// Hosts whose score was evicted.
    pub evicted: u64,
}

impl ScoreBook {
    /// A book of at most `max_hosts` hosts.
    pub fn new(max_hosts: usize) -> Self {
        Self {
            hosts: BoundedMap::new(max_hosts),
            points: HashMap::new(),
            networks: HashMap::new(),
            total: ScoreGauges::default(),
            evicted: 0,
        }
    }

    /// Adds a contribution to `host` (ignored when the same alert key already counts on this
    /// side: one alert per flow per type).
    pub fn add(&mut self, host: HostKey, roll: RollUp, mut c: Contribution) -> bool {
        c.roll = Some(roll);
        let (hs, evicted) = self.hosts.get_or_insert_with(host, HostScore::default);
        self.evicted += u64::from(evicted.is_some());
        if hs
            .contributions
            .iter()
            .any(|x| x.alert_key == c.alert_key && x.as_client == c.as_client)
        {
            return false;
        }
        let side = if c.as_client {
            Side::Client
        } else {
            Side::Server
        };
        let pts = u64::from(c.points);
        hs.gauges.add(side, c.kind, pts);
        // The increase cancelled this gauge's pending decay: its leaving points are gone.
        hs.leaving
            .retain(|l| !(l.as_client == c.as_client && l.kind == c.kind));
        hs.accumulated += pts;
        if let Some(a) = hs
            .accumulated_by
            .iter_mut()
            .find(|a| a.alert_type == c.alert_type && a.as_client == c.as_client)
        {
            a.points += pts;
            a.alerts += 1;
        } else if hs.accumulated_by.len() < MAX_CONTRIBUTIONS {
            hs.accumulated_by.push(Accumulated {
                alert_type: c.alert_type.clone(),
                as_client: c.as_client,
                kind: c.kind,
                points: pts,
                alerts: 1,
            });
        }
        if hs.contributions.len() < MAX_CONTRIBUTIONS {
            hs.contributions.push(c.clone());
        } else {
            hs.omitted_points += pts;
        }
        self.points
            .entry(roll.point)
            .or_default()
            .add(side, c.kind, pts);
        if let Some(n) = roll.network {
            self.networks.entry(n).or_default().add(side, c.kind, pts);
        }
        self.total.add(side, c.kind, pts);
        true
    }

    /// Removes the contribution `alert_key` (both sides) from `host`; returns the points removed.
    pub fn remove(&mut self, host: HostKey, alert_key: &str, now_ns: u64) -> u64 {
        let Some(hs) = self.hosts.get_mut(&host) else {
            return 0;
        };
        let mut removed = 0;
        let mut gone = Vec::new();
        let mut leaving = Vec::new();
        hs.contributions.retain(|c| {
            if c.alert_key == alert_key {
                gone.push((c.as_client, c.kind, u64::from(c.points), c.roll));
                let mut l = c.clone();
                l.leaving_since_ns = Some(now_ns);
                leaving.push(l);
                false
            } else {
                true
            }
        });
        for (as_client, kind, pts, roll) in gone {
            let side = if as_client {
                Side::Client
            } else {
                Side::Server
            };
            hs.gauges.sub(side, kind, pts, now_ns);
            if let Some(g) = roll.and_then(|r| self.points.get_mut(&r.point)) {
                g.sub(side, kind, pts, now_ns);
            }
            if let Some(g) = roll
                .and_then(|r| r.network)
                .and_then(|n| self.networks.get_mut(&n))
            {
                g.sub(side, kind, pts, now_ns);
            }
            self.total.sub(side, kind, pts, now_ns);
            removed += pts;
        }
        // Forget leaving points whose gauge finished decaying; keep the list bounded.
        let gauges = hs.gauges;
        hs.leaving.retain(|l| {
            let g = gauge_of(&gauges, l.as_client, l.kind);
            g.value(now_ns) > g.target()
        });
        hs.leaving.extend(leaving);
        if hs.leaving.len() > MAX_CONTRIBUTIONS {
            let extra = hs.leaving.len() - MAX_CONTRIBUTIONS;
            hs.leaving.drain(..extra);
        }
        removed
    }

    /// The score of `host`.
    pub fn host(&self, host: &HostKey) -> Option<&HostScore> {
        self.hosts.peek(host)
    }

    /// Puts `score` as the score of `host` (a shard taken over, crate::shard).
    pub fn restore_host(&mut self, host: HostKey, score: HostScore) {
        self.evicted += u64::from(self.hosts.insert(host, score).is_some());
    }

    /// Forgets the score of `host` (a shard handed over, crate::shard).
    pub fn remove_host(&mut self, host: &HostKey) -> Option<HostScore> {
        self.hosts.remove(host)
    }

    /// Every host with a score.
    pub fn hosts(&self) -> impl Iterator<Item = (&HostKey, &HostScore)> {
        self.hosts.iter()
    }

    /// Live client and server score of `host` at `now_ns`.
    pub fn values(&self, host: &HostKey, now_ns: u64) -> ScoreValues {
        self.hosts
            .peek(host)
            .map(|h| h.gauges.values(now_ns))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn c(key: &str, client: bool, kind: ScoreKind, points: u16) -> Contribution {
        Contribution {
            alert_key: key.into(),
            alert_type: "t".into(),
            entity: Entity::Flow,
            as_client: client,
            kind,
            points,
            peer: None,
            since_ns: 0,
            leaving_since_ns: None,
            roll: None,
        }
    }

    #[test]
    fn decrease_decays_linearly_and_increase_cancels_it() {
        let mut g = Gauge::default();
        g.add(120);
        g.sub(60, 100 * S);
        assert_eq!(g.value(100 * S), 120);
        assert_eq!(g.value(130 * S), 90);
        assert_eq!(g.value(160 * S), 60);
        assert_eq!(g.value(500 * S), 60);
        g.sub(60, 130 * S);
        assert_eq!(
            g.value(130 * S),
            90,
            "a second decrease starts from the current value"
        );
        assert_eq!(g.value(160 * S), 45);
        g.add(10);
        assert_eq!(
            g.value(160 * S),
            10,
            "an increase cancels the pending decay"
        );
    }

    #[test]
    fn book_splits_rolls_up_and_explains() {
        let mut b = ScoreBook::new(10);
        let h = HostKey {
            ip: "10.0.0.1".parse().unwrap(),
            vlan: 0,
        };
        let roll = RollUp {
            point: PointKey(1),
            network: "10.0.0.0/8".parse().ok(),
        };
        assert!(b.add(h, roll, c("a", true, ScoreKind::Security, 135)));
        assert!(
            !b.add(h, roll, c("a", true, ScoreKind::Security, 135)),
            "counted once"
        );
        assert!(b.add(h, roll, c("b", false, ScoreKind::Network, 5)));
        let v = b.values(&h, 0);
        assert_eq!(
            (v.total, v.client_security, v.server_network),
            (140, 135, 5)
        );
        assert_eq!(b.points[&PointKey(1)].values(0).total, 140);
        assert_eq!(b.networks[&roll.network.unwrap()].values(0).client, 135);
        let explained: u64 = b
            .host(&h)
            .unwrap()
            .contributions
            .iter()
            .map(|c| u64::from(c.points))
            .sum();
        assert_eq!(explained, v.total);
        assert_eq!(b.remove(h, "a", 10 * S), 135);
        assert_eq!(b.values(&h, 10 * S).total, 140);
        // Half-way through the decay the breakdown still explains every point.
        let (items, omitted) = b.host(&h).unwrap().breakdown(40 * S);
        let sum: u64 = items.iter().map(|c| u64::from(c.points)).sum();
        assert_eq!((sum + omitted, b.values(&h, 40 * S).total), (73, 73));
        assert!(
            items
                .iter()
                .any(|c| c.alert_key == "a" && c.leaving_since_ns == Some(10 * S))
        );
        assert_eq!(b.values(&h, 70 * S).total, 5);
        assert_eq!(b.total.values(70 * S).total, 5);
        assert_eq!(b.host(&h).unwrap().accumulated, 140);
    }
}
