//! The directory publisher: keeps the NATS KV bucket `nw-directory` (IP → namespace, Pod,
//! workload, node, Services; the entry type is [`netwarden_api::directory::DirectoryEntry`])
//! in step with the cluster.
//!
//! Five watches, one per kind, no polling: Pods (field selector
//! `status.phase!=Succeeded,status.phase!=Failed`), Services and Nodes (full objects, reduced
//! at once to the few fields [`model`] keeps), ReplicaSets and Jobs (metadata only, for the
//! owner chain). Every list uses `resourceVersion=0` without pagination (served from the API
//! server's watch cache, as client-go informers do), every watch resumes from the last
//! resourceVersion, and a `410 Gone` relists.
//!
//! Events are folded into the [`model::Model`]; at most once per `debounce` the whole desired
//! content is computed and diffed with what was written, and only the differences are put or
//! deleted, so a burst of Pod churn costs one pass. Nothing is written before every watch
//! finished its first list. On start and every `resync` the bucket is read back and every key
//! that should not be there (a Pod deleted while no operator ran, a foreign or malformed key)
//! is deleted and every differing value rewritten.

pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use netwarden_api::bus::Kv;
use netwarden_api::directory::{DirectoryEntry, directory_key, parse_directory_key, parse_entry};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::telemetry::Metrics;
use model::{Model, NodeInfo, ObjKey, Owner, PodInfo, Reporters, ServiceInfo};

/// What the publisher watches, as RBAC names it: `(API group, resource)`. The operator's
/// ClusterRole grants exactly `list` and `watch` on these (tested in `operator/tests/manifests.rs`).
pub const WATCHED: [(&str, &str); 5] = [
    ("", "pods"),
    ("", "services"),
    ("", "nodes"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
];

/// Settings of the publisher.
#[derive(Debug, Clone)]
pub struct Config {
    /// Changes are written at most this often (bursts are coalesced).
    pub debounce: Duration,
    /// The bucket is read back and repaired this often.
    pub resync: Duration,
    /// At most this many objects of each kind are kept (more are dropped and counted).
    pub max_objects: usize,
    /// Equality label selector of the sensor Pods (reporters of `InterfacePolicy`).
    pub sensor_selector: BTreeMap<String, String>,
    /// Equality label selector of the engine Pods (reporters of the other kinds).
    pub engine_selector: BTreeMap<String, String>,
    /// Concurrent KV writes.
    pub write_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        let selector = |component: &str| {
            [
                (
                    "app.kubernetes.io/name".to_string(),
                    "netwarden".to_string(),
                ),
                (
                    "app.kubernetes.io/component".to_string(),
                    component.to_string(),
                ),
            ]
            .into()
        };
        Self {
            debounce: Duration::from_millis(500),
            resync: Duration::from_secs(600),
            max_objects: 200_000,
            sensor_selector: selector("sensor"),
            engine_selector: selector("engine"),
            write_concurrency: 32,
        }
    }
}

/// One watch event reduced to what the model keeps.
#[derive(Debug)]
enum Ev<T> {
    Apply(ObjKey, T),
    Delete(ObjKey),
    Init,
    InitApply(ObjKey, T),
    InitDone,
}

#[derive(Debug)]
enum Change {
    Pod(Ev<PodInfo>),
    Service(Ev<ServiceInfo>),
    Node(Ev<NodeInfo>),
    ReplicaSet(Ev<Option<Owner>>),
    Job(Ev<Option<Owner>>),
    /// A watch failed (it is retried with backoff); the label is the kind.
    Error(&'static str, String),
}

fn reduce<K, T>(event: watcher::Event<K>, f: &impl Fn(&K) -> (ObjKey, T)) -> Ev<T> {
    match event {
        watcher::Event::Apply(k) => {
            let (key, v) = f(&k);
            Ev::Apply(key, v)
        }
        watcher::Event::Delete(k) => Ev::Delete(f(&k).0),
        watcher::Event::Init => Ev::Init,
        watcher::Event::InitApply(k) => {
            let (key, v) = f(&k);
            Ev::InitApply(key, v)
        }
        watcher::Event::InitDone => Ev::InitDone,
    }
}

fn watch_kind<K, T>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    f: impl Fn(&K) -> (ObjKey, T) + Send + Sync + 'static,
    wrap: fn(Ev<T>) -> Change,
) -> BoxStream<'static, Change>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    T: Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .map(move |r| match r {
            Ok(event) => wrap(reduce(event, &f)),
            Err(e) => Change::Error(kind, e.to_string()),
        })
        .boxed()
}

