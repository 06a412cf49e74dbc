//! Sharing the map between engine replicas through the KV bucket `nw-servicemap`
//! (`api::names::SERVICEMAP_BUCKET`), batched.
//!
//! Keys (NATS KV tokens): `edge.<id>.<replica>`, this replica's view of an edge (its nodes,
//! service, times, the flows and bytes it counted, status); `decision.<id>`, a status set
//! through the API. Every replica publishes the edges it changed every
//! [`PUBLISH_INTERVAL`] (at most [`MAX_PER_BATCH`] per round), and folds what the others
//! publish into its own map: an edge it does not have is added with their status, counts of
//! other replicas are kept per replica and summed (`remote_*`), decisions are applied on every
//! replica and, since the watch replays the bucket, after a restart.
//!
//! Must not: trust the bucket. A value is bounded ([`MAX_VALUE_BYTES`], names as the directory
//! contract), and an edge record whose fields do not hash to the id in its key is rejected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use netwarden_api::bus::{Kv, KvChange};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use super::ServiceMap;
use super::edge::{Edge, Learned, NodeRef, Status, edge_id, id_text, parse_id};
use crate::state::SharedState;

/// How often changed edges are published.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(2);
/// Most edges published per round (the rest wait for the next).
pub const MAX_PER_BATCH: usize = 2000;
/// Largest value accepted from the bucket.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Longest name accepted (namespace, kind, workload, L7, observation point).
const MAX_NAME: usize = 320;

/// A node on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireNode {
    /// The address of a host node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Namespace of a workload node (empty for Nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kind of a workload node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of a workload node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl WireNode {
    fn of(n: &super::Node) -> Self {
        match n {
            super::Node::Host { ip } => Self {
                ip: Some(*ip),
                namespace: None,
                kind: None,
                name: None,
            },
            super::Node::Workload {
                namespace,
                kind,
                name,
            } => Self {
                ip: None,
                namespace: Some(namespace.to_string()),
                kind: Some(kind.to_string()),
                name: Some(name.to_string()),
            },
        }
    }

    fn node_ref(&self) -> Option<NodeRef<'_>> {
        match (self.ip, &self.namespace, &self.kind, &self.name) {
            (Some(ip), None, None, None) => Some(NodeRef::Host(ip)),
            (None, Some(ns), Some(kind), Some(name))
                if ns.len() <= MAX_NAME && kind.len() <= MAX_NAME && name.len() <= MAX_NAME =>
            {
                Some(NodeRef::Named {
                    namespace: ns,
                    kind,
                    name,
                })
            }
            _ => None,
        }
    }
}

/// One replica's view of an edge (`edge.<id>.<replica>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEdge {
    /// Client node.
    pub client: WireNode,
    /// Server node.
    pub server: WireNode,
    /// Server port.
    pub port: u16,
    /// L4 protocol number.
    pub l4: u8,
    /// L7 application.
    pub l7: String,
    /// VLAN.
    pub vlan: u16,
    /// Observation point.
    pub observation_point: String,
    /// First flow start, ns.
    pub first_seen_ns: u64,
    /// Last record, ns.
    pub last_seen_ns: u64,
    /// Flows this replica counted.
    pub flows: u64,
    /// Client-to-server bytes this replica counted.
    pub bytes_c2s: u64,
    /// Server-to-client bytes this replica counted.
    pub bytes_s2c: u64,
    /// Status on this replica.
    pub status: Status,
    /// Last client address.
    pub client_ip: IpAddr,
    /// Last server address.
    pub server_ip: IpAddr,
}

/// A decision made through the API (`decision.<id>.<replica>`; `decision.<id>` from older
/// engines). The newest wins on every replica, whatever the order it arrives in: later
/// `decided_ns`, then the greater replica name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireDecision {
    /// The status set.
    pub status: Status,
    /// When it was made (wall clock, ns since the epoch; 0 from older engines).
    #[serde(default)]
    pub decided_ns: u64,
    /// The replica whose API took it (the key's replica token).
    #[serde(default)]
    pub replica: String,
}

/// The newest decision known for an edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The status.
    pub status: Status,
    /// When it was made (wall clock, ns).
    pub decided_ns: u64,
    /// Which replica's API took it.
    pub replica: String,
}

impl Decision {
    /// Whether `self` wins over `other` (later, then the greater replica name).
    pub fn beats(&self, other: &Self) -> bool {
        (self.decided_ns, &self.replica) > (other.decided_ns, &other.replica)
    }
}

