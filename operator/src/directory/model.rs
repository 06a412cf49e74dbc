//! The pure core of the directory publisher: the few fields of Pods, Services, Nodes,
//! ReplicaSets and Jobs the directory needs (never the whole objects), and the function from
//! them to the `nw-directory` content. No I/O, no clock.
//!
//! Who wins an address claimed twice: a Service (cluster, external or load-balancer IP), then
//! a Node (InternalIP / ExternalIP), then a Pod; between Pods, a Running one, then the newest,
//! then the smaller name. Pods with `hostNetwork: true` share their node's address and are not
//! entered; finished Pods (`Succeeded`, `Failed`) are not entered (their IP may be reused).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use netwarden_api::directory::{DirectoryEntry, EndpointKind, Workload};

/// Labels that only carry hashes of a template: left out of directory entries.
const NOISE_LABELS: [&str; 3] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
];

/// `(namespace, name)` of a namespaced object; `("", name)` for Nodes.
pub type ObjKey = (String, String);

/// An owner reference reduced to what the chain needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's kind (`ReplicaSet`, `Deployment`, …).
    pub kind: String,
    /// The owner's name (same namespace).
    pub name: String,
}

/// The controlling owner (`controller: true`), else the first owner.
fn owner_of(meta: &ObjectMeta) -> Option<Owner> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .map(|r: &OwnerReference| Owner {
            kind: r.kind.clone(),
            name: r.name.clone(),
        })
}

fn key_of(meta: &ObjectMeta) -> ObjKey {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn parse_ips<'a>(ips: impl Iterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = ips
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(netwarden_api::directory::canonical)
        .collect();
    out.sort();
    out.dedup();
    out.truncate(8);
    out
}

/// What the directory keeps of a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.podIPs` (or `status.podIP`).
    pub ips: Vec<IpAddr>,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The controlling owner.
    pub owner: Option<Owner>,
    /// `status.phase == Running`.
    pub running: bool,
    /// `status.phase` is `Succeeded` or `Failed`.
    pub finished: bool,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `metadata.creationTimestamp` (seconds), to pick the newest of two Pods on one address.
    pub created: i64,
}

impl PodInfo {
    /// The fields of `pod` the directory needs.
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
        let ips = status.map_or_else(Vec::new, |s| {
            let many = s.pod_ips.iter().flatten().map(|p| p.ip.as_str());
            parse_ips(many.chain(s.pod_ip.as_deref()))
        });
        let (namespace, name) = key_of(&pod.metadata);
        Self {
            namespace,
            name,
            ips,
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            owner: owner_of(&pod.metadata),
            running: phase == "Running",
            finished: phase == "Succeeded" || phase == "Failed",
            host_network: pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
        }
    }
}

/// What the directory keeps of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.clusterIPs`, `spec.externalIPs` and `status.loadBalancer.ingress[].ip`.
    pub ips: Vec<IpAddr>,
    /// `spec.selector` (empty: the Service selects no Pods itself).
    pub selector: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl ServiceInfo {
    /// The fields of `svc` the directory needs.
    pub fn from_service(svc: &Service) -> Self {
        let spec = svc.spec.as_ref();
        let cluster = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten()
            .chain(spec.and_then(|s| s.cluster_ip.as_ref()))
            .chain(
                spec.and_then(|s| s.external_ips.as_ref())
                    .into_iter()
                    .flatten(),
            );
        let lb = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_ref());
        let (namespace, name) = key_of(&svc.metadata);
        Self {
            namespace,
            name,
            ips: parse_ips(cluster.chain(lb).map(String::as_str)),
            selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
            labels: svc.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

/// What the directory keeps of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Name.
    pub name: String,
    /// `InternalIP` and `ExternalIP` addresses.
    pub ips: Vec<IpAddr>,
    /// Labels (also used to match an `InterfacePolicy`'s `nodeSelector`).
    pub labels: BTreeMap<String, String>,
}

impl NodeInfo {
    /// The fields of `node` the directory needs.
    pub fn from_node(node: &Node) -> Self {
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .map(|a| a.address.as_str());
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            ips: parse_ips(addresses),
            labels: node.metadata.labels.clone().unwrap_or_default(),
        }
    }
}

