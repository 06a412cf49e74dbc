//! Alerts: the analysis core that joins checks, exclusions, score, host checks and anomaly
//! detection, and the store the API reads.
//!
//! [`Analysis`] is driven by `state` under the state lock, one record side at a time, and keeps
//! an outbox of alerts raised or changed for the ingest shell to publish on
//! `nw.alerts.<entity>.<type>`. Pure: time is flow time ([`Analysis::now_ns`]).

pub mod config;
pub mod store;
pub mod time;

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;

use netwarden_api::alert::{Alert, AlertState, Entity, Roles, Severity};
use netwarden_api::flow::{FlowRecord, proto};
use serde::{Deserialize, Serialize};

use crate::anomaly::{Des, DesConfig};
use crate::bounded::BoundedMap;
use crate::checks::host::{FlowFacts, HostCheckEvent, HostCheckState};
use crate::checks::{ChecksConfig, FlowAlert, ScoreKind, flow, net};
use crate::exclusions::{Exclusions, FlowSubject};
use crate::hosts::{HostKey, HostTable, PointKey, PointTable, Side};
use crate::score::{Contribution, RollUp, ScoreBook};
use crate::store::FlowKey;
pub use store::{AlertStore, StoredAlert, Upsert};

/// Alerts kept in the outbox when nobody drains it (oldest dropped).
pub const MAX_OUTBOX: usize = 65_536;
/// Samples kept per host series (48 × 5 min = 4 h).
pub const SERIES_LEN: usize = 48;

/// Configuration of the analysis (standalone: `analysis:` in the engine config).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Flow and host checks.
    pub checks: ChecksConfig,
    /// DES parameters of the score and flow series.
    pub des: DesConfig,
    /// Host series sampling period, seconds of flow time (ntopng: 300).
    pub host_sample_secs: u64,
    /// Observation-point series sampling period, seconds (ntopng: 60).
    pub point_sample_secs: u64,
    /// Alert rows kept.
    pub max_alerts: usize,
    /// Alert age kept, seconds.
    pub max_alert_age_secs: u64,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            checks: ChecksConfig::default(),
            des: DesConfig::default(),
            host_sample_secs: 300,
            point_sample_secs: 60,
            max_alerts: store::DEFAULT_MAX_ALERTS,
            max_alert_age_secs: store::DEFAULT_MAX_AGE_NS / 1_000_000_000,
        }
    }
}

/// Counters of the analysis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnalysisCounters {
    /// Flow alerts raised (one per flow and type).
    pub flow_alerts: u64,
    /// Host alerts engaged.
    pub host_alerts_engaged: u64,
    /// Host alerts released.
    pub host_alerts_released: u64,
    /// Alerts dropped by an exclusion.
    pub excluded: u64,
    /// Anomalies found.
    pub anomalies: u64,
    /// Alerts dropped from a full outbox.
    pub outbox_dropped: u64,
}

/// One sample of a host's series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SeriesSample {
    /// Sample time, ns.
    pub t_ns: u64,
    /// The value.
    pub value: f64,
    /// Expected value.
    pub forecast: f64,
    /// Lowest normal value.
    pub lower: f64,
    /// Highest normal value.
    pub upper: f64,
    /// Outside the band.
    pub anomaly: bool,
}

/// Metric names of the host series (`GET /api/v2/hosts/{ip}/timeseries?metric=`); bytes are
/// per sampling period, distinct peers are the hosts it exchanged new flows with in the period.
pub const HOST_METRICS: [&str; 7] = [
    "score_as_client",
    "score_as_server",
    "active_flows_as_client",
    "active_flows_as_server",
    "bytes_sent",
    "bytes_rcvd",
    "distinct_peers",
];