/// Counters of sharing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShareCounters {
    /// Edge records published.
    pub published: u64,
    /// Records and decisions of other replicas applied.
    pub applied: u64,
    /// Keys or values rejected (malformed, oversized, id mismatch).
    pub rejected: u64,
    /// Keys of edges that left this replica's map, deleted from the bucket.
    pub deleted: u64,
    /// Put or delete failures.
    pub errors: u64,
}

/// The sharing part of a [`ServiceMap`].
#[derive(Debug, Default)]
pub struct Sharing {
    replica: String,
    dirty: hashbrown::HashSet<u64>,
    /// Decisions taken here, to publish.
    decisions: Vec<(u64, Decision)>,
    /// Edges that left the map, to delete from the bucket.
    gone: std::collections::VecDeque<u64>,
    /// (edge, replica) → (flows, c2s, s2c) last published by that replica.
    remote: HashMap<(u64, String), [u64; 3]>,
    /// The newest decision known per edge (in the map or not: it applies when the edge is
    /// created again).
    known: HashMap<u64, Decision>,
    /// Counters.
    pub counters: ShareCounters,
}

/// `replica` reduced to KV-key characters (`[A-Za-z0-9_-]`, at most 64).
pub fn key_token(replica: &str) -> String {
    let t: String = replica
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if t.is_empty() { "engine".into() } else { t }
}

impl Sharing {
    pub(super) fn touched(&mut self, id: u64) {
        self.dirty.insert(id);
    }

    /// A decision taken through this replica's API at wall-clock `decided_ns`.
    pub(super) fn decided(&mut self, id: u64, status: Status, decided_ns: u64) {
        let d = Decision {
            status,
            decided_ns,
            replica: self.replica.clone(),
        };
        self.known.insert(id, d.clone());
        self.decisions.push((id, d));
    }

    /// The newest decision known for a new edge `id`.
    pub(super) fn pending_decision(&self, id: u64) -> Option<Status> {
        self.known.get(&id).map(|d| d.status)
    }

    /// Keeps `d` if it is the newest known for `id`; returns whether it is.
    fn learn(&mut self, id: u64, d: Decision, capacity: usize) -> bool {
        match self.known.get(&id) {
            Some(k) if !d.beats(k) => false,
            Some(_) => {
                self.known.insert(id, d);
                true
            }
            None if self.known.len() < capacity => {
                self.known.insert(id, d);
                true
            }
            // Bounded: a decision beyond that many edges still applies to a present edge.
            None => true,
        }
    }
}

impl ServiceMap {
    /// Starts tracking what to publish as `replica` (see the module documentation).
    pub fn enable_sharing(&mut self, replica: &str) {
        self.edges.track_removed(true);
        self.sharing = Some(Sharing {
            replica: key_token(replica),
            ..Sharing::default()
        });
    }

    /// The sharing counters, when sharing is on.
    pub fn share_counters(&self) -> Option<ShareCounters> {
        self.sharing.as_ref().map(|s| s.counters)
    }

