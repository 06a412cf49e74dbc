//! The engine's state and how a flow record changes it — the pure core of ingest.
//!
//! [`State::apply_record`] follows DESIGN.md section 5: the client copy of a record
//! (`role = client`) updates the client host, the flow tables and the aggregates; the server copy
//! (`role = server`) updates the server host only; when both hosts share a shard only the client
//! copy travels, so it updates both. A record outside the bus (`role` unset) updates everything.
//! No I/O and no clock here: the ingest shell decodes, locks and measures.

use std::sync::{Arc, RwLock};

use netwarden_api::flow::{FlowRecord, Role};
use netwarden_api::names::shard_of;
use serde::Deserialize;

use crate::alerts::{Analysis, AnalysisConfig};
use crate::exclusions::Exclusions;
use crate::hosts::{
    Counters, DeltaTracker, Host, HostKey, HostTable, HostUpdate, Observation, PointTable, Side,
};
use crate::store::{FlowKey, FlowStore, ProtocolTotals};

/// Sizes of the engine's tables and the cluster's shard count.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Most hosts kept (least recently updated evicted first).
    pub max_hosts: usize,
    /// Most active flows kept.
    pub max_active_flows: usize,
    /// Ended flows kept for drill-down.
    pub history: usize,
    /// Shards of the cluster (`nw.flows.<shard>`): needed to know whether a client copy also
    /// stands for the server (both hosts on one shard). Must equal the sensors' setting.
    pub shards: u32,
    /// The service map and the periodicity map (flags `--servicemap-*`).
    pub servicemap: crate::servicemap::ServiceMapConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            max_hosts: crate::hosts::DEFAULT_MAX_HOSTS,
            max_active_flows: crate::store::DEFAULT_MAX_ACTIVE_FLOWS,
            history: crate::store::DEFAULT_HISTORY,
            shards: netwarden_api::names::DEFAULT_SHARDS,
            servicemap: crate::servicemap::ServiceMapConfig::default(),
        }
    }
}

/// Whole-engine totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records applied.
    pub records: u64,
    /// Records without a valid address (ignored).
    pub invalid_records: u64,
    /// Distinct flows seen (client side).
    pub flows: u64,
    /// Packets, both directions.
    pub packets: u64,
    /// Bytes, both directions.
    pub bytes: u64,
    /// Records whose time was clipped: stamped more than [`MAX_FUTURE_SKEW_NS`] ahead of the
    /// plausible flow time (see [`FlowClock`]).
    pub clamped_times: u64,
}

/// What applying records pushed out of the bounded tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evictions {
    /// Hosts evicted.
    pub hosts: u64,
    /// Active flows evicted.
    pub active_flows: u64,
    /// Ended flows that left the history.
    pub history: u64,
    /// (flow, side) counter snapshots evicted.
    pub deltas: u64,
    /// Observation points evicted.
    pub points: u64,
}

impl std::ops::AddAssign for Evictions {
    fn add_assign(&mut self, o: Self) {
        self.hosts += o.hosts;
        self.active_flows += o.active_flows;
        self.history += o.history;
        self.deltas += o.deltas;
        self.points += o.points;
    }
}

/// Everything the engine knows.
pub struct State {
    /// Hosts.
    pub hosts: HostTable,
    /// Observation points.
    pub points: PointTable,
    /// Active and ended flows.
    pub flows: FlowStore,
    /// Totals per protocol.
    pub protocols: ProtocolTotals,
    /// Whole-engine totals.
    pub totals: Totals,
    /// Checks, score, anomalies and alerts.
    pub analysis: Analysis,
    /// Device types of local hosts, and their evidence.
    pub devices: crate::devices::DeviceTable,
    /// The learned service map and the periodicity map.
    pub servicemap: crate::servicemap::ServiceMap,
    deltas: DeltaTracker,
    clock: FlowClock,
    shards: u32,
    hosts_capacity: usize,
    flows_capacity: usize,
}

/// The state shared by ingest (writer) and the API (readers).
pub type SharedState = Arc<RwLock<State>>;

impl Default for State {
    fn default() -> Self {
        Self::new(&StateConfig::default())
    }
}

