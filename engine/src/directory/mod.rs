//! The cluster directory in the engine: who an address is in Kubernetes (`nw-directory`,
//! written by the operator: IP → namespace, Pod/Service/Node, workload, node, services,
//! labels), used to name hosts in API responses, to roll scores and traffic up by namespace
//! and workload, and to resolve `AlertExclusion` pod selectors.
//!
//! Owns: following the bucket (a KV watch, reopened with backoff over NATS) into an
//! [`api::directory::Directory`](netwarden_api::directory::Directory) shared with the API, the
//! roll-up ([`rollup`], pure) and the [`PodLookup`] for exclusions. Must not: trust the values
//! (they are parsed with the contract's bounds; a bad one is dropped, logged and counted).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{Kv, NatsBus, NatsKv};
use netwarden_api::directory::{Directory, DirectoryEntry, EndpointKind};
use netwarden_api::names::DIRECTORY_BUCKET;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;

use crate::config::exclusions::PodLookup;
use crate::state::State;

/// The directory shared by the follower (writer) and the API and exclusions (readers).
pub type SharedDirectory = Arc<RwLock<Directory>>;

/// Reads a shared directory (a poisoned lock is still read: entries are replaced whole).
pub fn read(dir: &SharedDirectory) -> std::sync::RwLockReadGuard<'_, Directory> {
    dir.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Metrics of the directory follower (`netwarden_engine_directory_*`).
#[derive(Debug, Default)]
pub struct DirectoryMetrics {
    /// Addresses known.
    pub entries: Gauge,
    /// Entries dropped because their key or value was malformed.
    pub rejected: Counter,
    /// Times the watch was reopened after a failure.
    pub watch_restarts: Counter,
}

impl DirectoryMetrics {
    /// Registers under `netwarden_engine_directory_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine_directory");
        r.register(
            "entries",
            "Addresses known from nw-directory",
            self.entries.clone(),
        );
        r.register(
            "rejected",
            "nw-directory entries dropped as malformed",
            self.rejected.clone(),
        );
        r.register(
            "watch_restarts",
            "Times the nw-directory watch was reopened after a failure",
            self.watch_restarts.clone(),
        );
    }
}

