//! The learned service map: who talks to whom on what service, learned from flows, enforced
//! against what was learned and what `ServicePolicy` objects declare (REFERENCE.md §5; ntopng's
//! Enterprise L ServiceMap). docs/servicemap.md explains learning, statuses and policies.
//!
//! Owns: the bounded edge table ([`table`]: LRU eviction of undecided edges first, idle expiry
//! after a day of flow time), nodes and edge ids ([`edge`]: hosts, or workloads named by
//! `nw-directory`), policy evaluation and export ([`policy`]), the periodicity map it feeds
//! ([`crate::periodicity`]), and the alerts they raise on flows: `new_service`,
//! `lateral_movement`, `periodic_flow`, `periodicity_changed` ([`ServiceMap::observe`]). The
//! HTTP shell is [`api`].
//!
//! Pure but for reading the shared directory: fed by `state` under the state lock, flow time
//! only. Must not: count a flow twice (a flow is counted when its L7 protocol is known or it
//! ended, the moment the host tables count it under its L7), or trust names from the network
//! (they are bounded by the directory contract and escaped where they leave).

pub mod api;
pub mod edge;
pub mod policy;
pub mod report;
pub mod share;
pub mod table;

use std::net::IpAddr;
use std::sync::Arc;

use netwarden_api::alert::Roles;
use netwarden_api::crd::ServiceRuleAction;
use netwarden_api::flow::FlowRecord;
use serde::{Deserialize, Serialize};

use crate::alerts::Analysis;
use crate::checks::{CheckDef, FlowAlert, ScoreKind};
use crate::directory::SharedDirectory;
use crate::exclusions::FlowSubject;
use crate::hosts::Counters;
use crate::periodicity::{Detector, PeriodKey, PeriodicityConfig, PeriodicityMap};
pub use edge::{Edge, Learned, Node, NodeRef, Status, edge_id, id_text, parse_id};
pub use policy::CompiledPolicy;
pub use table::{EdgeEvictions, EdgeTable};

const SEC: u64 = 1_000_000_000;

/// Service-map settings (flags `--servicemap-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceMapConfig {
    /// Whether the service map and the periodicity map run (off: no edges, no alerts; the
    /// benchmark's baseline).
    pub enabled: bool,
    /// Most edges kept (0: an eighth of the active-flow table, as ntopng).
    pub max_edges: usize,
    /// Learning period, seconds of flow time from the first flow the map sees (ntopng: 7200).
    /// A `ServicePolicy`'s `learningPeriod` replaces it for the servers of its namespace.
    pub learning_secs: u64,
    /// Edges idle this long (flow time, seconds) are forgotten (ntopng: 1 day).
    pub idle_secs: u64,
    /// The periodicity map.
    pub periodicity: PeriodicityConfig,
}

impl Default for ServiceMapConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_edges: 0,
            learning_secs: 7200,
            idle_secs: 86_400,
            periodicity: PeriodicityConfig::default(),
        }
    }
}

/// Counters of the service map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceMapCounters {
    /// Records looked at (client copies with a known L7 protocol, or final).
    pub observed: u64,
    /// Edges created.
    pub edges_created: u64,
    /// `new_service` alerts raised (before exclusions).
    pub new_service: u64,
    /// `lateral_movement` alerts raised (one per record on a denied edge, deduplicated per
    /// flow by the alert store).
    pub lateral_movement: u64,
    /// Edges whose status a policy change or the API changed.
    pub status_changes: u64,
}

/// What one record did to the map.
#[derive(Debug, Default)]
pub struct Observed {
    /// The edge the record counts on (traffic is added after the host tables ran).
    pub edge: Option<u64>,
    /// Alerts for the flow.
    pub alerts: Vec<FlowAlert>,
}

/// The learned service map and its periodicity map.
pub struct ServiceMap {
    config: ServiceMapConfig,
    /// The edges.
    pub edges: EdgeTable,
    /// Periodic pairs.
    pub periodicity: PeriodicityMap,
    policies: Vec<CompiledPolicy>,
    directory: Option<SharedDirectory>,
    /// Sharing through `nw-servicemap`, when on ([`share`]).
    sharing: Option<share::Sharing>,
    names: Names,
    /// Flow time the map started learning at (the earliest flow start seen), ns.
    pub start_ns: Option<u64>,
    /// Counters.
    pub counters: ServiceMapCounters,
    next_sweep_ns: u64,
}