    /// What to write to the bucket now: decisions, deletions of the keys of edges that left
    /// the map (evicted or expired; at most `max`), then at most `max` changed edges. `None`
    /// deletes the key.
    pub fn take_updates(&mut self, max: usize) -> Vec<(String, Option<Bytes>)> {
        let removed = self.edges.take_removed();
        let Some(sh) = self.sharing.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, d) in sh.decisions.drain(..) {
            let w = WireDecision {
                status: d.status,
                decided_ns: d.decided_ns,
                replica: d.replica,
            };
            if let Ok(v) = serde_json::to_vec(&w) {
                out.push((
                    format!("decision.{}.{}", id_text(id), sh.replica),
                    Some(Bytes::from(v)),
                ));
            }
        }
        for id in removed {
            sh.dirty.remove(&id);
            if sh.gone.len() < self.edges.capacity() {
                sh.gone.push_back(id);
            }
        }
        let mut deleted = 0;
        while deleted < max
            && let Some(id) = sh.gone.pop_front()
        {
            if self.edges.get(id).is_none() {
                out.push((format!("edge.{}.{}", id_text(id), sh.replica), None));
                sh.counters.deleted += 1;
                deleted += 1;
            }
        }
        let ids: Vec<u64> = sh.dirty.iter().copied().take(max).collect();
        for id in ids {
            sh.dirty.remove(&id);
            let Some(e) = self.edges.get(id) else {
                continue;
            };
            let w = WireEdge {
                client: WireNode::of(&e.client),
                server: WireNode::of(&e.server),
                port: e.port,
                l4: e.l4,
                l7: e.l7.to_string(),
                vlan: e.vlan,
                observation_point: e.observation_point.to_string(),
                first_seen_ns: e.first_seen_ns,
                last_seen_ns: e.last_seen_ns,
                flows: e.flows,
                bytes_c2s: e.bytes_c2s,
                bytes_s2c: e.bytes_s2c,
                status: e.status,
                client_ip: e.client_ip,
                server_ip: e.server_ip,
            };
            if let Ok(v) = serde_json::to_vec(&w) {
                out.push((
                    format!("edge.{}.{}", id_text(id), sh.replica),
                    Some(Bytes::from(v)),
                ));
                sh.counters.published += 1;
            }
        }
        out
    }

    /// Folds one change of the bucket into the map (our own edge records are skipped).
    pub fn apply_shared(&mut self, change: &KvChange) -> Result<(), String> {
        let Some(sh) = self.sharing.as_ref() else {
            return Ok(());
        };
        let (key, value) = match change {
            KvChange::Put { key, value } => (key, Some(value)),
            KvChange::Delete { key } => (key, None),
        };
        if value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(format!("value of {} bytes", value.map_or(0, Bytes::len)));
        }
        let mut parts = key.splitn(3, '.');
        let (kind, id, replica) = (parts.next(), parts.next(), parts.next());
        let id = id.and_then(parse_id).ok_or_else(|| "bad key".to_owned())?;
        match (kind, replica, value) {
            (Some("decision"), _, None) => Ok(()),
            (Some("decision"), replica, Some(value)) => {
                let w: WireDecision = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                let from = replica.unwrap_or("");
                if key_token(from) != from && !from.is_empty() {
                    return Err("bad key".into());
                }
                let d = Decision {
                    status: w.status,
                    decided_ns: w.decided_ns,
                    // The key names the replica (the value's claim is not trusted).
                    replica: from.to_owned(),
                };
                self.apply_decision(id, d);
                Ok(())
            }
            (Some("edge"), Some(replica), _) if replica == sh.replica => Ok(()),
            (Some("edge"), Some(replica), None) => {
                self.forget_remote(id, replica);
                Ok(())
            }
            (Some("edge"), Some(replica), Some(value)) => {
                let w: WireEdge = serde_json::from_slice(value).map_err(|e| e.to_string())?;
                self.apply_edge(id, replica, &w)
            }
            _ => Err("bad key".into()),
        }
    }

    /// Another replica forgot edge `id`: its counts leave the cluster totals here.
    fn forget_remote(&mut self, id: u64, replica: &str) {
        let Some(sh) = self.sharing.as_mut() else {
            return;
        };
        let Some(old) = sh.remote.remove(&(id, replica.to_owned())) else {
            return;
        };
        if let Some(e) = self.edges.get_mut(id) {
            for (r, o) in e.remote.iter_mut().zip(old) {
                *r = r.saturating_sub(o);
            }
        }
    }

    fn apply_decision(&mut self, id: u64, d: Decision) {
        let capacity = self.edges.capacity();
        let Some(sh) = self.sharing.as_mut() else {
            return;
        };
        let status = d.status;
        if !sh.learn(id, d, capacity) {
            // An older decision than one already applied: the newest wins everywhere.
            return;
        }
        sh.counters.applied += 1;
        if let Some(e) = self.edges.get_mut(id) {
            e.status = status;
            e.learned = Learned::Manual;
            e.policy = None;
            self.counters.status_changes += 1;
        }
        self.edges.requeue(id);
    }

    fn apply_edge(&mut self, id: u64, replica: &str, w: &WireEdge) -> Result<(), String> {
        let (Some(c), Some(s)) = (w.client.node_ref(), w.server.node_ref()) else {
            return Err("bad node".into());
        };
        if w.l7.len() > MAX_NAME || w.observation_point.len() > MAX_NAME {
            return Err("name too long".into());
        }
        if edge_id(&c, &s, w.port, w.l4, &w.l7, w.vlan) != id {
            return Err("the record does not hash to its id".into());
        }
        let counts = [w.flows, w.bytes_c2s, w.bytes_s2c];
        if self.edges.get(id).is_none() {
            let decided = self.sharing.as_ref().and_then(|sh| sh.pending_decision(id));
            let (status, learned) =
                decided.map_or((w.status, Learned::Replica), |st| (st, Learned::Manual));
            self.edges.insert(Edge {
                id,
                client: c.to_node(),
                server: s.to_node(),
                port: w.port,
                l4: w.l4,
                l7: w.l7.as_str().into(),
                vlan: w.vlan,
                observation_point: w.observation_point.as_str().into(),
                first_seen_ns: w.first_seen_ns,
                last_seen_ns: w.last_seen_ns,
                flows: 0,
                bytes_c2s: 0,
                bytes_s2c: 0,
                remote: [0; 3],
                status,
                learned,
                policy: None,
                client_ip: w.client_ip,
                server_ip: w.server_ip,
            });
        }
        let Some(sh) = self.sharing.as_mut() else {
            return Ok(());
        };
        let old = sh
            .remote
            .insert((id, replica.to_owned()), counts)
            .unwrap_or([0; 3]);
        if sh.remote.len() > self.edges.capacity().saturating_mul(4) {
            // Bounded: forget the per-replica bookkeeping (sums stay as they are).
            sh.remote.clear();
        }
        sh.counters.applied += 1;
        if let Some(e) = self.edges.get_mut(id) {
            for i in 0..3 {
                e.remote[i] = e.remote[i].saturating_sub(old[i]).saturating_add(counts[i]);
            }
            e.first_seen_ns = e.first_seen_ns.min(w.first_seen_ns);
            e.last_seen_ns = e.last_seen_ns.max(w.last_seen_ns);
        }
        Ok(())
    }
}