/// The owner of a ReplicaSet or a Job (from a metadata-only watch).
pub fn owner_from_meta(meta: &ObjectMeta) -> (ObjKey, Option<Owner>) {
    (key_of(meta), owner_of(meta))
}

/// One kind's objects, with the relist buffer of the watcher protocol (`Init`, `InitApply`…,
/// `InitDone` replaces the whole table, which drops objects deleted while we were not watching).
#[derive(Debug)]
pub struct Table<T> {
    items: HashMap<ObjKey, T>,
    relist: Option<HashMap<ObjKey, T>>,
    max: usize,
    /// Whether a first list completed.
    pub ready: bool,
    /// Objects dropped because the table was full.
    pub dropped: u64,
}

impl<T> Table<T> {
    /// An empty table holding at most `max` objects.
    pub fn new(max: usize) -> Self {
        Self {
            items: HashMap::new(),
            relist: None,
            max,
            ready: false,
            dropped: 0,
        }
    }

    fn insert_bounded(
        map: &mut HashMap<ObjKey, T>,
        max: usize,
        dropped: &mut u64,
        key: ObjKey,
        value: T,
    ) {
        if map.len() >= max && !map.contains_key(&key) {
            *dropped += 1;
            return;
        }
        map.insert(key, value);
    }

    /// An added or changed object.
    pub fn apply(&mut self, key: ObjKey, value: T) {
        Self::insert_bounded(&mut self.items, self.max, &mut self.dropped, key, value);
    }

    /// A deleted object.
    pub fn delete(&mut self, key: &ObjKey) {
        self.items.remove(key);
    }

    /// A (re)list starts.
    pub fn init(&mut self) {
        self.relist = Some(HashMap::new());
    }

    /// An object of the (re)list.
    pub fn init_apply(&mut self, key: ObjKey, value: T) {
        let max = self.max;
        match &mut self.relist {
            Some(buffer) => Self::insert_bounded(buffer, max, &mut self.dropped, key, value),
            None => self.apply(key, value),
        }
    }

    /// The (re)list is complete: it replaces the table.
    pub fn init_done(&mut self) {
        if let Some(buffer) = self.relist.take() {
            self.items = buffer;
        }
        self.ready = true;
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One object.
    pub fn get(&self, key: &ObjKey) -> Option<&T> {
        self.items.get(key)
    }

    /// Every object.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }
}

/// Everything the directory is computed from.
#[derive(Debug)]
pub struct Model {
    /// Pods.
    pub pods: Table<PodInfo>,
    /// Services.
    pub services: Table<ServiceInfo>,
    /// Nodes.
    pub nodes: Table<NodeInfo>,
    /// ReplicaSet → its controlling owner (a Deployment, usually).
    pub replicasets: Table<Option<Owner>>,
    /// Job → its controlling owner (a CronJob, or none).
    pub jobs: Table<Option<Owner>>,
}

impl Model {
    /// An empty model; each table holds at most `max_objects`.
    pub fn new(max_objects: usize) -> Self {
        Self {
            pods: Table::new(max_objects),
            services: Table::new(max_objects),
            nodes: Table::new(max_objects),
            replicasets: Table::new(max_objects),
            jobs: Table::new(max_objects),
        }
    }

    /// Whether every watch completed its first list (publishing earlier would write, then
    /// rewrite, half-resolved entries, and the resync would delete keys of objects not yet listed).
    pub fn ready(&self) -> bool {
        self.pods.ready
            && self.services.ready
            && self.nodes.ready
            && self.replicasets.ready
            && self.jobs.ready
    }