fn apply_ev<T>(table: &mut model::Table<T>, ev: Ev<T>) {
    match ev {
        Ev::Apply(k, v) => table.apply(k, v),
        Ev::Delete(k) => table.delete(&k),
        Ev::Init => table.init(),
        Ev::InitApply(k, v) => table.init_apply(k, v),
        Ev::InitDone => table.init_done(),
    }
}

fn meta_key(meta: &kube::api::ObjectMeta) -> ObjKey {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The five watch streams, merged.
fn watches(client: &Client) -> impl Stream<Item = Change> + Send + use<> {
    // resourceVersion=0 without `limit`: lists come from the API server's watch cache in one
    // response, not from etcd page by page (kube-rs drops resourceVersion=0 when paginating).
    let mut gentle = watcher::Config::default().any_semantic();
    gentle.page_size = None;
    let pods = watch_kind(
        Api::<Pod>::all(client.clone()),
        gentle
            .clone()
            .fields("status.phase!=Succeeded,status.phase!=Failed"),
        "Pod",
        |p: &Pod| (meta_key(&p.metadata), PodInfo::from_pod(p)),
        Change::Pod,
    );
    let services = watch_kind(
        Api::<Service>::all(client.clone()),
        gentle.clone(),
        "Service",
        |s: &Service| (meta_key(&s.metadata), ServiceInfo::from_service(s)),
        Change::Service,
    );
    let nodes = watch_kind(
        Api::<Node>::all(client.clone()),
        gentle.clone(),
        "Node",
        |n: &Node| (meta_key(&n.metadata), NodeInfo::from_node(n)),
        Change::Node,
    );
    let replicasets = watch_kind(
        Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
        gentle.clone(),
        "ReplicaSet",
        |r: &PartialObjectMeta<ReplicaSet>| model::owner_from_meta(&r.metadata),
        Change::ReplicaSet,
    );
    let jobs = watch_kind(
        Api::<PartialObjectMeta<Job>>::all(client.clone()),
        gentle,
        "Job",
        |j: &PartialObjectMeta<Job>| model::owner_from_meta(&j.metadata),
        Change::Job,
    );
    futures::stream::select_all([pods, services, nodes, replicasets, jobs])
}

/// The publisher's state besides the model: what the bucket holds (as far as we wrote it).
struct Publisher {
    kv: Arc<dyn Kv>,
    metrics: Arc<Metrics>,
    config: Config,
    /// What the bucket holds, by address.
    written: HashMap<IpAddr, DirectoryEntry>,
    /// Keys found in the bucket that no address maps to (malformed, foreign): deleted next sync.
    strays: Vec<String>,
}

impl Publisher {
    /// Reads the bucket back (start and resync).
    async fn read_back(&mut self) -> crate::Result<()> {
        let entries = self.kv.entries(">").await.map_err(|e| crate::Error::Kv {
            bucket: netwarden_api::names::DIRECTORY_BUCKET,
            reason: e.to_string(),
        })?;
        self.written.clear();
        self.strays.clear();
        for (key, value) in entries {
            match (parse_directory_key(&key), parse_entry(&value)) {
                (Some(ip), Ok(entry)) if directory_key(ip) == key && entry.ip == ip => {
                    self.written.insert(ip, entry);
                }
                _ => self.strays.push(key),
            }
        }
        Ok(())
    }

    /// Writes the differences between `desired` and the bucket. Returns whether every write
    /// succeeded (failed keys are retried on the next sync).
    async fn sync(&mut self, desired: &BTreeMap<IpAddr, DirectoryEntry>) -> bool {
        enum Op {
            Put(IpAddr, DirectoryEntry),
            Delete(Option<IpAddr>, String),
        }
        let started = Instant::now();
        let mut ops: Vec<Op> = desired
            .iter()
            .filter(|(ip, entry)| self.written.get(ip) != Some(entry))
            .map(|(ip, entry)| Op::Put(*ip, entry.clone()))
            .collect();
        ops.extend(
            self.written
                .keys()
                .filter(|ip| !desired.contains_key(ip))
                .map(|ip| Op::Delete(Some(*ip), directory_key(*ip))),
        );
        ops.extend(self.strays.drain(..).map(|k| Op::Delete(None, k)));
        let kv = self.kv.clone();
        let results: Vec<(Op, bool)> = futures::stream::iter(ops)
            .map(|op| {
                let kv = kv.clone();
                async move {
                    let result = match &op {
                        Op::Put(ip, entry) => {
                            kv.put(&directory_key(*ip), Bytes::from(entry.to_json()))
                                .await
                        }
                        Op::Delete(_, key) => kv.delete(key).await,
                    };
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "nw-directory write failed");
                    }
                    (op, result.is_ok())
                }
            })
            .buffer_unordered(self.config.write_concurrency.max(1))
            .collect()
            .await;
        let mut all_ok = true;
        let (mut puts, mut deletes) = (0u64, 0u64);
        for (op, ok) in results {
            all_ok &= ok;
            match (op, ok) {
                (Op::Put(ip, entry), true) => {
                    self.written.insert(ip, entry);
                    puts += 1;
                }
                (Op::Delete(ip, _), true) => {
                    if let Some(ip) = ip {
                        self.written.remove(&ip);
                    }
                    deletes += 1;
                }
                (Op::Delete(None, key), false) => {
                    self.strays.push(key);
                    self.metrics.directory.write_errors.inc();
                }
                (_, false) => {
                    self.metrics.directory.write_errors.inc();
                }
            }
        }
        let m = &self.metrics.directory;
        m.puts.inc_by(puts);
        m.deletes.inc_by(deletes);
        m.syncs.inc();
        m.entries.set(self.written.len() as i64);
        m.sync_duration.observe(started.elapsed().as_secs_f64());
        if puts + deletes > 0 {
            tracing::debug!(
                puts,
                deletes,
                entries = self.written.len(),
                "nw-directory synced"
            );
        }
        all_ok
    }
}