/// Publishes this replica's changes to `kv` and folds the others' into `state` until
/// `shutdown` (`Ok`) or the end of the watch (`Err`: reopen).
pub async fn follow(
    state: &SharedState,
    kv: &dyn Kv,
    shutdown: &mut watch::Receiver<bool>,
) -> netwarden_api::Result<()> {
    let mut changes = kv.watch(">").await?;
    let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            c = shutdown.changed() => {
                if c.is_err() || *shutdown.borrow() {
                    publish(state, kv).await;
                    return Ok(());
                }
            }
            _ = tick.tick() => publish(state, kv).await,
            change = changes.next() => {
                let Some(first) = change else {
                    return Err(netwarden_api::Error::Kv {
                        bucket: netwarden_api::names::SERVICEMAP_BUCKET.into(),
                        reason: "the watch ended".into(),
                    });
                };
                let mut burst = vec![first];
                while burst.len() < 4096
                    && let Some(Some(more)) = futures::FutureExt::now_or_never(changes.next())
                {
                    burst.push(more);
                }
                let mut guard = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                for c in &burst {
                    if let Err(reason) = guard.servicemap.apply_shared(c) {
                        if let Some(sh) = guard.servicemap.sharing.as_mut() {
                            sh.counters.rejected += 1;
                        }
                        warn!(%reason, "ignoring nw-servicemap entry");
                    }
                }
            }
        }
    }
}

/// Puts what changed since the last round.
pub async fn publish(state: &SharedState, kv: &dyn Kv) {
    let updates = state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .servicemap
        .take_updates(MAX_PER_BATCH);
    let mut errors = 0;
    for (k, v) in updates {
        let done = match v {
            Some(v) => kv.put(&k, v).await,
            None => kv.delete(&k).await,
        };
        if done.is_err() {
            errors += 1;
        }
    }
    if errors > 0 {
        warn!(errors, "nw-servicemap puts failed");
        if let Some(sh) = state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .servicemap
            .sharing
            .as_mut()
        {
            sh.counters.errors += errors;
        }
    }
}

/// Cluster mode: shares the map of `state` as `replica` through `nw-servicemap` on the NATS
/// connection `client`, reopening with backoff (1 s doubling to 30 s).
pub fn spawn_nats(
    state: SharedState,
    client: async_nats::Client,
    replica: &str,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .servicemap
        .enable_sharing(replica);
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let result = match netwarden_api::bus::NatsKv::open(
                client.clone(),
                netwarden_api::names::SERVICEMAP_BUCKET,
            )
            .await
            {
                Ok(kv) => {
                    backoff = Duration::from_secs(1);
                    follow(&state, &kv, &mut shutdown).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "nw-servicemap unavailable; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// Shares through any bucket (standalone and tests): the same loop as [`spawn_nats`].
pub fn spawn(
    state: SharedState,
    kv: Arc<dyn Kv>,
    replica: &str,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .servicemap
        .enable_sharing(replica);
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        if let Err(e) = follow(&state, kv.as_ref(), &mut shutdown).await {
            warn!(error = %e, "nw-servicemap sharing stopped");
        }
    })
}