    /// Objects dropped because a table was full, in total.
    pub fn dropped(&self) -> u64 {
        self.pods.dropped
            + self.services.dropped
            + self.nodes.dropped
            + self.replicasets.dropped
            + self.jobs.dropped
    }

    /// The workload of a Pod: its owner chain followed to the top.
    ///
    /// ReplicaSet → its owner from the ReplicaSet metadata watch (a Deployment, or e.g. an Argo
    /// Rollout); a ReplicaSet not (yet) known falls back to the name-hash rule (a Deployment's
    /// ReplicaSet is `<deployment>-<pod-template-hash>`). Job → its CronJob when it has one.
    /// StatefulSet, DaemonSet and anything else: the owner itself. No owner: the Pod.
    pub fn workload(&self, pod: &PodInfo) -> Workload {
        let Some(owner) = &pod.owner else {
            return Workload {
                kind: "Pod".into(),
                name: pod.name.clone(),
            };
        };
        let key = (pod.namespace.clone(), owner.name.clone());
        let parent = match owner.kind.as_str() {
            "ReplicaSet" => match self.replicasets.get(&key) {
                Some(parent) => parent.clone(),
                None => pod
                    .labels
                    .get("pod-template-hash")
                    .and_then(|hash| owner.name.strip_suffix(hash.as_str()))
                    .and_then(|prefix| prefix.strip_suffix('-'))
                    .filter(|name| !name.is_empty())
                    .map(|name| Owner {
                        kind: "Deployment".into(),
                        name: name.into(),
                    }),
            },
            "Job" => self.jobs.get(&key).cloned().flatten(),
            _ => None,
        };
        let top = parent.unwrap_or_else(|| owner.clone());
        Workload {
            kind: top.kind,
            name: top.name,
        }
    }

