//! Shard snapshots: the state of the hosts of one shard and the stream sequence it covers,
//! taken together, so that "restore the snapshot, then apply the stream from `seq + 1`" gives
//! exactly the state of a replica that applied everything once.
//!
//! A snapshot holds, for the hosts whose address falls in the shard: their totals
//! ([`HostSnap`]) and the per-(flow, side) counter snapshots that turn the next cumulative
//! records of their running flows into deltas ([`SideSnap`]). It is JSON, cut into chunks of at
//! most `max_chunk` bytes stored under `shard.<s>.<generation>.<i>` in KV `nw-state`; the key
//! `shard.<s>` names the current generation and is written last, so a reader sees a whole old
//! snapshot or a whole new one, never a mix.

use std::net::IpAddr;

use bytes::Bytes;
use netwarden_api::names::shard_of;
use serde::{Deserialize, Serialize};

use crate::alerts::SeriesSample;
use crate::checks::ScoreKind;
use crate::hosts::{
    Counters, Host, HostKey, PeerCount, PointKey, ProtocolCount, Side, Snapshot as DeltaSnapshot,
};
use crate::score::{Accumulated, Contribution, Gauge, HostScore, MAX_CONTRIBUTIONS};
use crate::state::State;
use crate::store::FlowKey;
use netwarden_api::alert::Entity;

/// Format version written in every snapshot (a reader refuses other versions).
pub const VERSION: u32 = 1;

/// One host's totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSnap {
    /// Address.
    pub ip: IpAddr,
    /// VLAN.
    pub vlan: u32,
    /// Bytes sent, received; packets sent, received.
    pub bytes: [u64; 4],
    /// Flows as client, as server; active as client, as server.
    pub flows: [u64; 4],
    /// First and last packet time, ns.
    pub seen_ns: [u64; 2],
    /// (protocol, flows, bytes).
    pub protocols: Vec<(String, u64, u64)>,
    /// (peer, flows, bytes).
    pub peers: Vec<(IpAddr, u64, u64)>,
    /// Observation point keys.
    pub points: Vec<u64>,
}

impl HostSnap {
    fn of(h: &Host) -> Self {
        Self {
            ip: h.key.ip,
            vlan: h.key.vlan,
            bytes: [h.bytes_sent, h.bytes_rcvd, h.packets_sent, h.packets_rcvd],
            flows: [
                h.flows_as_client,
                h.flows_as_server,
                h.active_flows_as_client,
                h.active_flows_as_server,
            ],
            seen_ns: [h.first_seen_ns, h.last_seen_ns],
            protocols: h
                .protocols
                .iter()
                .map(|p| (p.name.clone(), p.flows, p.bytes))
                .collect(),
            peers: h.peers.iter().map(|p| (p.ip, p.flows, p.bytes)).collect(),
            points: h.points.iter().map(|p| p.0).collect(),
        }
    }

    fn to_host(&self) -> Host {
        // Built from `Host::new` so that fields added later start at their defaults.
        let mut h = Host::new(HostKey {
            ip: self.ip,
            vlan: self.vlan,
        });
        [h.bytes_sent, h.bytes_rcvd, h.packets_sent, h.packets_rcvd] = self.bytes;
        [
            h.flows_as_client,
            h.flows_as_server,
            h.active_flows_as_client,
            h.active_flows_as_server,
        ] = self.flows;
        [h.first_seen_ns, h.last_seen_ns] = self.seen_ns;
        h.protocols = self
            .protocols
            .iter()
            .map(|(name, flows, bytes)| ProtocolCount {
                name: name.clone(),
                flows: *flows,
                bytes: *bytes,
            })
            .collect();
        h.peers = self
            .peers
            .iter()
            .map(|(ip, flows, bytes)| PeerCount {
                ip: *ip,
                flows: *flows,
                bytes: *bytes,
            })
            .collect();
        h.points = self.points.iter().map(|p| PointKey(*p)).collect();
        h
    }
}