/// Runs the publisher until the watches end (they do not, short of a panic) or `kv` breaks
/// at start. `reporters` receives who is expected to report on `nw-status` after each sync.
pub async fn run(
    client: Client,
    kv: Arc<dyn Kv>,
    config: Config,
    metrics: Arc<Metrics>,
    reporters: watch::Sender<Reporters>,
) -> crate::Result<()> {
    run_with(watches(&client), kv, config, metrics, reporters).await
}

async fn run_with(
    changes: impl Stream<Item = Change> + Send,
    kv: Arc<dyn Kv>,
    config: Config,
    metrics: Arc<Metrics>,
    reporters: watch::Sender<Reporters>,
) -> crate::Result<()> {
    let mut model = Model::new(config.max_objects);
    let mut publisher = Publisher {
        kv,
        metrics: metrics.clone(),
        config: config.clone(),
        written: HashMap::new(),
        strays: Vec::new(),
    };
    publisher.read_back().await?;
    let mut changes = std::pin::pin!(changes);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + config.debounce,
        config.debounce,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(config.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    let mut dirty = false;
    let mut was_ready = false;
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(first) = change else { return Ok(()) };
                // Take what is already queued too (bounded), so a burst lands in one sync.
                let mut batch = vec![first];
                while batch.len() < 4096 {
                    match futures::FutureExt::now_or_never(changes.next()) {
                        Some(Some(change)) => batch.push(change),
                        Some(None) | None => break,
                    }
                }
                for change in batch {
                let kind = match change {
                    Change::Pod(ev) => { apply_ev(&mut model.pods, ev); "Pod" }
                    Change::Service(ev) => { apply_ev(&mut model.services, ev); "Service" }
                    Change::Node(ev) => { apply_ev(&mut model.nodes, ev); "Node" }
                    Change::ReplicaSet(ev) => { apply_ev(&mut model.replicasets, ev); "ReplicaSet" }
                    Change::Job(ev) => { apply_ev(&mut model.jobs, ev); "Job" }
                    Change::Error(kind, error) => {
                        metrics.directory.watch_errors.get_or_create(&Metrics::labels(kind)).inc();
                        tracing::warn!(kind, %error, "directory watch failed; retrying with backoff");
                        continue;
                    }
                };
                metrics.directory.events.get_or_create(&Metrics::labels(kind)).inc();
                dirty = true;
                }
            }
            _ = tick.tick(), if dirty && model.ready() => {
                if !was_ready {
                    tracing::info!(pods = model.pods.len(), services = model.services.len(), nodes = model.nodes.len(), "directory watches listed; publishing nw-directory");
                    was_ready = true;
                }
                let desired = model.desired();
                dirty = !publisher.sync(&desired).await;
                metrics.directory.dropped.set(model.dropped() as i64);
                let now = model.reporters(&config.sensor_selector, &config.engine_selector);
                reporters.send_if_modified(|r| {
                    let changed = *r != now;
                    *r = now;
                    changed
                });
            }
            _ = resync.tick(), if model.ready() => {
                match publisher.read_back().await {
                    Ok(()) => dirty = true,
                    Err(e) => tracing::warn!(error = %e, "cannot read nw-directory back; next resync retries"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_api::bus::MemoryKv;
    use netwarden_api::directory::EndpointKind;

    fn pod_ev(name: &str, ip: &str) -> (ObjKey, PodInfo) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "a"},
            "status": {"phase": "Running", "podIP": ip}
        }))
        .unwrap();
        (meta_key(&pod.metadata), PodInfo::from_pod(&pod))
    }

    fn listed() -> Vec<Change> {
        vec![
            Change::Pod(Ev::InitDone),
            Change::Service(Ev::InitDone),
            Change::Node(Ev::InitDone),
            Change::ReplicaSet(Ev::InitDone),
            Change::Job(Ev::InitDone),
        ]
    }

    #[tokio::test]
    async fn a_burst_of_changes_is_written_once_and_strays_are_removed() {
        let kv = Arc::new(MemoryKv::default());
        kv.put("10.9.9.9", Bytes::from_static(b"{}")).await.unwrap();
        kv.put("not-an-ip", Bytes::from_static(b"x")).await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for c in listed() {
            tx.send(c).unwrap();
        }
        // 200 updates of one Pod, moving between two addresses, in one burst.
        for i in 0..200 {
            let (k, v) = pod_ev("p", if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" });
            tx.send(Change::Pod(Ev::Apply(k, v))).unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        let config = Config {
            debounce: Duration::from_millis(50),
            ..Config::default()
        };
        let (rep_tx, _rep_rx) = watch::channel(Reporters::default());
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let task = tokio::spawn(run_with(
            stream,
            kv.clone(),
            config,
            metrics.clone(),
            rep_tx,
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let keys: Vec<String> = kv
                .entries(">")
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if keys == ["10.0.0.2"] {
                break;
            }
            assert!(Instant::now() < deadline, "keys: {keys:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let entry = parse_entry(&kv.get("10.0.0.2").await.unwrap().unwrap()).unwrap();
        assert_eq!((entry.kind, entry.name.as_str()), (EndpointKind::Pod, "p"));
        // One put for the burst (never 10.0.0.1), two deletes for the strays.
        assert_eq!(metrics.directory.puts.get(), 1);
        assert_eq!(metrics.directory.deletes.get(), 2);
        task.abort();
    }
}