/// The catalogue entries of the service-map checks (also in [`crate::checks::CHECKS`]).
fn def(alert_type: &'static str) -> CheckDef {
    crate::checks::def(alert_type).copied().unwrap_or(CheckDef {
        alert_type,
        ntopng_id: 0,
        score: 10,
        client_pct: 50,
        kind: ScoreKind::Security,
        default_enabled: true,
        host: false,
    })
}

impl ServiceMap {
    /// A map for an engine of `max_active_flows` active flows.
    pub fn new(config: ServiceMapConfig, max_active_flows: usize) -> Self {
        let capacity = if config.max_edges > 0 {
            config.max_edges
        } else {
            (max_active_flows / 8).max(1024)
        };
        Self {
            config,
            edges: EdgeTable::new(capacity),
            periodicity: PeriodicityMap::new(config.periodicity, capacity),
            policies: Vec::new(),
            directory: None,
            sharing: None,
            names: Names::default(),
            start_ns: None,
            counters: ServiceMapCounters::default(),
            next_sweep_ns: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceMapConfig {
        &self.config
    }

    /// Names addresses through `dir` from now on (workload nodes, policy selectors).
    pub fn attach_directory(&mut self, dir: SharedDirectory) {
        self.directory = Some(dir);
    }

    /// The policies in force.
    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    /// When the global learning period ends (flow time, ns), once the map saw a flow.
    pub fn learning_ends_ns(&self) -> Option<u64> {
        self.start_ns
            .map(|s| s.saturating_add(self.config.learning_secs.saturating_mul(SEC)))
    }

    /// Looks at the client copy of a record (see the module documentation): finds or creates
    /// its edge, decides a new edge's status, feeds the periodicity map, and returns the alerts
    /// for the flow. `first` says the flow is counted now (its L7 just became known, or it
    /// ended unnamed); `l7` is the record's L7 name.
    pub fn observe(
        &mut self,
        r: &FlowRecord,
        l7: &str,
        first: bool,
        analysis: &Analysis,
    ) -> Observed {
        let mut out = Observed::default();
        if !self.config.enabled {
            return out;
        }
        let (Some(c), Some(s)) = (r.client_addr(), r.server_addr()) else {
            return out;
        };
        if l7 == crate::state::UNKNOWN_L7 && !r.is_final() {
            return out;
        }
        self.counters.observed += 1;
        let now = analysis.now_ns.max(r.last_seen_ns);
        self.sweep(now);
        let start = self
            .start_ns
            .map_or(r.first_seen_ns, |s| s.min(r.first_seen_ns));
        self.start_ns = Some(start);
        let port = u16::try_from(r.server_port).unwrap_or(0);
        let l4 = u8::try_from(r.l4_proto).unwrap_or(0);
        let vlan = u16::try_from(r.vlan).unwrap_or(0);
        let dir = self.directory.as_ref().map(crate::directory::read);
        let ce = dir.as_ref().and_then(|d| d.get(c));
        let se = dir.as_ref().and_then(|d| d.get(s));
        let (cn, sn) = (NodeRef::of(c, ce), NodeRef::of(s, se));
        let id = edge_id(&cn, &sn, port, l4, l7, vlan);
        let pkey = || PeriodKey {
            client: c,
            server: s,
            port,
            l4,
            vlan,
        };
        // One lookup for the edge and its periodicity detector.
        let (status, period) = if let Some((e, det)) = self.edges.get_both_mut(id) {
            e.last_seen_ns = e.last_seen_ns.max(r.last_seen_ns);
            e.client_ip = c;
            e.server_ip = s;
            let period = if first {
                e.flows += 1;
                e.first_seen_ns = e.first_seen_ns.min(r.first_seen_ns);
                let (periodic, change) = self.periodicity.observe(det, pkey, r.first_seen_ns);
                Some((periodic, change, *det))
            } else {
                None
            };
            (e.status, period)
        } else {
            if !first {
                // The L7 name changed after the flow was counted: it stays on its first edge.
                return out;
            }
            let verdict = policy::evaluate(&self.policies, ce, se, port, l4);
            let learning_ns = verdict
                .as_ref()
                .map_or(self.config.learning_secs.saturating_mul(SEC), |v| {
                    v.learning_ns
                });
            let learning = r.first_seen_ns < start.saturating_add(learning_ns);
            let (mut status, mut learned, mut policy) = decide(verdict.as_ref(), learning);
            // Another replica's operator already decided this edge.
            if let Some(st) = self.sharing.as_ref().and_then(|sh| sh.pending_decision(id)) {
                (status, learned, policy) = (st, Learned::Manual, None);
            }
            let point = self.names.point(r.observation_point.as_ref());
            let l7_name = self.names.l7(l7);
            let (_, det) = self.edges.insert_new(Edge {
                id,
                client: cn.to_node(),
                server: sn.to_node(),
                port,
                l4,
                l7: l7_name,
                vlan,
                observation_point: point,
                first_seen_ns: r.first_seen_ns,
                last_seen_ns: r.last_seen_ns,
                flows: 1,
                bytes_c2s: 0,
                bytes_s2c: 0,
                remote: [0; 3],
                status,
                learned,
                policy,
                client_ip: c,
                server_ip: s,
            });
            let (periodic, change) = self.periodicity.observe(det, pkey, r.first_seen_ns);
            let period = Some((periodic, change, *det));
            self.periodicity.counters.evicted = self.edges.detectors_evicted;
            self.counters.edges_created += 1;
            if status == Status::Undecided {
                self.counters.new_service += 1;
                let d = def("new_service");
                out.alerts.push(FlowAlert::new(
                    &d,
                    d.score,
                    d.client_pct,
                    Roles::default(),
                    format!(
                        "new service after learning: {} -> {} {}/{} {l7} (edge {})",
                        cn_text(&cn),
                        cn_text(&sn),
                        edge::l4_name(l4),
                        port,
                        id_text(id)
                    ),
                ));
            }
            (status, period)
        };
        drop(dir);
        out.edge = Some(id);
        if let Some(sh) = self.sharing.as_mut() {
            sh.touched(id);
        }
        if status == Status::Denied {
            self.counters.lateral_movement += 1;
            let d = def("lateral_movement");
            let roles = Roles {
                client_attacker: true,
                server_victim: true,
                ..Roles::default()
            };
            let text = self.edges.get(id).map_or_else(String::new, |e| {
                format!(
                    "flow on a denied edge {} -> {} {}/{} {} (edge {}{})",
                    e.client.id(),
                    e.server.id(),
                    edge::l4_name(l4),
                    port,
                    e.l7,
                    id_text(id),
                    e.policy
                        .as_ref()
                        .map(|p| format!(", policy {p}"))
                        .unwrap_or_default()
                )
            });
            out.alerts
                .push(FlowAlert::new(&d, d.score, d.client_pct, roles, text));
        }
        if let Some((periodic, change, det)) = period {
            if periodic && let Some(info) = netwarden_api::risk::by_key("periodic_flow") {
                // nDPI gives the server 90 %; here the client copy alone raises it, so the
                // client gets it all (docs/servicemap.md).
                let d = CheckDef {
                    alert_type: info.key,
                    ntopng_id: info.ntopng_alert_id.unwrap_or(88),
                    score: info.score(),
                    client_pct: 100,
                    kind: ScoreKind::of(info.category),
                    default_enabled: true,
                    host: false,
                };
                out.alerts.push(FlowAlert::new(
                    &d,
                    d.score,
                    d.client_pct,
                    Roles::default(),
                    format!(
                        "Periodic Flow: every {:.1} s ± {:.1} s over {} observations (edge {})",
                        det.period() as f64 / SEC as f64,
                        det.jitter() as f64 / SEC as f64,
                        det.observations,
                        id_text(id)
                    ),
                ));
            }
            if let Some(change) = change {
                let d = def("periodicity_changed");
                out.alerts.push(FlowAlert::new(
                    &d,
                    d.score,
                    d.client_pct,
                    Roles::default(),
                    format!(
                        "{}: {} (edge {})",
                        change.words(),
                        change.describe(),
                        id_text(id)
                    ),
                ));
            }
        }
        if !out.alerts.is_empty() {
            filter_alerts(&mut out.alerts, r, c, s, analysis);
        }
        out
    }

    /// Adds what a record brought to edge `id` (the record's full counters when the flow was
    /// counted now, else its delta).
    pub fn add_traffic(&mut self, id: u64, counters: Counters) {
        if let Some(e) = self.edges.get_mut(id) {
            e.bytes_c2s = e.bytes_c2s.saturating_add(counters.c2s_bytes);
            e.bytes_s2c = e.bytes_s2c.saturating_add(counters.s2c_bytes);
            if let Some(sh) = self.sharing.as_mut() {
                sh.touched(id);
            }
        }
    }

    /// Forgets edges idle for `idle_secs`, and sweeps their periodicity detectors (idle 1 h:
    /// forgotten; periodic and silent for 3 periods: no longer periodic); at most once a
    /// minute of flow time, one pass over the table.
    pub fn sweep(&mut self, now_ns: u64) {
        if now_ns < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = now_ns.saturating_add(60 * SEC);
        let idle = self.config.idle_secs.saturating_mul(SEC);
        let periodicity = &mut self.periodicity;
        self.edges.sweep(now_ns.saturating_sub(idle), |e, det| {
            periodicity.sweep_one(det, || pair_key(e), now_ns);
        });
    }

    /// Every edge whose flows the periodicity map follows, keyed by its last addresses, with
    /// its detector (`GET /api/v2/periodicity`, the report).
    pub fn periodic_pairs(&self) -> impl Iterator<Item = (PeriodKey, &Detector)> {
        self.edges
            .iter_with_detectors()
            .filter(|(_, d)| d.flows > 0)
            .map(|(e, d)| (pair_key(e), d))
    }

    /// Replaces the policies in force and re-decides every edge not set through the API.
    pub fn set_policies(&mut self, policies: Vec<CompiledPolicy>) {
        self.policies = policies;
        let dir = self.directory.as_ref().map(crate::directory::read);
        let start = self.start_ns.unwrap_or(0);
        let mut changed = Vec::new();
        for e in self.edges.iter() {
            if e.learned == Learned::Manual {
                continue;
            }
            let ce = dir.as_ref().and_then(|d| d.get(e.client_ip));
            let se = dir.as_ref().and_then(|d| d.get(e.server_ip));
            let verdict = policy::evaluate(&self.policies, ce, se, e.port, e.l4);
            let learning_ns = verdict
                .as_ref()
                .map_or(self.config.learning_secs.saturating_mul(SEC), |v| {
                    v.learning_ns
                });
            let learning = e.first_seen_ns < start.saturating_add(learning_ns);
            let (status, learned, policy) = decide(verdict.as_ref(), learning);
            // What learning decided stays unless a policy speaks now.
            let keep = learned != Learned::Policy && e.learned != Learned::Policy;
            if !keep && (status, learned, &policy) != (e.status, e.learned, &e.policy) {
                changed.push((e.id, status, learned, policy));
            }
        }
        drop(dir);
        for (id, status, learned, policy) in changed {
            if let Some(e) = self.edges.get_mut(id) {
                e.status = status;
                e.learned = learned;
                e.policy = policy;
                self.counters.status_changes += 1;
            }
            self.edges.requeue(id);
        }
    }

    /// Sets the status of edge `id` through the API, now (wall clock); `None` when there is no
    /// such edge.
    pub fn set_status(&mut self, id: u64, status: Status) -> Option<&Edge> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.set_status_at(id, status, now)
    }

    /// [`Self::set_status`] decided at wall-clock `decided_ns` (with sharing on, the newest
    /// decision wins on every replica).
    pub fn set_status_at(&mut self, id: u64, status: Status, decided_ns: u64) -> Option<&Edge> {
        let e = self.edges.get_mut(id)?;
        e.status = status;
        e.learned = Learned::Manual;
        e.policy = None;
        self.counters.status_changes += 1;
        self.edges.requeue(id);
        if let Some(sh) = self.sharing.as_mut() {
            sh.decided(id, status, decided_ns);
        }
        self.edges.get(id)
    }

    /// Whether the record's client and server addresses sit on edge `e` (for the flows behind
    /// an edge).
    pub fn record_on_edge(&self, e: &Edge, r: &FlowRecord) -> bool {
        let (Some(c), Some(s)) = (r.client_addr(), r.server_addr()) else {
            return false;
        };
        if u16::try_from(r.server_port).ok() != Some(e.port)
            || u8::try_from(r.l4_proto).ok() != Some(e.l4)
            || u16::try_from(r.vlan).ok() != Some(e.vlan)
        {
            return false;
        }
        let dir = self.directory.as_ref().map(crate::directory::read);
        let cn = NodeRef::of(c, dir.as_ref().and_then(|d| d.get(c)));
        let sn = NodeRef::of(s, dir.as_ref().and_then(|d| d.get(s)));
        cn.to_node() == e.client && sn.to_node() == e.server
    }
}

/// Interned L7 and observation-point names: a new edge shares them instead of allocating
/// (measured: the new-edge path is the map's cost).
#[derive(Default)]
struct Names {
    l7: hashbrown::HashMap<Box<str>, Arc<str>, ahash::RandomState>,
    point: Option<(netwarden_api::flow::ObservationPoint, Arc<str>)>,
}

/// Names interned at most (more: allocated per edge).
const MAX_NAMES: usize = 4096;

impl Names {
    fn l7(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.l7.get(name) {
            return Arc::clone(a);
        }
        let a: Arc<str> = name.into();
        if self.l7.len() < MAX_NAMES {
            self.l7.insert(name.into(), Arc::clone(&a));
        }
        a
    }