/// One running flow's counters already applied to one host of the shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideSnap {
    /// Observation point key and the sensor's flow id.
    pub flow: (u64, u64),
    /// The host is the flow's server (else its client).
    pub server: bool,
    /// The host.
    pub ip: IpAddr,
    /// Its VLAN.
    pub vlan: u32,
    /// c2s packets, c2s bytes, s2c packets, s2c bytes applied.
    pub applied: [u64; 4],
    /// The flow's first packet time.
    pub first_seen_ns: u64,
    /// Whether the flow was counted under an L7 protocol.
    pub l7_counted: bool,
}

/// The state of one shard and the last stream sequence it includes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardSnapshot {
    /// [`VERSION`].
    pub version: u32,
    /// The shard.
    pub shard: u32,
    /// Stream sequence of the last message applied (0: none).
    pub seq: u64,
    /// Hosts of the shard.
    pub hosts: Vec<HostSnap>,
    /// Running flows' applied counters of those hosts.
    pub sides: Vec<SideSnap>,
    /// Scores of the shard's hosts (absent in snapshots of older replicas).
    #[serde(default)]
    pub scores: Vec<ScoreSnap>,
    /// DES series of the shard's hosts (absent in snapshots of older replicas).
    #[serde(default)]
    pub series: Vec<SeriesSnap>,
}

/// One contribution to a host's score ([`crate::score::Contribution`] without its roll-up:
/// observation-point and network scores are per replica).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContributionSnap {
    /// Alert key.
    pub key: String,
    /// Alert type.
    pub alert_type: String,
    /// Flow or host alert.
    pub entity: Entity,
    /// Earned as client.
    pub as_client: bool,
    /// Network or security.
    pub kind: ScoreKind,
    /// Points.
    pub points: u16,
    /// The other end.
    pub peer: Option<IpAddr>,
    /// Added at, ns.
    pub since_ns: u64,
    /// Leaving since, ns.
    pub leaving_since_ns: Option<u64>,
}

impl ContributionSnap {
    fn of(c: &Contribution) -> Self {
        Self {
            key: c.alert_key.clone(),
            alert_type: c.alert_type.clone(),
            entity: c.entity,
            as_client: c.as_client,
            kind: c.kind,
            points: c.points,
            peer: c.peer,
            since_ns: c.since_ns,
            leaving_since_ns: c.leaving_since_ns,
        }
    }

    fn to_contribution(&self) -> Contribution {
        Contribution {
            alert_key: self.key.clone(),
            alert_type: self.alert_type.clone(),
            entity: self.entity,
            as_client: self.as_client,
            kind: self.kind,
            points: self.points,
            peer: self.peer,
            since_ns: self.since_ns,
            leaving_since_ns: self.leaving_since_ns,
            roll: None,
        }
    }
}

/// One host's score ([`crate::score::HostScore`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreSnap {
    /// Address.
    pub ip: IpAddr,
    /// VLAN.
    pub vlan: u32,
    /// Gauges, client then server, network then security: `[target, from, start_ns]`.
    pub gauges: [[u64; 3]; 4],
    /// Live contributions.
    pub contributions: Vec<ContributionSnap>,
    /// Contributions whose points are leaving.
    pub leaving: Vec<ContributionSnap>,
    /// Live points not listed.
    pub omitted_points: u64,
    /// Points ever added.
    pub accumulated: u64,
    /// (alert type, as client, kind, points, alerts).
    pub accumulated_by: Vec<(String, bool, ScoreKind, u64, u64)>,
}

impl ScoreSnap {
    fn of(key: HostKey, s: &HostScore) -> Self {
        let g = &s.gauges;
        Self {
            ip: key.ip,
            vlan: key.vlan,
            gauges: [
                g.client[0].parts(),
                g.client[1].parts(),
                g.server[0].parts(),
                g.server[1].parts(),
            ],
            contributions: s.contributions.iter().map(ContributionSnap::of).collect(),
            leaving: s.leaving.iter().map(ContributionSnap::of).collect(),
            omitted_points: s.omitted_points,
            accumulated: s.accumulated,
            accumulated_by: s
                .accumulated_by
                .iter()
                .map(|a| {
                    (
                        a.alert_type.clone(),
                        a.as_client,
                        a.kind,
                        a.points,
                        a.alerts,
                    )
                })
                .collect(),
        }
    }