    /// The whole `nw-directory` content (bounded entries).
    pub fn desired(&self) -> BTreeMap<IpAddr, DirectoryEntry> {
        // (rank, running, created, name) decides between claims of one address.
        type Rank = (u8, bool, i64, std::cmp::Reverse<String>);
        let mut claims: BTreeMap<IpAddr, (Rank, DirectoryEntry)> = BTreeMap::new();
        let mut claim = |rank: Rank, entry: DirectoryEntry| match claims.get(&entry.ip) {
            Some((held, _)) if *held >= rank => {}
            _ => {
                claims.insert(entry.ip, (rank, entry));
            }
        };
        // Services indexed by (namespace, first selector pair): a Pod only checks the Services
        // one of its own labels points at, not every Service of its namespace.
        let mut by_pair: HashMap<(&str, &str, &str), Vec<&ServiceInfo>> = HashMap::new();
        for svc in self.services.values() {
            if let Some((k, v)) = svc.selector.iter().next() {
                by_pair.entry((&svc.namespace, k, v)).or_default().push(svc);
            }
            for ip in &svc.ips {
                let mut e = DirectoryEntry::new(*ip, EndpointKind::Service, svc.name.clone());
                e.namespace = Some(svc.namespace.clone());
                e.services = vec![svc.name.clone()];
                e.labels.clone_from(&svc.labels);
                claim((3, true, 0, std::cmp::Reverse(svc.name.clone())), e);
            }
        }
        for node in self.nodes.values() {
            for ip in &node.ips {
                let mut e = DirectoryEntry::new(*ip, EndpointKind::Node, node.name.clone());
                e.node = Some(node.name.clone());
                e.labels.clone_from(&node.labels);
                claim((2, true, 0, std::cmp::Reverse(node.name.clone())), e);
            }
        }
        for pod in self.pods.values() {
            if pod.host_network || pod.finished || pod.ips.is_empty() {
                continue;
            }
            let services: Vec<String> = pod
                .labels
                .iter()
                .filter_map(|(k, v)| by_pair.get(&(pod.namespace.as_str(), k.as_str(), v.as_str())))
                .flatten()
                .filter(|svc| {
                    svc.selector
                        .iter()
                        .all(|(k, v)| pod.labels.get(k) == Some(v))
                })
                .map(|svc| svc.name.clone())
                .collect();
            let workload = self.workload(pod);
            let labels: BTreeMap<String, String> = pod
                .labels
                .iter()
                .filter(|(k, _)| !NOISE_LABELS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for ip in &pod.ips {
                let mut e = DirectoryEntry::new(*ip, EndpointKind::Pod, pod.name.clone());
                e.namespace = Some(pod.namespace.clone());
                e.workload = Some(workload.clone());
                e.node.clone_from(&pod.node);
                e.services.clone_from(&services);
                e.labels.clone_from(&labels);
                let rank = (
                    1,
                    pod.running,
                    pod.created,
                    std::cmp::Reverse(pod.name.clone()),
                );
                claim(rank, e);
            }
        }
        claims
            .into_iter()
            .map(|(ip, (_, mut entry))| {
                entry.bound();
                (ip, entry)
            })
            .collect()
    }

    /// The sensors and engines expected to report on `nw-status`, from the Running Pods that
    /// match `sensor` and `engine` (equality label selectors): a sensor reports under its node
    /// name, an engine under its Pod name.
    pub fn reporters(
        &self,
        sensor: &BTreeMap<String, String>,
        engine: &BTreeMap<String, String>,
    ) -> Reporters {
        let matches = |pod: &PodInfo, sel: &BTreeMap<String, String>| {
            !sel.is_empty() && pod.running && sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
        };
        let mut out = Reporters {
            known: self.ready(),
            ..Reporters::default()
        };
        for pod in self.pods.values() {
            if matches(pod, sensor)
                && let Some(node) = &pod.node
            {
                let labels = self
                    .nodes
                    .get(&(String::new(), node.clone()))
                    .map(|n| n.labels.clone())
                    .unwrap_or_default();
                out.sensors.insert(node.clone(), labels);
            }
            if matches(pod, engine) {
                out.engines.insert(pod.name.clone());
            }
        }
        out
    }
}

/// Who is expected to report on `nw-status`: the denominator `M` of `appliedNodes: N/M`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reporters {
    /// Whether the Pod and Node watches completed their first list; when false (the directory
    /// is off or still listing), `M` falls back to the reporters that reported.
    pub known: bool,
    /// Nodes running a Running sensor Pod, with the node's labels.
    pub sensors: BTreeMap<String, BTreeMap<String, String>>,
    /// Names of Running engine Pods.
    pub engines: BTreeSet<String>,
}

impl Reporters {
    /// The reporters expected to apply an object of `kind`: sensors for `InterfacePolicy`
    /// (those on nodes its `node_selector` selects), engines for the other kinds. `None` when
    /// unknown, or when no sensor or engine Pod is found (e.g. other labels than configured).
    pub fn expected(
        &self,
        kind: &str,
        node_selector: Option<&LabelSelector>,
    ) -> Option<BTreeSet<String>> {
        if !self.known {
            return None;
        }
        let set: BTreeSet<String> = if kind == "InterfacePolicy" {
            if self.sensors.is_empty() {
                return None;
            }
            self.sensors
                .iter()
                .filter(|(_, labels)| node_selector.is_none_or(|s| selector_matches(s, labels)))
                .map(|(node, _)| node.clone())
                .collect()
        } else {
            if self.engines.is_empty() {
                return None;
            }
            self.engines.clone()
        };
        Some(set)
    }
}

/// Kubernetes label-selector semantics (shared with the sensor and the engine).
pub use netwarden_api::crd::selector_matches;

/// Parses an equality label selector (`app=x,component=sensor`); `None` on anything else.
pub fn parse_equality_selector(s: &str) -> Option<BTreeMap<String, String>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (k.trim(), v.trim().trim_start_matches('='));
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodInfo {
        PodInfo::from_pod(&serde_json::from_value(v).unwrap())
    }