    fn point(&mut self, p: Option<&netwarden_api::flow::ObservationPoint>) -> Arc<str> {
        let Some(p) = p else {
            return Arc::from("");
        };
        if let Some((last, a)) = &self.point
            && last == p
        {
            return Arc::clone(a);
        }
        let a: Arc<str> = crate::hosts::point_label(p).into();
        self.point = Some((p.clone(), Arc::clone(&a)));
        a
    }
}

/// The periodicity key of edge `e`: its last addresses, port, L4 and VLAN.
pub fn pair_key(e: &Edge) -> PeriodKey {
    PeriodKey {
        client: e.client_ip,
        server: e.server_ip,
        port: e.port,
        l4: e.l4,
        vlan: e.vlan,
    }
}

fn cn_text(n: &NodeRef<'_>) -> String {
    n.to_node().id()
}

/// Status, how, and which policy, for a new edge.
fn decide(
    verdict: Option<&policy::Verdict>,
    learning: bool,
) -> (Status, Learned, Option<Arc<str>>) {
    match verdict {
        Some(v) if v.rule == Some(ServiceRuleAction::Allow) => (
            Status::Allowed,
            Learned::Policy,
            Some(Arc::clone(&v.policy)),
        ),
        Some(v) if v.rule == Some(ServiceRuleAction::Deny) => {
            (Status::Denied, Learned::Policy, Some(Arc::clone(&v.policy)))
        }
        _ if learning => (Status::Allowed, Learned::DuringLearning, None),
        Some(v) if v.default_action == ServiceRuleAction::Deny => {
            (Status::Denied, Learned::Policy, Some(Arc::clone(&v.policy)))
        }
        _ => (Status::Undecided, Learned::AfterLearning, None),
    }
}

/// Drops alerts of disabled checks and alerts an `AlertExclusion` covers (as
/// [`Analysis::check_flow`] does for the flow checks).
fn filter_alerts(
    alerts: &mut Vec<FlowAlert>,
    r: &FlowRecord,
    client: IpAddr,
    server: IpAddr,
    analysis: &Analysis,
) {
    let checks = &analysis.config.checks;
    alerts.retain(|a| checks.enabled(a.alert_type));
    if analysis.exclusions.is_empty() || alerts.is_empty() {
        return;
    }
    let l7 = r.l7.as_ref();
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
    alerts.retain(|a| {
        analysis
            .exclusions
            .flow_excluded(a.alert_type, &subject, analysis.now_ns)
            .is_none()
    });
}