    fn to_score(&self) -> HostScore {
        let mut s = HostScore::default();
        let [c0, c1, s0, s1] = self.gauges;
        s.gauges.client = [Gauge::from_parts(c0), Gauge::from_parts(c1)];
        s.gauges.server = [Gauge::from_parts(s0), Gauge::from_parts(s1)];
        s.contributions = self
            .contributions
            .iter()
            .take(MAX_CONTRIBUTIONS)
            .map(ContributionSnap::to_contribution)
            .collect();
        s.leaving = self
            .leaving
            .iter()
            .take(MAX_CONTRIBUTIONS)
            .map(ContributionSnap::to_contribution)
            .collect();
        s.omitted_points = self.omitted_points;
        s.accumulated = self.accumulated;
        s.accumulated_by = self
            .accumulated_by
            .iter()
            .take(MAX_CONTRIBUTIONS)
            .map(|(t, c, k, p, a)| Accumulated {
                alert_type: t.clone(),
                as_client: *c,
                kind: *k,
                points: *p,
                alerts: *a,
            })
            .collect();
        s
    }
}

/// One kept DES sample: (t, value, forecast, lower, upper, anomaly).
pub type SampleSnap = (u64, f64, f64, f64, f64, bool);

/// One host's DES series (one per metric of [`crate::alerts::HOST_METRICS`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesSnap {
    /// Address.
    pub ip: IpAddr,
    /// VLAN.
    pub vlan: u32,
    /// Per metric: (samples seen, [forecast, trend, sse, sse_next], roll-up).
    pub des: [crate::anomaly::DesState; 7],
    /// Per metric: the kept samples as (t, value, forecast, lower, upper, anomaly).
    pub samples: [Vec<SampleSnap>; 7],
    /// Bytes sent and received at the last sample.
    pub last_bytes: (u64, u64),
}

/// Takes the snapshot of `shard` (of `shards`) from `state`, covering stream sequence `seq`.
pub fn capture(state: &State, shard: u32, shards: u32, seq: u64) -> ShardSnapshot {
    let mut hosts: Vec<HostSnap> = state
        .hosts
        .iter()
        .filter(|h| shard_of(h.key.ip, shards) == shard)
        .map(HostSnap::of)
        .collect();
    hosts.sort_by_key(|h| (h.ip, h.vlan));
    let mut sides: Vec<SideSnap> = state
        .deltas()
        .entries()
        .filter(|(_, s)| shard_of(s.host.ip, shards) == shard)
        .map(|((flow, side), s)| SideSnap {
            flow: (flow.point.0, flow.flow_id),
            server: side == Side::Server,
            ip: s.host.ip,
            vlan: s.host.vlan,
            applied: [
                s.applied.c2s_packets,
                s.applied.c2s_bytes,
                s.applied.s2c_packets,
                s.applied.s2c_bytes,
            ],
            first_seen_ns: s.first_seen_ns,
            l7_counted: s.l7_counted,
        })
        .collect();
    sides.sort_by_key(|s| (s.flow, s.server));
    let mut scores: Vec<ScoreSnap> = state
        .analysis
        .scores
        .hosts()
        .filter(|(k, _)| shard_of(k.ip, shards) == shard)
        .map(|(k, s)| ScoreSnap::of(*k, s))
        .collect();
    scores.sort_by_key(|s| (s.ip, s.vlan));
    let series = hosts
        .iter()
        .filter_map(|h| {
            let key = HostKey {
                ip: h.ip,
                vlan: h.vlan,
            };
            let (des, samples, last_bytes) = state.analysis.host_series_state(&key)?;
            Some(SeriesSnap {
                ip: h.ip,
                vlan: h.vlan,
                des,
                samples: std::array::from_fn(|i| {
                    samples[i]
                        .iter()
                        .map(|x| (x.t_ns, x.value, x.forecast, x.lower, x.upper, x.anomaly))
                        .collect()
                }),
                last_bytes,
            })
        })
        .collect();
    ShardSnapshot {
        version: VERSION,
        shard,
        seq,
        hosts,
        sides,
        scores,
        series,
    }
}