/// The anomaly alert type and side (client?) of each of [`HOST_METRICS`].
const HOST_METRIC_ALERTS: [(&str, bool); 7] = [
    ("score_anomaly", true),
    ("score_anomaly", false),
    ("flow_anomaly", true),
    ("flow_anomaly", false),
    ("traffic_anomaly", true),
    ("traffic_anomaly", false),
    ("contacts_anomaly", true),
];

/// DES series of one host.
#[derive(Clone, Debug, Default)]
pub struct HostSeries {
    des: [Des; 7],
    /// Last samples per metric of [`HOST_METRICS`].
    pub samples: [VecDeque<SeriesSample>; 7],
    /// Bytes sent and received at the previous sample.
    last_bytes: (u64, u64),
}

#[derive(Clone, Debug)]
struct FlowSide {
    host: HostKey,
    keys: Vec<String>,
}

/// Checks, score, anomalies and alerts.
pub struct Analysis {
    /// Configuration.
    pub config: AnalysisConfig,
    /// Exclusions in force.
    pub exclusions: Exclusions,
    /// Scores.
    pub scores: ScoreBook,
    /// Alerts.
    pub store: AlertStore,
    /// Counters.
    pub counters: AnalysisCounters,
    /// Flow time: the latest record time seen, ns.
    pub now_ns: u64,
    host_checks: BoundedMap<HostKey, (HostCheckState, PointKey)>,
    engaged: BTreeSet<HostKey>,
    flow_sides: BoundedMap<(FlowKey, bool), FlowSide>,
    series: BoundedMap<HostKey, HostSeries>,
    point_series: std::collections::HashMap<PointKey, (Des, Des, u64)>,
    next_host_sample: u64,
    next_point_sample: u64,
    outbox: VecDeque<Alert>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self::new(
            AnalysisConfig::default(),
            crate::hosts::DEFAULT_MAX_HOSTS,
            1 << 20,
        )
    }
}