    fn ready_model() -> Model {
        let mut m = Model::new(100);
        m.pods.init_done();
        m.services.init_done();
        m.nodes.init_done();
        m.replicasets.init_done();
        m.jobs.init_done();
        m
    }

    fn add_pod(m: &mut Model, p: PodInfo) {
        m.pods.apply((p.namespace.clone(), p.name.clone()), p);
    }

    #[test]
    fn owner_chain_reaches_deployment_cronjob_or_stops_at_the_owner() {
        let mut m = ready_model();
        let rs = |name: &str| json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": "u", "controller": true}]);
        let p = pod(
            json!({"metadata": {"name": "web-5d8f-x", "namespace": "shop",
            "labels": {"pod-template-hash": "5d8f"}, "ownerReferences": rs("web-5d8f")}}),
        );
        // Unknown ReplicaSet: the name-hash rule.
        assert_eq!(
            m.workload(&p),
            Workload {
                kind: "Deployment".into(),
                name: "web".into()
            }
        );
        // Known ReplicaSet owned by an Argo Rollout: the watch wins over the rule.
        m.replicasets.apply(
            ("shop".into(), "web-5d8f".into()),
            Some(Owner {
                kind: "Rollout".into(),
                name: "web".into(),
            }),
        );
        assert_eq!(m.workload(&p).kind, "Rollout");
        // A bare ReplicaSet (no owner, no hash suffix).
        let bare = pod(
            json!({"metadata": {"name": "b-1", "namespace": "shop", "ownerReferences": rs("bare")}}),
        );
        assert_eq!(
            m.workload(&bare),
            Workload {
                kind: "ReplicaSet".into(),
                name: "bare".into()
            }
        );
        // Job → CronJob.
        m.jobs.apply(
            ("ops".into(), "backup-2900".into()),
            Some(Owner {
                kind: "CronJob".into(),
                name: "backup".into(),
            }),
        );
        let job = pod(
            json!({"metadata": {"name": "backup-2900-q", "namespace": "ops",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "backup-2900", "uid": "u"}]}}),
        );
        assert_eq!(
            m.workload(&job),
            Workload {
                kind: "CronJob".into(),
                name: "backup".into()
            }
        );
        let ds = pod(
            json!({"metadata": {"name": "agent-x", "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]}}),
        );
        assert_eq!(
            m.workload(&ds),
            Workload {
                kind: "DaemonSet".into(),
                name: "agent".into()
            }
        );
        let lone = pod(json!({"metadata": {"name": "debug", "namespace": "default"}}));
        assert_eq!(
            m.workload(&lone),
            Workload {
                kind: "Pod".into(),
                name: "debug".into()
            }
        );
    }

    #[test]
    fn claims_prefer_service_then_node_then_running_newest_pod() {
        let mut m = ready_model();
        let running = |name: &str, created: &str, phase: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": "a", "creationTimestamp": created},
                "status": {"phase": phase, "podIPs": [{"ip": "10.1.0.5"}]}}),
            )
        };
        add_pod(&mut m, running("old", "2026-01-01T00:00:00Z", "Running"));
        add_pod(&mut m, running("new", "2026-01-02T00:00:00Z", "Running"));
        add_pod(
            &mut m,
            running("pending", "2026-01-03T00:00:00Z", "Pending"),
        );
        add_pod(&mut m, running("done", "2026-01-04T00:00:00Z", "Succeeded"));
        assert_eq!(
            m.desired()[&"10.1.0.5".parse::<IpAddr>().unwrap()].name,
            "new"
        );
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.5"}, {"type": "Hostname", "address": "n1"}]}}))
        .unwrap();
        m.nodes
            .apply((String::new(), "n1".into()), NodeInfo::from_node(&node));
        let d = m.desired();
        assert_eq!(d.len(), 1);
        assert_eq!(d.values().next().unwrap().kind, EndpointKind::Node);
    }

    #[test]
    fn services_select_pods_of_their_namespace_by_every_selector_pair() {
        let mut m = ready_model();
        let svc = |ns: &str, name: &str, selector: serde_json::Value| {
            let s: Service =
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": "None", "selector": selector}}))
                .unwrap();
            ServiceInfo::from_service(&s)
        };
        for s in [
            svc("a", "web", json!({"app": "web"})),
            svc("a", "web-canary", json!({"app": "web", "track": "canary"})),
            svc("a", "by-tier", json!({"tier": "front"})),
            svc("b", "web", json!({"app": "web"})),
            svc("a", "none", json!({})),
        ] {
            m.services.apply((s.namespace.clone(), s.name.clone()), s);
        }
        add_pod(
            &mut m,
            pod(json!({"metadata": {"name": "p", "namespace": "a",
            "labels": {"app": "web", "tier": "front", "track": "stable"}},
            "status": {"phase": "Running", "podIP": "10.1.0.9"}})),
        );
        let d = m.desired();
        assert_eq!(d.len(), 1, "headless Services have no address");
        assert_eq!(d.values().next().unwrap().services, ["by-tier", "web"]);
    }

    #[test]
    fn relist_replaces_a_table_and_tables_are_bounded() {
        let mut t: Table<u8> = Table::new(2);
        t.apply(("a".into(), "1".into()), 1);
        t.apply(("a".into(), "2".into()), 2);
        t.apply(("a".into(), "3".into()), 3);
        assert_eq!((t.len(), t.dropped), (2, 1));
        t.apply(("a".into(), "2".into()), 20);
        assert_eq!(t.get(&("a".into(), "2".into())), Some(&20));
        t.init();
        t.init_apply(("a".into(), "9".into()), 9);
        assert_eq!(
            t.len(),
            2,
            "the table serves the old content until the list is done"
        );
        t.init_done();
        assert_eq!((t.len(), t.ready), (1, true));
    }

    #[test]
    fn reporters_come_from_running_sensor_and_engine_pods() {
        let mut m = ready_model();
        let sensor = |name: &str, node: &str, phase: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": "nw", "labels": {"app.kubernetes.io/component": "sensor"}},
                "spec": {"nodeName": node, "containers": []}, "status": {"phase": phase}}),
            )
        };
        add_pod(&mut m, sensor("s1", "n1", "Running"));
        add_pod(&mut m, sensor("s2", "n2", "Running"));
        add_pod(&mut m, sensor("s3", "n3", "Pending"));
        add_pod(
            &mut m,
            pod(
                json!({"metadata": {"name": "engine-0", "namespace": "nw", "labels": {"app.kubernetes.io/component": "engine"}},
            "status": {"phase": "Running"}}),
            ),
        );
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "n2", "labels": {"pool": "edge"}}}))
                .unwrap();
        m.nodes
            .apply((String::new(), "n2".into()), NodeInfo::from_node(&node));
        let s = parse_equality_selector("app.kubernetes.io/component=sensor").unwrap();
        let e = parse_equality_selector("app.kubernetes.io/component=engine").unwrap();
        let r = m.reporters(&s, &e);
        let all: BTreeSet<String> = ["n1".to_string(), "n2".to_string()].into();
        assert_eq!(r.expected("InterfacePolicy", None), Some(all));
        let edge: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"pool": "edge"}})).unwrap();
        assert_eq!(
            r.expected("InterfacePolicy", Some(&edge)),
            Some(["n2".to_string()].into())
        );
        assert_eq!(
            r.expected("AlertExclusion", None),
            Some(["engine-0".to_string()].into())
        );
        assert_eq!(Reporters::default().expected("AlertExclusion", None), None);
        assert_eq!(
            parse_equality_selector("a=b,c==d"),
            Some([("a".into(), "b".into()), ("c".into(), "d".into())].into())
        );
        assert_eq!(parse_equality_selector("a in (b)"), None);
    }
}