impl State {
    /// An empty state sized by `config`.
    pub fn new(config: &StateConfig) -> Self {
        Self {
            hosts: HostTable::new(config.max_hosts),
            points: PointTable::default(),
            flows: FlowStore::new(config.max_active_flows, config.history),
            protocols: ProtocolTotals::default(),
            totals: Totals::default(),
            analysis: Analysis::new(
                AnalysisConfig::default(),
                config.max_hosts,
                config.max_active_flows,
            ),
            servicemap: crate::servicemap::ServiceMap::new(
                config.servicemap,
                config.max_active_flows,
            ),
            devices: crate::devices::DeviceTable::sized(config.max_hosts),
            // Two sides per flow, and room for flows the active table already forgot.
            deltas: DeltaTracker::new(config.max_active_flows.saturating_mul(2).max(1024)),
            clock: FlowClock::default(),
            shards: config.shards.max(1),
            hosts_capacity: config.max_hosts,
            flows_capacity: config.max_active_flows,
        }
    }

    /// Replaces the analysis configuration and the exclusions (scores start over; stored
    /// alerts stay, with their ids and their link to the persistent store).
    pub fn configure_analysis(&mut self, config: AnalysisConfig, exclusions: Exclusions) {
        let hosts = self.hosts_capacity;
        let flows = self.flows_capacity;
        let alerts = std::mem::take(&mut self.analysis.store);
        self.analysis = Analysis::new(config, hosts, flows);
        self.analysis.store.adopt(alerts);
        self.analysis.exclusions = exclusions;
    }

    /// Applies every record of a batch; returns what was evicted.
    pub fn apply_batch(&mut self, records: Vec<FlowRecord>) -> Evictions {
        let mut ev = Evictions::default();
        for r in records {
            ev += self.apply_record(r);
        }
        self.analysis.tick(&self.hosts, &self.points);
        ev
    }