/// FNV-1a 64 as 16 hex digits: a stable alert key.
fn key_of(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// [`key_of`] of formatted text, hashed as it is written (no intermediate `String`).
fn key_of_args(args: std::fmt::Arguments<'_>) -> String {
    struct Fnv(u64);
    impl std::fmt::Write for Fnv {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for b in s.bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
            Ok(())
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    let _ = std::fmt::Write::write_fmt(&mut h, args);
    format!("{:016x}", h.0)
}

/// The idempotent key of flow alert `alert_type` on `r`.
pub fn flow_alert_key(r: &FlowRecord, alert_type: &str) -> String {
    let point = r
        .observation_point
        .as_ref()
        .map(crate::hosts::point_label)
        .unwrap_or_default();
    key_of_args(format_args!(
        "flow|{point}|{:?}|{}|{:?}|{}|{}|{}|{}|{alert_type}",
        r.client_addr(),
        r.client_port,
        r.server_addr(),
        r.server_port,
        r.l4_proto,
        r.vlan,
        r.first_seen_ns
    ))
}

/// The idempotent key of host alert `alert_type` (`side` client or server) on `host`.
pub fn host_alert_key(host: HostKey, alert_type: &str, side: &str) -> String {
    key_of_args(format_args!(
        "host|{}|{}|{alert_type}|{side}",
        host.ip, host.vlan
    ))
}

/// The 5-tuple text of a flow, for people.
pub fn flow_text(r: &FlowRecord) -> String {
    let ip = |a: Option<IpAddr>| a.map_or_else(|| "?".to_owned(), |a| a.to_string());
    format!(
        "{}:{} -> {}:{} {}",
        ip(r.client_addr()),
        r.client_port,
        ip(r.server_addr()),
        r.server_port,
        proto::name(u8::try_from(r.l4_proto).unwrap_or(0))
    )
}

impl Analysis {
    /// An analysis for at most `max_hosts` hosts and `max_flows` flows.
    pub fn new(config: AnalysisConfig, max_hosts: usize, max_flows: usize) -> Self {
        let store = AlertStore::new(
            config.max_alerts,
            config.max_alert_age_secs.saturating_mul(1_000_000_000),
            store::DEFAULT_DEDUP_NS,
        );
        Self {
            config,
            exclusions: Exclusions::default(),
            scores: ScoreBook::new(max_hosts),
            store,
            counters: AnalysisCounters::default(),
            now_ns: 0,
            host_checks: BoundedMap::new(max_hosts),
            engaged: BTreeSet::new(),
            flow_sides: BoundedMap::new(max_flows.saturating_mul(2).max(1024)),
            series: BoundedMap::new(max_hosts),
            point_series: std::collections::HashMap::new(),
            next_host_sample: 0,
            next_point_sample: 0,
            outbox: VecDeque::new(),
        }
    }

    /// The flow alerts of `record` that survive the exclusions, predominant first.
    pub fn check_flow(&mut self, record: &FlowRecord) -> Vec<FlowAlert> {
        self.now_ns = self.now_ns.max(record.last_seen_ns);
        let mut alerts = flow::run(record, &self.config.checks);
        if self.exclusions.is_empty() || alerts.is_empty() {
            return alerts;
        }
        let (Some(client), Some(server)) = (record.client_addr(), record.server_addr()) else {
            return alerts;
        };
        let l7 = record.l7.as_ref();
        let tls = l7.and_then(|l| l.tls.as_ref());
        let domain = l7
            .map(|l| l.hostname.as_str())
            .filter(|h| !h.is_empty())
            .or_else(|| tls.map(|t| t.sni.as_str()))
            .unwrap_or("");
        let issuer = tls
            .and_then(|t| t.certificate.as_ref())
            .map_or("", |c| c.issuer.as_str());
        let subject = FlowSubject {
            client,
            server,
            domain,
            issuer,
        };
        let before = alerts.len();
        alerts.retain(|a| {
            self.exclusions
                .flow_excluded(a.alert_type, &subject, self.now_ns)
                .is_none()
        });
        self.counters.excluded += (before - alerts.len()) as u64;
        alerts
    }

    fn roll(&self, point: PointKey, ip: IpAddr) -> RollUp {
        RollUp {
            point,
            network: net::longest_match(&self.config.checks.local_networks, ip),
        }
    }

    /// Applies one side of a record: the side's score, the host checks, and (client copy)
    /// the flow alert rows. `c2s_packets` is what the record added to the flow's
    /// client-to-server packets (the flood checks count packets).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_flow_side(
        &mut self,
        record: &FlowRecord,
        alerts: &[FlowAlert],
        flow: FlowKey,
        side: Side,
        host: HostKey,
        new_flow: bool,
        c2s_packets: u64,
    ) {
        let as_client = side == Side::Client;
        let roll = self.roll(flow.point, host.ip);
        let peer = if as_client {
            record.server_addr()
        } else {
            record.client_addr()
        };
        for a in alerts {
            let key = flow_alert_key(record, a.alert_type);
            let points = if as_client {
                a.client_score
            } else {
                a.server_score
            };
            let contribution = Contribution {
                alert_key: key.clone(),
                alert_type: a.alert_type.to_owned(),
                entity: Entity::Flow,
                as_client,
                kind: a.kind,
                points,
                peer,
                since_ns: self.now_ns,
                leaving_since_ns: None,
                roll: None,
            };
            if points > 0 {
                self.scores.add(host, roll, contribution);
            }
            let (entry, evicted) =
                self.flow_sides
                    .get_or_insert_with((flow, as_client), || FlowSide {
                        host,
                        keys: Vec::new(),
                    });
            let first_time = !entry.keys.contains(&key);
            if first_time {
                entry.keys.push(key.clone());
            }
            // A flow pushed out of the table will not be seen ending: its points leave now.
            if let Some((_, gone)) = evicted {
                for k in &gone.keys {
                    self.scores.remove(gone.host, k, self.now_ns);
                }
            }
            if as_client && first_time {
                self.counters.flow_alerts += 1;
                let alert = flow_alert_row(record, a, key);
                self.store.upsert(alert.clone());
                self.push_outbox(alert);
            }
        }
        if record.is_final()
            && let Some(fs) = self.flow_sides.remove(&(flow, as_client))
        {
            for k in &fs.keys {
                self.scores.remove(fs.host, k, self.now_ns);
            }
        }
        let facts = FlowFacts::of(
            record,
            &self.config.checks,
            as_client,
            new_flow,
            c2s_packets,
        );
        // One probe of the host-check table: observe and evaluate on the same entry.
        let now = self.now_ns;
        let v = self.scores.values(&host, now);
        let cfg = &self.config.checks;
        let ex = &self.exclusions;
        let (st, _) = self
            .host_checks
            .get_or_insert_with(host, || (HostCheckState::default(), flow.point));
        st.0.observe(&facts, &cfg.host);
        // Host alerts roll up to the point where the host was last seen.
        st.1 = flow.point;
        let was = st.0.any_engaged();
        let events = st.0.evaluate(&cfg.host, now, v.client, v.server, |t| {
            cfg.enabled(t) && !ex.host_excluded(t, host.ip, now)
        });
        match (was, st.0.any_engaged()) {
            (false, true) => {
                self.engaged.insert(host);
            }
            (true, false) => {
                self.engaged.remove(&host);
            }
            _ => {}
        }
        for e in events {
            if !e.engaged && self.exclusions.host_excluded(e.alert_type, host.ip, now) {
                self.counters.excluded += 1;
            }
            self.host_event(host, roll, &e);
        }
    }

    fn evaluate_host(&mut self, host: HostKey, roll: RollUp) {
        let now = self.now_ns;
        let v = self.scores.values(&host, now);
        let Some((st, _)) = self.host_checks.get_mut(&host) else {
            // Evicted from the host-check table: nothing left to release.
            self.engaged.remove(&host);
            return;
        };
        let cfg = &self.config.checks;
        let ex = &self.exclusions;
        let events = st.evaluate(&cfg.host, now, v.client, v.server, |t| {
            cfg.enabled(t) && !ex.host_excluded(t, host.ip, now)
        });
        if st.any_engaged() {
            self.engaged.insert(host);
        } else {
            self.engaged.remove(&host);
        }
        for e in events {
            if !e.engaged && self.exclusions.host_excluded(e.alert_type, host.ip, now) {
                self.counters.excluded += 1;
            }
            self.host_event(host, roll, &e);
        }
    }

    fn host_event(&mut self, host: HostKey, roll: RollUp, e: &HostCheckEvent) {
        let Some(def) = crate::checks::def(e.alert_type) else {
            return;
        };
        let key = host_alert_key(host, e.alert_type, e.side);
        let score = def.score;
        let cli = score * u16::from(e.client_pct) / 100;
        let (state, verb) = if e.engaged {
            self.counters.host_alerts_engaged += 1;
            // The host's client score gets the client share, its server score the rest.
            for (as_client, points) in [(true, cli), (false, score - cli)] {
                if points == 0 {
                    continue;
                }
                let c = Contribution {
                    alert_key: key.clone(),
                    alert_type: e.alert_type.to_owned(),
                    entity: Entity::Host,
                    as_client,
                    kind: def.kind,
                    points,
                    peer: None,
                    since_ns: self.now_ns,
                    leaving_since_ns: None,
                    roll: None,
                };
                self.scores.add(host, roll, c);
            }
            (AlertState::Engaged, "engaged")
        } else {
            self.counters.host_alerts_released += 1;
            self.scores.remove(host, &key, self.now_ns);
            (AlertState::Released, "released")
        };
        let role = if e.roles.client_attacker {
            " as attacker"
        } else if e.roles.client_victim {
            " as victim"
        } else {
            ""
        };
        let alert = Alert {
            key,
            alert_type: e.alert_type.to_owned(),
            entity: Entity::Host,
            entity_value: host.ip.to_string(),
            severity: Severity::from_score(u32::from(score)),
            score: u32::from(score),
            client_score: u32::from(cli),
            server_score: u32::from(score - cli),
            roles: e.roles,
            observation_point: String::new(),
            first_seen_ns: self.now_ns,
            last_seen_ns: self.now_ns,
            count: 1,
            state,
            message: format!(
                "{} {verb} on {}{role} ({} side): {} > {}",
                e.alert_type, host.ip, e.side, e.value, e.threshold
            ),
            flow: None,
            anomaly: None,
        };
        self.store.upsert(alert.clone());
        self.push_outbox(alert);
    }

    /// Re-evaluates hosts with engaged alerts (releases need time to pass, not new flows) and
    /// samples the DES series when flow time crossed a sampling period.
    pub fn tick(&mut self, hosts: &HostTable, points: &PointTable) {
        let engaged: Vec<HostKey> = self.engaged.iter().copied().collect();
        for h in engaged {
            let point = self
                .host_checks
                .peek(&h)
                .map_or_else(PointKey::default, |s| s.1);
            let roll = self.roll(point, h.ip);
            self.evaluate_host(h, roll);
        }
        self.sample(hosts, points);
    }

    fn sample(&mut self, hosts: &HostTable, points: &PointTable) {
        let now = self.now_ns;
        let period = self
            .config
            .host_sample_secs
            .max(1)
            .saturating_mul(1_000_000_000);
        if self.next_host_sample == 0 {
            self.next_host_sample = (now / period).saturating_add(1).saturating_mul(period);
        } else if now >= self.next_host_sample {
            let t = self.next_host_sample;
            self.next_host_sample = (now / period).saturating_add(1).saturating_mul(period);
            // Local hosts only (as ntopng): spoofed or far-away addresses get no series.
            for h in hosts.iter() {
                if !self.config.checks.is_local(h.key.ip) {
                    continue;
                }
                let v = self.scores.values(&h.key, t);
                let peers = self
                    .host_checks
                    .get_mut(&h.key)
                    .map_or(0, |(st, _)| st.take_period_peers());
                let values = [
                    v.client as f64,
                    v.server as f64,
                    h.active_flows_as_client as f64,
                    h.active_flows_as_server as f64,
                    h.bytes_sent as f64,
                    h.bytes_rcvd as f64,
                    f64::from(peers),
                ];
                self.sample_host(h.key, t, values);
            }
        }
        let pperiod = self
            .config
            .point_sample_secs
            .max(1)
            .saturating_mul(1_000_000_000);
        if self.next_point_sample == 0 {
            self.next_point_sample = (now / pperiod).saturating_add(1).saturating_mul(pperiod);
        } else if now >= self.next_point_sample {
            let t = self.next_point_sample;
            self.next_point_sample = (now / pperiod).saturating_add(1).saturating_mul(pperiod);
            let keys: Vec<PointKey> = self.scores.points.keys().copied().collect();
            for k in keys {
                let score = self.scores.points[&k].values(t).total as f64;
                let bytes = points.get(k).map_or(0, |p| p.bytes);
                let cfg = self.config.des;
                let (ds, db, last) = self
                    .point_series
                    .entry(k)
                    .or_insert_with(|| (Des::new(cfg), Des::new(cfg), bytes));
                let delta = bytes.saturating_sub(*last) as f64;
                *last = bytes;
                let (os, ob) = (ds.push(score), db.push(delta));
                let name = points.get(k).map(|p| p.name.clone()).unwrap_or_default();
                for (o, alert_type, metric) in [
                    (os, "score_anomaly", "score"),
                    (ob, "traffic_anomaly", "bytes per period"),
                ] {
                    if !o.anomaly {
                        continue;
                    }
                    self.counters.anomalies += 1;
                    if !self.config.checks.enabled(alert_type) {
                        continue;
                    }
                    let alert = point_anomaly(&name, alert_type, metric, t, &o);
                    self.store.upsert(alert.clone());
                    self.push_outbox(alert);
                }
            }
        }
    }

    /// Samples one host; `values` follow [`HOST_METRICS`], bytes as totals so far.
    fn sample_host(&mut self, host: HostKey, t: u64, mut values: [f64; 7]) {
        let cfg = self.config.des;
        let (s, _) = self.series.get_or_insert_with(host, || HostSeries {
            des: std::array::from_fn(|_| Des::new(cfg)),
            samples: Default::default(),
            last_bytes: (0, 0),
        });
        // Totals to bytes per period (a host table eviction restarts the totals: no negative).
        let (sent, rcvd) = (values[4] as u64, values[5] as u64);
        values[4] = sent.saturating_sub(s.last_bytes.0) as f64;
        values[5] = rcvd.saturating_sub(s.last_bytes.1) as f64;
        s.last_bytes = (sent, rcvd);
        let mut found = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            let o = s.des[i].push(v);
            let ring = &mut s.samples[i];
            if ring.len() == SERIES_LEN {
                ring.pop_front();
            }
            ring.push_back(SeriesSample {
                t_ns: t,
                value: v,
                forecast: o.forecast,
                lower: o.lower,
                upper: o.upper,
                anomaly: o.anomaly,
            });
            if o.anomaly {
                found.push((i, o));
            }
        }
        for (i, o) in found {
            self.counters.anomalies += 1;
            let (alert_type, client) = HOST_METRIC_ALERTS[i];
            if !self.config.checks.enabled(alert_type)
                || self.exclusions.host_excluded(alert_type, host.ip, t)
            {
                continue;
            }
            let Some(def) = crate::checks::def(alert_type) else {
                continue;
            };
            let cli = if client { def.score } else { 0 };
            let alert = Alert {
                key: host_alert_key(host, HOST_METRICS[i], "anomaly"),
                alert_type: alert_type.to_owned(),
                entity: Entity::Host,
                entity_value: host.ip.to_string(),
                severity: Severity::from_score(u32::from(def.score)),
                score: u32::from(def.score),
                client_score: u32::from(cli),
                server_score: u32::from(def.score - cli),
                roles: Roles::default(),
                observation_point: String::new(),
                first_seen_ns: t,
                last_seen_ns: t,
                count: 1,
                state: AlertState::Past,
                message: format!(
                    "{} = {} outside the expected band [{}, {}] (forecast {:.1})",
                    HOST_METRICS[i], o.value, o.lower, o.upper, o.forecast
                ),
                flow: None,
                anomaly: Some(band(&o)),
            };
            self.store.upsert(alert.clone());
            self.push_outbox(alert);
        }
    }

    /// The DES state of `host`'s series (one per [`HOST_METRICS`]) and the bytes at its last
    /// sample, for shard snapshots (crate::shard).
    #[allow(clippy::type_complexity)]
    pub fn host_series_state(
        &self,
        host: &HostKey,
    ) -> Option<(
        [crate::anomaly::DesState; 7],
        &[VecDeque<SeriesSample>; 7],
        (u64, u64),
    )> {
        self.series.peek(host).map(|s| {
            (
                std::array::from_fn(|i| s.des[i].state()),
                &s.samples,
                s.last_bytes,
            )
        })
    }

    /// Puts the series of `host` from [`Analysis::host_series_state`] (a shard taken over).
    pub fn restore_host_series(
        &mut self,
        host: HostKey,
        des: [crate::anomaly::DesState; 7],
        samples: [VecDeque<SeriesSample>; 7],
        last_bytes: (u64, u64),
    ) {
        let cfg = self.config.des;
        let mut s = HostSeries {
            des: std::array::from_fn(|_| Des::new(cfg)),
            samples,
            last_bytes,
        };
        for (d, state) in s.des.iter_mut().zip(des) {
            d.set_state(state);
        }
        let _ = self.series.insert(host, s);
    }

    /// Forgets the score and the series of `host` (a shard handed over, crate::shard).
    pub fn forget_host(&mut self, host: &HostKey) {
        self.series.remove(host);
        self.scores.remove_host(host);
    }

    /// The series of `host` for `metric` (one of [`HOST_METRICS`]).
    pub fn series(&self, host: &HostKey, metric: &str) -> Option<Vec<SeriesSample>> {
        let i = HOST_METRICS.iter().position(|m| *m == metric)?;
        Some(
            self.series
                .peek(host)
                .map(|s| s.samples[i].iter().copied().collect())
                .unwrap_or_default(),
        )
    }

    fn push_outbox(&mut self, alert: Alert) {
        if self.outbox.len() >= MAX_OUTBOX {
            self.outbox.pop_front();
            self.counters.outbox_dropped += 1;
        }
        self.outbox.push_back(alert);
    }

    /// Takes the alerts raised or changed since the last call (to publish them).
    pub fn drain_outbox(&mut self) -> Vec<Alert> {
        self.outbox.drain(..).collect()
    }

    /// The score kind label of an alert type (for reports).
    pub fn kind_of(alert_type: &str) -> ScoreKind {
        crate::checks::def(alert_type).map_or_else(
            || {
                netwarden_api::risk::by_key(alert_type)
                    .map_or(ScoreKind::Security, |r| ScoreKind::of(r.category))
            },
            |d| d.kind,
        )
    }
}