/// Removes every host of `shard` and its running flows' counters from `state` (the shard was
/// handed over). Returns the number of hosts removed.
pub fn release(state: &mut State, shard: u32, shards: u32) -> usize {
    let keys: Vec<HostKey> = state
        .hosts
        .iter()
        .filter(|h| shard_of(h.key.ip, shards) == shard)
        .map(|h| h.key)
        .collect();
    let scored: Vec<HostKey> = state
        .analysis
        .scores
        .hosts()
        .map(|(k, _)| *k)
        .filter(|k| shard_of(k.ip, shards) == shard)
        .collect();
    for k in keys.iter().chain(&scored) {
        state.analysis.forget_host(k);
    }
    for k in &keys {
        if let Some(h) = state.hosts.remove(k) {
            for p in &h.points {
                state.points.count_host(*p, false);
            }
        }
    }
    let sides: Vec<(FlowKey, Side)> = state
        .deltas()
        .entries()
        .filter(|(_, s)| shard_of(s.host.ip, shards) == shard)
        .map(|(k, _)| k)
        .collect();
    for (flow, side) in sides {
        state.deltas_mut().forget(flow, side);
    }
    keys.len()
}

/// Puts `snap` into `state` (after [`release`] of the same shard).
pub fn restore(state: &mut State, snap: &ShardSnapshot) {
    for s in &snap.scores {
        let key = HostKey {
            ip: s.ip,
            vlan: s.vlan,
        };
        state.analysis.scores.restore_host(key, s.to_score());
    }
    for s in &snap.series {
        let key = HostKey {
            ip: s.ip,
            vlan: s.vlan,
        };
        let samples = std::array::from_fn(|i| {
            s.samples[i]
                .iter()
                .rev()
                .take(crate::alerts::SERIES_LEN)
                .rev()
                .map(
                    |&(t_ns, value, forecast, lower, upper, anomaly)| SeriesSample {
                        t_ns,
                        value,
                        forecast,
                        lower,
                        upper,
                        anomaly,
                    },
                )
                .collect()
        });
        state
            .analysis
            .restore_host_series(key, s.des, samples, s.last_bytes);
    }
    for h in &snap.hosts {
        let host = h.to_host();
        for p in &host.points {
            state.points.count_host(*p, true);
        }
        if let Some(gone) = state.hosts.insert(host) {
            for p in &gone.points {
                state.points.count_host(*p, false);
            }
        }
    }
    for s in &snap.sides {
        let flow = FlowKey {
            point: PointKey(s.flow.0),
            flow_id: s.flow.1,
        };
        let side = if s.server { Side::Server } else { Side::Client };
        let [c2s_packets, c2s_bytes, s2c_packets, s2c_bytes] = s.applied;
        let delta = DeltaSnapshot {
            host: HostKey {
                ip: s.ip,
                vlan: s.vlan,
            },
            applied: Counters {
                c2s_packets,
                c2s_bytes,
                s2c_packets,
                s2c_bytes,
            },
            first_seen_ns: s.first_seen_ns,
            l7_counted: s.l7_counted,
        };
        if let Some((lost_side, lost)) = state.deltas_mut().restore(flow, side, delta)
            && let Some(h) = state.hosts.get_mut(&lost.host)
        {
            h.release_active(lost_side);
        }
    }
}

/// The KV key naming the current generation of `shard`'s snapshot.
pub fn head_key(shard: u32) -> String {
    format!("shard.{shard}")
}

/// The KV key of chunk `i` of generation `generation` of `shard`'s snapshot.
pub fn chunk_key(shard: u32, generation: u64, i: usize) -> String {
    format!("shard.{shard}.{generation}.{i}")
}

/// What `shard.<s>` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Sequence covered (also in the snapshot; here to read it cheaply).
    pub seq: u64,
    /// Generation of the chunks.
    pub generation: u64,
    /// Number of chunks.
    pub chunks: usize,
    /// Total bytes.
    pub bytes: usize,
    /// The replica that wrote it.
    pub writer: String,
}