    /// Applies one record (see the module documentation for the role rules).
    pub fn apply_record(&mut self, mut record: FlowRecord) -> Evictions {
        let mut ev = Evictions::default();
        let (Some(client), Some(server)) = (record.client_addr(), record.server_addr()) else {
            self.totals.invalid_records += 1;
            return ev;
        };
        self.totals.records += 1;
        if self.clock.clamp(&mut record) {
            self.totals.clamped_times += 1;
        }
        let (client_side, server_side) =
            match Role::try_from(record.role).unwrap_or(Role::Unspecified) {
                Role::Client => (
                    true,
                    shard_of(client, self.shards) == shard_of(server, self.shards),
                ),
                Role::Server => (false, true),
                Role::Unspecified => (true, true),
            };
        let (point, point_evicted) = self.points.touch(record.observation_point.as_ref());
        ev.points += u64::from(point_evicted);
        let flow = FlowKey {
            point,
            flow_id: record.flow_id,
        };
        let counters = Counters::of(&record);
        let l7 = l7_str(&record);
        let vlan = record.vlan;
        // Flow checks are pure: every copy computes the same alerts (DESIGN.md §5).
        let mut alerts = self.analysis.check_flow(&record);
        // The service map sees the client copy (docs/servicemap.md: replicas and copies).
        let on_edge = if client_side {
            self.observe_servicemap(&record, flow, l7, &mut alerts)
        } else {
            None
        };
        let alerts = self
            .devices
            .apply(&record, &self.analysis.config.checks, alerts);

        if server_side {
            let host = HostKey { ip: server, vlan };
            let adv = self.apply_side(
                &record,
                flow,
                Side::Server,
                host,
                client,
                counters,
                l7,
                &mut ev,
            );
            self.analysis.apply_flow_side(
                &record,
                &alerts,
                flow,
                Side::Server,
                host,
                adv.new_flow,
                adv.delta.c2s_packets,
            );
        }
        if client_side {
            let host = HostKey { ip: client, vlan };
            let adv = self.apply_side(
                &record,
                flow,
                Side::Client,
                host,
                server,
                counters,
                l7,
                &mut ev,
            );
            self.analysis.apply_flow_side(
                &record,
                &alerts,
                flow,
                Side::Client,
                host,
                adv.new_flow,
                adv.delta.c2s_packets,
            );
            if let Some((id, first)) = on_edge {
                let added = if first { counters } else { adv.delta };
                self.servicemap.add_traffic(id, added);
            }
            let (new_flow, count_l7) = (adv.new_flow, adv.count_l7);
            self.totals.flows += u64::from(new_flow);
            self.totals.packets = self.totals.packets.saturating_add(adv.delta.packets());
            self.totals.bytes = self.totals.bytes.saturating_add(adv.delta.bytes());
            self.points.apply(
                point,
                adv.delta,
                new_flow,
                record.first_seen_ns,
                record.last_seen_ns,
            );
            self.protocols
                .add_l4(record.l4_proto as u8, adv.delta, new_flow);
            self.protocols.add_l7(l7, adv.delta, count_l7);
            // The stored record is the flow's, not a bus copy's.
            record.role = Role::Unspecified as i32;
            let out = self.flows.apply(flow, record);
            ev.active_flows += u64::from(out.active);
            ev.history += u64::from(out.history);
        }
        ev
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_side(
        &mut self,
        record: &FlowRecord,
        flow: FlowKey,
        side: Side,
        key: HostKey,
        peer: std::net::IpAddr,
        counters: Counters,
        l7: &str,
        ev: &mut Evictions,
    ) -> SideOutcome {
        let is_final = record.is_final();
        let already_counted = self
            .deltas
            .current(flow, side, record.first_seen_ns)
            .is_some_and(|s| s.l7_counted);
        // The flow counts under its L7 protocol once, when the DPI named it or when it ended.
        let count_l7 = !already_counted && (l7 != UNKNOWN_L7 || is_final);
        let seen = Observation {
            host: key,
            counters,
            first_seen_ns: record.first_seen_ns,
            is_final,
            l7_counted: already_counted || count_l7,
        };
        let adv = self.deltas.advance(flow, side, &seen);
        // Flows whose end will never be applied here stop counting as active: one evicted to
        // make room, or an earlier flow whose id was reused.
        let released = adv.evicted.into_iter().chain(adv.stale.map(|s| (side, s)));
        for (lost_side, lost) in released {
            if let Some(h) = self.hosts.get_mut(&lost.host) {
                h.release_active(lost_side);
            }
        }
        ev.deltas += u64::from(adv.evicted.is_some());
        let new_flow = adv.previous.is_none();
        let update = HostUpdate {
            side,
            delta: adv.delta,
            new_flow,
            ended_active: is_final && !new_flow,
            started_active: new_flow && !is_final,
            count_protocol: count_l7,
            protocol: l7,
            peer,
            first_seen_ns: record.first_seen_ns,
            last_seen_ns: record.last_seen_ns,
        };
        let point = flow.point;
        let (host, evicted) = self.hosts.entry(key);
        host.apply(&update);
        let new_point = host.add_point(point);
        if new_point {
            self.points.count_host(point, true);
        }
        if let Some(gone) = evicted {
            ev.hosts += 1;
            self.release_host(&gone);
        }
        SideOutcome {
            delta: adv.delta,
            new_flow,
            count_l7,
        }
    }

    fn release_host(&mut self, gone: &Host) {
        for p in &gone.points {
            self.points.count_host(*p, false);
        }
    }

    /// The per-(flow, side) counter snapshots (the sharded engine snapshots them per shard).
    pub fn deltas(&self) -> &DeltaTracker {
        &self.deltas
    }

    /// The per-(flow, side) counter snapshots, mutably (shard restore and hand-over).
    pub fn deltas_mut(&mut self) -> &mut DeltaTracker {
        &mut self.deltas
    }

    /// Feeds the client copy of a record to the service map before the host tables count it:
    /// adds its alerts to `alerts`; returns the edge and whether the flow is counted now (the
    /// moment the host tables count it under its L7 protocol).
    fn observe_servicemap(
        &mut self,
        record: &FlowRecord,
        flow: FlowKey,
        l7: &str,
        alerts: &mut Vec<crate::checks::FlowAlert>,
    ) -> Option<(u64, bool)> {
        let counted = self
            .deltas
            .current(flow, Side::Client, record.first_seen_ns)
            .is_some_and(|s| s.l7_counted);
        let first = !counted && (l7 != UNKNOWN_L7 || record.is_final());
        let out = self.servicemap.observe(record, l7, first, &self.analysis);
        alerts.extend(out.alerts);
        out.edge.map(|id| (id, first))
    }

    /// Number of (flow, side) counter snapshots held.
    pub fn tracked_sides(&self) -> usize {
        self.deltas.len()
    }

    /// Tells the state the wall clock (ns since the Unix epoch) before a batch from live
    /// sources: no record may then be stamped more than [`MAX_FUTURE_SKEW_NS`] after it.
    /// Without it (a replay driven directly) only the recent-flow-time bound applies.
    pub fn set_wall_clock(&mut self, now_ns: u64) {
        self.clock.wall_ns = now_ns;
    }
}

/// How far ahead of the wall clock a record may be stamped before its time is clipped (sensor
/// clocks drift; exporters buffer): five minutes.
pub const MAX_FUTURE_SKEW_NS: u64 = 5 * 60 * 1_000_000_000;

/// The guard on flow time. Flow time only moves forward (the engine clock is the latest record
/// time), so one record stamped far in the future would move it for good: every host alert
/// released, every score decayed, every window emptied. When the wall clock is known (live
/// ingest sets it before every batch), a record stamped more than [`MAX_FUTURE_SKEW_NS`] after
/// it is restamped at the wall clock and counted. The decision depends on the record alone, so
/// every replica of a cluster decides alike and a replay (whose records are in the past) is
/// untouched. Without a wall clock (a replay driven directly) nothing is clipped: a bound
/// relative to recent flow time would clip a genuine quiet gap, and would differ between
/// replicas that see different subsets of the records.
#[derive(Clone, Debug, Default)]
struct FlowClock {
    wall_ns: u64,
}

impl FlowClock {
    /// Clips `record`'s times when they are past the ceiling; true when it had to.
    fn clamp(&self, record: &mut FlowRecord) -> bool {
        if self.wall_ns == 0 {
            return false;
        }
        let ceiling = self.wall_ns.saturating_add(MAX_FUTURE_SKEW_NS);
        if record.last_seen_ns.max(record.first_seen_ns) <= ceiling {
            return false;
        }
        record.last_seen_ns = record.last_seen_ns.min(self.wall_ns);
        record.first_seen_ns = record.first_seen_ns.min(self.wall_ns);
        true
    }
}

struct SideOutcome {
    delta: Counters,
    new_flow: bool,
    count_l7: bool,
}

/// The L7 name used for totals when the DPI had nothing to say (nDPI's spelling).
pub const UNKNOWN_L7: &str = "Unknown";

/// The L7 name a record counts under: the application protocol, else the master, else
/// [`UNKNOWN_L7`].
pub fn l7_name(record: &FlowRecord) -> String {
    l7_str(record).to_owned()
}

/// [`l7_name`] borrowed from the record (no allocation on the hot path).
pub fn l7_str(record: &FlowRecord) -> &str {
    let l7 = record.l7.as_ref();
    let name = l7
        .map(|l| {
            if l.app_protocol.is_empty() {
                l.master_protocol.as_str()
            } else {
                l.app_protocol.as_str()
            }
        })
        .unwrap_or_default();
    if name.is_empty() { UNKNOWN_L7 } else { name }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::IpAddr;

    use netwarden_api::flow::{DirectionStats, FlowUpdate, L7Info, ObservationPoint, ip_to_bytes};

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The host `addr` on VLAN 0.
    fn host<'a>(state: &'a State, addr: &str) -> Option<&'a Host> {
        state.hosts.get(&HostKey {
            ip: ip(addr),
            vlan: 0,
        })
    }

    /// One flow's records as a sensor would emit them: cumulative counters, the last final.
    fn flow_records(id: u64, client: &str, server: &str, steps: &[(u64, u64)]) -> Vec<FlowRecord> {
        steps
            .iter()
            .enumerate()
            .map(|(i, &(c2s, s2c))| FlowRecord {
                flow_id: id,
                observation_point: Some(ObservationPoint {
                    sensor: "n1".into(),
                    interface: "eth0".into(),
                    ..Default::default()
                }),
                ip_version: 4,
                client_ip: ip_to_bytes(ip(client)),
                server_ip: ip_to_bytes(ip(server)),
                client_port: 40000 + id as u32,
                server_port: 443,
                l4_proto: 6,
                first_seen_ns: 1_000,
                last_seen_ns: 1_000 + i as u64 * 10,
                update: if i + 1 == steps.len() {
                    FlowUpdate::Final
                } else {
                    FlowUpdate::Periodic
                } as i32,
                c2s: Some(DirectionStats {
                    packets: c2s / 100,
                    bytes: c2s,
                    ..Default::default()
                }),
                s2c: Some(DirectionStats {
                    packets: s2c / 100,
                    bytes: s2c,
                    ..Default::default()
                }),
                l7: (i > 0).then(|| L7Info {
                    app_protocol: "TLS.Google".into(),
                    ..Default::default()
                }),
                update_seq: i as u32,
                ..Default::default()
            })
            .collect()
    }

    /// The bus copies of a record for a cluster of `shards` shards (DESIGN.md §5).
    fn bus_copies(r: &FlowRecord, shards: u32) -> Vec<FlowRecord> {
        let (c, s) = (r.client_addr().unwrap(), r.server_addr().unwrap());
        let mut out = vec![FlowRecord {
            role: Role::Client as i32,
            ..r.clone()
        }];
        if shard_of(c, shards) != shard_of(s, shards) {
            out.push(FlowRecord {
                role: Role::Server as i32,
                ..r.clone()
            });
        }
        out
    }

    fn corpus() -> Vec<FlowRecord> {
        let mut all = Vec::new();
        all.extend(flow_records(
            1,
            "10.0.0.1",
            "10.0.0.2",
            &[(100, 200), (300, 900), (500, 1000)],
        ));
        all.extend(flow_records(
            2,
            "10.0.0.1",
            "192.168.1.9",
            &[(1000, 0), (1500, 700)],
        ));
        all.extend(flow_records(3, "192.168.1.9", "10.0.0.2", &[(50, 60)]));
        all.extend(flow_records(
            4,
            "10.0.0.3",
            "10.0.0.3",
            &[(10, 10), (20, 20)],
        ));
        all
    }

    type HostRow = (u64, u64, u64, u64, u64, u64, u64, u64);

    fn host_rows(state: &State) -> Vec<(HostKey, HostRow)> {
        let mut rows: Vec<_> = state
            .hosts
            .iter()
            .map(|h| {
                let row = (
                    h.bytes_sent,
                    h.bytes_rcvd,
                    h.packets_sent,
                    h.packets_rcvd,
                    h.flows_as_client,
                    h.flows_as_server,
                    h.active_flows_as_client,
                    h.active_flows_as_server,
                );
                (h.key, row)
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        rows
    }

    fn config(shards: u32) -> StateConfig {
        StateConfig {
            shards,
            ..StateConfig::default()
        }
    }

    #[test]
    fn host_totals_are_final_counters_not_sums_of_updates() {
        let mut state = State::new(&config(64));
        state.apply_batch(flow_records(
            1,
            "10.0.0.1",
            "10.0.0.2",
            &[(100, 200), (300, 900), (500, 1000)],
        ));
        let c = host(&state, "10.0.0.1").unwrap();
        assert_eq!(
            (
                c.bytes_sent,
                c.bytes_rcvd,
                c.flows_as_client,
                c.active_flows_as_client
            ),
            (500, 1000, 1, 0)
        );
        assert_eq!((c.packets_sent, c.packets_rcvd), (5, 10));
        let s = host(&state, "10.0.0.2").unwrap();
        assert_eq!(
            (s.bytes_sent, s.bytes_rcvd, s.flows_as_server),
            (1000, 500, 1)
        );
        assert_eq!(state.totals.bytes, 1500);
        assert_eq!(state.totals.flows, 1);
        assert_eq!(
            state.tracked_sides(),
            0,
            "the final record forgets the snapshots"
        );
        assert_eq!((state.flows.active_len(), state.flows.ended_len()), (0, 1));
        assert_eq!(state.protocols.l7_rows()[0].name, "TLS.Google");
        assert_eq!(state.protocols.l7_rows()[0].flows, 1);
    }

    #[test]
    fn active_flow_counts_follow_updates() {
        let mut state = State::new(&config(64));
        let recs = flow_records(1, "10.0.0.1", "10.0.0.2", &[(100, 200), (300, 900)]);
        state.apply_record(recs[0].clone());
        let c = host(&state, "10.0.0.1").unwrap();
        assert_eq!(c.active_flows_as_client, 1);
        assert_eq!(state.flows.active_len(), 1);
        state.apply_record(recs[1].clone());
        let c = host(&state, "10.0.0.1").unwrap();
        assert_eq!(c.active_flows_as_client, 0);
    }

    #[test]
    fn same_shard_and_split_shards_give_the_same_host_totals() {
        let plain = {
            let mut s = State::new(&config(64));
            s.apply_batch(corpus());
            host_rows(&s)
        };
        for shards in [1, 2, 64, 1024] {
            let mut s = State::new(&config(shards));
            let copies: Vec<_> = corpus()
                .iter()
                .flat_map(|r| bus_copies(r, shards))
                .collect();
            s.apply_batch(copies);
            assert_eq!(host_rows(&s), plain, "shards = {shards}");
            assert_eq!(s.totals.flows, 4);
            assert_eq!(
                s.flows.ended_len(),
                4,
                "server copies do not touch the flow store"
            );
            assert_eq!(s.tracked_sides(), 0);
        }
        // Sanity: the corpus really splits across shards with 64 shards.
        assert!(corpus().iter().any(|r| bus_copies(r, 64).len() == 2));
    }

    #[test]
    fn server_copy_alone_updates_only_the_server() {
        let mut s = State::new(&config(64));
        let r = &flow_records(1, "10.0.0.1", "192.168.1.9", &[(100, 200)])[0];
        s.apply_record(FlowRecord {
            role: Role::Server as i32,
            ..r.clone()
        });
        assert!(host(&s, "10.0.0.1").is_none());
        let srv = host(&s, "192.168.1.9").unwrap();
        assert_eq!((srv.bytes_sent, srv.bytes_rcvd), (200, 100));
        assert_eq!(
            (s.flows.active_len() + s.flows.ended_len(), s.totals.flows),
            (0, 0)
        );
    }

    #[test]
    fn vlans_separate_hosts() {
        let mut s = State::new(&config(64));
        let mut a = flow_records(1, "10.0.0.1", "10.0.0.2", &[(100, 100)]);
        let mut b = flow_records(2, "10.0.0.1", "10.0.0.2", &[(100, 100)]);
        a[0].vlan = 10;
        b[0].vlan = 20;
        s.apply_batch(a.into_iter().chain(b).collect());
        assert_eq!(s.hosts.len(), 4);
    }

    #[test]
    fn tables_stay_bounded_and_count_evictions() {
        let cfg = StateConfig {
            max_hosts: 10,
            max_active_flows: 5,
            history: 3,
            shards: 64,
            ..StateConfig::default()
        };
        let mut s = State::new(&cfg);
        let mut ev = Evictions::default();
        for i in 0..50u32 {
            let c = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let srv = std::net::Ipv4Addr::from(0xc0a8_0000 + i).to_string();
            // Half the flows stay active, half end at once.
            let steps: &[(u64, u64)] = if i % 2 == 0 {
                &[(10, 10), (20, 20)]
            } else {
                &[(10, 10)]
            };
            let recs = flow_records(u64::from(i), &c, &srv, steps);
            ev += s.apply_record(recs[0].clone());
        }
        assert!(s.hosts.len() <= 10 && s.flows.active_len() <= 5 && s.flows.ended_len() <= 3);
        assert_eq!(ev.hosts, 90);
        assert_eq!(ev.active_flows, 20);
        assert_eq!(ev.history, 22);
        let points = s.points.sorted();
        assert_eq!(points.len(), 1);
        assert_eq!(
            points[0].hosts, 10,
            "evicted hosts leave the point's host count"
        );
    }

    const SEC: u64 = 1_000_000_000;
    /// 2023-11-14, a plausible capture time.
    const T: u64 = 1_700_000_000 * SEC;

    /// An unanswered SYN from `client` to `server:port`, ended at `t`.
    fn syn(id: u64, client: &str, server: &str, port: u32, t: u64) -> FlowRecord {
        FlowRecord {
            flow_id: id,
            ip_version: 4,
            client_ip: ip_to_bytes(ip(client)),
            server_ip: ip_to_bytes(ip(server)),
            client_port: 40_000,
            server_port: port,
            l4_proto: 6,
            first_seen_ns: t,
            last_seen_ns: t,
            update: FlowUpdate::Final as i32,
            c2s: Some(DirectionStats {
                packets: 1,
                bytes: 60,
                tcp_flags: 0x02,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A SYN scan of 300 ports from 10.0.0.1 within one second from `T`.
    fn scan() -> Vec<FlowRecord> {
        (0..300)
            .map(|i| syn(i, "10.0.0.1", "10.0.0.2", 1 + i as u32, T + i * SEC / 300))
            .collect()
    }

    #[test]
    fn a_far_future_record_does_not_move_the_clock() {
        let mut s = State::default();
        // Live: the wall clock is a few seconds after the scan.
        s.set_wall_clock(T + 10 * SEC);
        s.apply_batch(scan());
        let engaged = s.analysis.counters.host_alerts_engaged;
        assert!(engaged >= 1, "the scan engages syn_scan");
        assert_eq!(s.analysis.counters.host_alerts_released, 0);
        // One record stamped a century ahead, from an unrelated host.
        let far = T + 100 * 365 * 86_400 * SEC;
        s.apply_batch(vec![syn(1_000, "10.9.9.9", "10.0.0.2", 80, far)]);
        assert_eq!(s.totals.clamped_times, 1);
        assert!(
            s.analysis.now_ns <= T + 10 * SEC,
            "engine clock moved to {}",
            s.analysis.now_ns
        );
        // Only the per-second flow floods end (the wall clock is 10 s on); the scans hold.
        assert!(
            s.analysis.counters.host_alerts_released < engaged,
            "the scan's alerts stay engaged"
        );
        let h = host(&s, "10.9.9.9").unwrap();
        assert_eq!(h.last_seen_ns, T + 10 * SEC, "restamped at the wall clock");
        // Normal traffic later is not clipped, and the alerts go exactly as without the
        // far record (the flow-flood ones release after a second, the scans hold).
        let later = syn(1_001, "10.0.0.3", "10.0.0.2", 80, T + 2 * SEC);
        s.apply_batch(vec![later.clone()]);
        assert_eq!(s.totals.clamped_times, 1);
        let mut reference = State::default();
        reference.set_wall_clock(T + 10 * SEC);
        reference.apply_batch(scan());
        reference.apply_batch(vec![later]);
        assert_eq!(
            (
                s.analysis.counters.host_alerts_engaged,
                s.analysis.counters.host_alerts_released
            ),
            (
                reference.analysis.counters.host_alerts_engaged,
                reference.analysis.counters.host_alerts_released
            )
        );
        assert!(
            s.analysis.counters.host_alerts_released < engaged,
            "some alerts still hold"
        );
        // Without the guard the same century jump releases the scan (the test can fail).
        let mut unguarded = State::default();
        unguarded.apply_batch(scan());
        unguarded.apply_batch(vec![syn(1_000, "10.9.9.9", "10.0.0.2", 80, far)]);
        assert!(unguarded.analysis.counters.host_alerts_released >= 1);
    }

    #[test]
    fn the_wall_clock_bounds_even_the_first_record() {
        let mut s = State::default();
        s.set_wall_clock(T);
        s.apply_batch(vec![syn(1, "10.0.0.1", "10.0.0.2", 80, T + 3_600 * SEC)]);
        assert_eq!(s.totals.clamped_times, 1);
        assert_eq!(s.analysis.now_ns, T);
        assert_eq!(s.flows.ended_len(), 1);
        // Within the skew: kept as stamped.
        s.apply_batch(vec![syn(2, "10.0.0.1", "10.0.0.2", 81, T + 60 * SEC)]);
        assert_eq!(s.totals.clamped_times, 1);
    }

    #[test]
    fn replays_are_not_clipped_and_stay_deterministic() {
        // Two captures a day apart, replayed back to back, with the wall clock years later:
        // the clock follows the second capture; a replay gives the same state every time.
        let day = 86_400 * SEC;
        let mut records = scan();
        records.extend((0..40).map(|i| syn(500 + i, "10.0.0.5", "10.0.0.6", 80, T + day + i)));
        let run = |wall: u64| {
            let mut s = State::default();
            s.set_wall_clock(wall);
            s.apply_batch(records.clone());
            (s.totals.clamped_times, s.analysis.now_ns, host_rows(&s))
        };
        let (clamped, now, rows) = run(T + 1_000 * day);
        assert_eq!((clamped, now), (0, T + day + 39));
        assert_eq!(run(T + 2_000 * day), (clamped, now, rows));
    }

    #[test]
    fn records_without_addresses_are_ignored() {
        let mut s = State::default();
        s.apply_record(FlowRecord {
            client_ip: vec![1, 2, 3],
            ..Default::default()
        });
        assert_eq!(
            (s.totals.records, s.totals.invalid_records, s.hosts.len()),
            (0, 1, 0)
        );
    }
}