fn band(o: &crate::anomaly::DesOutcome) -> netwarden_api::alert::AnomalyBand {
    netwarden_api::alert::AnomalyBand {
        value: o.value,
        expected: o.forecast,
        lower: o.lower,
        upper: o.upper,
    }
}

/// An anomaly of an observation point's series (an interface, or an exporter's domain).
fn point_anomaly(
    name: &str,
    alert_type: &str,
    metric: &str,
    t: u64,
    o: &crate::anomaly::DesOutcome,
) -> Alert {
    let score = crate::checks::def(alert_type).map_or(50, |d| d.score);
    Alert {
        key: key_of(&format!("point|{name}|{alert_type}|{t}")),
        alert_type: alert_type.to_owned(),
        entity: Entity::ObservationPoint,
        entity_value: name.to_owned(),
        severity: Severity::from_score(u32::from(score)),
        score: u32::from(score),
        client_score: 0,
        server_score: 0,
        roles: Roles::default(),
        observation_point: name.to_owned(),
        first_seen_ns: t,
        last_seen_ns: t,
        count: 1,
        state: AlertState::Past,
        message: format!(
            "{metric} = {} outside the expected band [{}, {}] (forecast {:.1})",
            o.value, o.lower, o.upper, o.forecast
        ),
        flow: None,
        anomaly: Some(band(o)),
    }
}

fn flow_alert_row(r: &FlowRecord, a: &FlowAlert, key: String) -> Alert {
    let mut flow = r.clone();
    flow.role = 0;
    Alert {
        key,
        alert_type: a.alert_type.to_owned(),
        entity: Entity::Flow,
        entity_value: flow_text(r),
        severity: Severity::from_score(u32::from(a.score)),
        score: u32::from(a.score),
        client_score: u32::from(a.client_score),
        server_score: u32::from(a.server_score),
        roles: a.roles,
        observation_point: r
            .observation_point
            .as_ref()
            .map(crate::hosts::point_label)
            .unwrap_or_default(),
        first_seen_ns: r.first_seen_ns,
        last_seen_ns: r.last_seen_ns,
        count: 1,
        state: AlertState::Past,
        message: format!("{} ({}): {}", a.alert_type, flow_text(r), a.message),
        flow: Some(Box::new(flow)),
        anomaly: None,
    }
}