/// Cuts an encoded snapshot into chunks of at most `max_chunk` bytes.
pub fn chunks(encoded: &[u8], max_chunk: usize) -> Vec<Bytes> {
    let max_chunk = max_chunk.max(1);
    if encoded.is_empty() {
        return vec![Bytes::new()];
    }
    encoded
        .chunks(max_chunk)
        .map(Bytes::copy_from_slice)
        .collect()
}

/// Decodes a snapshot from its chunks, checking what it claims to be.
pub fn decode(parts: &[Bytes], shard: u32) -> Result<ShardSnapshot, String> {
    let mut all = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
    for p in parts {
        all.extend_from_slice(p);
    }
    let snap: ShardSnapshot = serde_json::from_slice(&all).map_err(|e| e.to_string())?;
    if snap.version != VERSION {
        return Err(format!(
            "snapshot version {} (expected {VERSION})",
            snap.version
        ));
    }
    if snap.shard != shard {
        return Err(format!(
            "snapshot of shard {} under shard {shard}",
            snap.shard
        ));
    }
    Ok(snap)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, Role, ip_to_bytes};

    use super::*;
    use crate::state::StateConfig;

    const SHARDS: u32 = 8;

    fn record(id: u64, client: &str, server: &str, bytes: u64, fin: bool) -> FlowRecord {
        FlowRecord {
            flow_id: id,
            ip_version: 4,
            client_ip: ip_to_bytes(client.parse().unwrap()),
            server_ip: ip_to_bytes(server.parse().unwrap()),
            l4_proto: 6,
            first_seen_ns: 1_000 + id,
            last_seen_ns: 2_000 + bytes,
            update: if fin {
                FlowUpdate::Final
            } else {
                FlowUpdate::Periodic
            } as i32,
            c2s: Some(DirectionStats {
                packets: bytes / 10,
                bytes,
                ..Default::default()
            }),
            s2c: Some(DirectionStats {
                packets: bytes / 20,
                bytes: bytes / 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The bus copies of `r` that go to `shard`.
    fn copies_for(r: &FlowRecord, shard: u32) -> Vec<FlowRecord> {
        let (c, s) = (r.client_addr().unwrap(), r.server_addr().unwrap());
        let (cs, ss) = (shard_of(c, SHARDS), shard_of(s, SHARDS));
        let mut out = Vec::new();
        if cs == shard {
            out.push(FlowRecord {
                role: Role::Client as i32,
                ..r.clone()
            });
        }
        if ss == shard && cs != ss {
            out.push(FlowRecord {
                role: Role::Server as i32,
                ..r.clone()
            });
        }
        out
    }

    fn corpus() -> Vec<FlowRecord> {
        let mut v = Vec::new();
        for i in 0..40u64 {
            let c = format!("10.0.{}.{}", i % 3, i % 7 + 1);
            let s = format!("192.168.{}.{}", i % 5, i % 11 + 1);
            v.push(record(i, &c, &s, 100 * (i + 1), false));
            v.push(record(i, &c, &s, 300 * (i + 1), i % 2 == 0));
        }
        v
    }

    fn config() -> StateConfig {
        StateConfig {
            shards: SHARDS,
            ..StateConfig::default()
        }
    }

    fn rows(state: &State, shard: u32) -> Vec<HostSnap> {
        capture(state, shard, SHARDS, 0).hosts
    }

    #[test]
    fn snapshot_then_the_rest_equals_everything_once() {
        let all = corpus();
        for shard in 0..SHARDS {
            let stream: Vec<FlowRecord> = all.iter().flat_map(|r| copies_for(r, shard)).collect();
            let mut whole = State::new(&config());
            whole.apply_batch(stream.clone());
            for cut in [0, 1, stream.len() / 2, stream.len()] {
                let mut first = State::new(&config());
                first.apply_batch(stream[..cut].to_vec());
                let snap = capture(&first, shard, SHARDS, cut as u64);
                // Through the wire format and chunking.
                let encoded = serde_json::to_vec(&snap).unwrap();
                let parts = chunks(&encoded, 97);
                let back = decode(&parts, shard).unwrap();
                assert_eq!(back, snap);
                let mut second = State::new(&config());
                restore(&mut second, &back);
                second.apply_batch(stream[cut..].to_vec());
                assert_eq!(
                    rows(&second, shard),
                    rows(&whole, shard),
                    "shard {shard} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn release_removes_the_shard_only() {
        let all = corpus();
        let mut s = State::new(&config());
        s.apply_batch(all);
        let before: Vec<usize> = (0..SHARDS).map(|sh| rows(&s, sh).len()).collect();
        let removed = release(&mut s, 3, SHARDS);
        assert_eq!(removed, before[3]);
        assert!(rows(&s, 3).is_empty());
        assert!(capture(&s, 3, SHARDS, 0).sides.is_empty());
        for sh in (0..SHARDS).filter(|sh| *sh != 3) {
            assert_eq!(rows(&s, sh).len(), before[sh as usize]);
        }
    }

    #[test]
    fn scores_and_series_move_with_the_shard() {
        let mut all = corpus();
        for (i, r) in all.iter_mut().enumerate() {
            r.server_port = 443;
            if i % 3 == 0 {
                r.set_risk(6, Some(format!("CN=x{i}")));
            }
        }
        let mut s = State::new(&config());
        s.apply_batch(all);
        let shard = (0..SHARDS)
            .find(|sh| !capture(&s, *sh, SHARDS, 0).scores.is_empty())
            .expect("the corpus scores some host");
        let first = &capture(&s, shard, SHARDS, 0).scores[0];
        let key = HostKey {
            ip: first.ip,
            vlan: first.vlan,
        };
        let mut des = [(0, [0.0; 4], 0); 7];
        des[0] = (5, [1.5, -0.25, 3.0, 4.0], 1);
        let samples = std::array::from_fn(|i| {
            std::iter::repeat_n(
                SeriesSample {
                    t_ns: 7,
                    value: i as f64,
                    forecast: 1.0,
                    lower: 0.5,
                    upper: 2.0,
                    anomaly: i == 3,
                },
                i,
            )
            .collect()
        });
        s.analysis.restore_host_series(key, des, samples, (10, 20));
        let snap = capture(&s, shard, SHARDS, 7);
        assert_eq!(snap.series.len(), 1);
        assert!(snap.scores.iter().any(|x| !x.contributions.is_empty()));
        let back = decode(&chunks(&serde_json::to_vec(&snap).unwrap(), 101), shard).unwrap();
        assert_eq!(back, snap);
        let mut other = State::new(&config());
        restore(&mut other, &back);
        let again = capture(&other, shard, SHARDS, 7);
        assert_eq!((&again.scores, &again.series), (&snap.scores, &snap.series));
        let now = s.analysis.now_ns;
        assert_eq!(
            other.analysis.scores.values(&key, now),
            s.analysis.scores.values(&key, now)
        );
        assert_eq!(
            other.analysis.series(&key, crate::alerts::HOST_METRICS[3]),
            s.analysis.series(&key, crate::alerts::HOST_METRICS[3])
        );
        release(&mut other, shard, SHARDS);
        let gone = capture(&other, shard, SHARDS, 7);
        assert!(gone.scores.is_empty() && gone.series.is_empty());
        assert!(other.analysis.scores.host(&key).is_none());
    }

    #[test]
    fn bad_snapshots_are_refused() {
        assert!(decode(&[Bytes::from_static(b"{nope")], 1).is_err());
        let snap = ShardSnapshot {
            version: VERSION,
            shard: 2,
            seq: 9,
            hosts: vec![],
            sides: vec![],
            scores: vec![],
            series: vec![],
        };
        let enc = Bytes::from(serde_json::to_vec(&snap).unwrap());
        assert!(decode(std::slice::from_ref(&enc), 3).is_err());
        assert_eq!(decode(&[enc], 2).unwrap().seq, 9);
        let old = ShardSnapshot {
            version: 99,
            ..snap
        };
        assert!(decode(&[Bytes::from(serde_json::to_vec(&old).unwrap())], 2).is_err());
    }
}