/// Folds the changes of `kv` into `dir` until `shutdown` (`Ok`) or the end of the watch
/// (`Err`: reopen). `changed` counts applied bursts (exclusions with pod selectors recompile).
pub async fn follow(
    dir: &SharedDirectory,
    kv: &dyn Kv,
    metrics: &DirectoryMetrics,
    changed: &watch::Sender<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> netwarden_api::Result<()> {
    let mut changes = kv.watch(">").await?;
    loop {
        tokio::select! {
            c = shutdown.changed() => {
                if c.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
            }
            change = changes.next() => {
                let Some(first) = change else {
                    return Err(netwarden_api::Error::Kv {
                        bucket: DIRECTORY_BUCKET.into(),
                        reason: "the watch ended".into(),
                    });
                };
                let mut burst = vec![first];
                while let Some(Some(more)) = futures::FutureExt::now_or_never(changes.next()) {
                    burst.push(more);
                }
                let mut guard = dir.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                for c in &burst {
                    if let Err(reason) = guard.apply(c) {
                        metrics.rejected.inc();
                        warn!(%reason, "ignoring nw-directory entry");
                    }
                }
                metrics.entries.set(i64::try_from(guard.len()).unwrap_or(i64::MAX));
                drop(guard);
                changed.send_modify(|n| *n += 1);
            }
        }
    }
}

/// Cluster mode: follows `nw-directory` on the NATS connection of `bus`, reopening with
/// backoff (1 s doubling to 30 s); what is known stays while it retries. Returns the change
/// counter (exclusions recompile on it).
pub fn spawn_nats(
    dir: SharedDirectory,
    bus: &NatsBus,
    metrics: Arc<DirectoryMetrics>,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<u64> {
    let (changed, changed_rx) = watch::channel(0);
    let client = bus.client().clone();
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let result = match NatsKv::open(client.clone(), DIRECTORY_BUCKET).await {
                Ok(kv) => {
                    backoff = Duration::from_secs(1);
                    follow(&dir, &kv, &metrics, &changed, &mut shutdown).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) => {
                    metrics.watch_restarts.inc();
                    warn!(error = %e, retry_in = ?backoff, "nw-directory unavailable; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
    changed_rx
}

/// Pod selectors of exclusions, resolved against the directory.
#[derive(Clone)]
pub struct DirectoryPods(pub SharedDirectory);

impl PodLookup for DirectoryPods {
    fn pods(
        &self,
        namespace: &str,
        matches: &dyn Fn(&BTreeMap<String, String>) -> bool,
    ) -> Vec<IpAddr> {
        read(&self.0)
            .iter()
            .filter(|(_, e)| {
                e.kind == EndpointKind::Pod
                    && e.namespace.as_deref() == Some(namespace)
                    && matches(&e.labels)
            })
            .map(|(ip, _)| *ip)
            .collect()
    }
}

/// Who a host is in Kubernetes, as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Identity {
    /// `Pod`, `Service` or `Node`.
    pub kind: &'static str,
    /// The Pod, Service or Node name.
    pub name: String,
    /// The namespace (absent for Nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workload (`Deployment/web`), for Pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The node a Pod runs on, or the Node itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Services selecting the Pod (or the Service itself).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl Identity {
    /// The identity of a directory entry.
    pub fn of(e: &DirectoryEntry) -> Self {
        Self {
            kind: e.kind.as_str(),
            name: e.name.clone(),
            namespace: e.namespace.clone(),
            workload: e
                .workload
                .as_ref()
                .map(|w| format!("{}/{}", w.kind, w.name)),
            node: e.node.clone(),
            services: e.services.clone(),
        }
    }
}

/// How hosts are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// By namespace (Pods and Services).
    Namespace,
    /// By workload (`namespace/Kind/name`, Pods only).
    Workload,
}

/// One namespace or workload: its hosts' traffic and score, summed.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Group {
    /// `shop` or `shop/Deployment/web`.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// The workload (`Deployment/web`), for workload groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Hosts of the group the engine has seen.
    pub hosts: u64,
    /// Bytes sent by them.
    pub bytes_sent: u64,
    /// Bytes received by them.
    pub bytes_rcvd: u64,
    /// Flows they opened.
    pub flows_as_client: u64,
    /// Flows they answered.
    pub flows_as_server: u64,
    /// Their scores, summed (now).
    pub score: u64,
    /// As client.
    pub score_as_client: u64,
    /// As server.
    pub score_as_server: u64,
    /// The host with the highest score, and that score.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub top_host: Option<IpAddr>,
    /// Its score.
    pub top_host_score: u64,
}

/// The hosts of `state` grouped by `by` through `dir`, unsorted. Hosts the directory does not
/// know (and, by workload, Services and Nodes) are left out.
pub fn rollup(state: &State, dir: &Directory, by: GroupBy) -> Vec<Group> {
    let now = state.analysis.now_ns;
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for h in state.hosts.iter() {
        let Some(e) = dir.get(h.key.ip) else {
            continue;
        };
        let Some(namespace) = e.namespace.clone() else {
            continue;
        };
        let (name, workload) = match by {
            GroupBy::Namespace => (namespace.clone(), None),
            GroupBy::Workload => {
                let (Some(key), Some(w)) = (e.workload_key(), &e.workload) else {
                    continue;
                };
                (key, Some(format!("{}/{}", w.kind, w.name)))
            }
        };
        let g = groups.entry(name.clone()).or_insert_with(|| Group {
            name,
            namespace,
            workload,
            ..Group::default()
        });
        let score = state.analysis.scores.values(&h.key, now);
        g.hosts += 1;
        g.bytes_sent += h.bytes_sent;
        g.bytes_rcvd += h.bytes_rcvd;
        g.flows_as_client += h.flows_as_client;
        g.flows_as_server += h.flows_as_server;
        g.score += score.total;
        g.score_as_client += score.client;
        g.score_as_server += score.server;
        if score.total > g.top_host_score || g.top_host.is_none() {
            g.top_host = Some(h.key.ip);
            g.top_host_score = score.total;
        }
    }
    groups.into_values().collect()
}
