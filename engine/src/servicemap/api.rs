//! The service map over HTTP (docs/servicemap.md has the JSON shapes):
//!
//! * `GET /api/v2/servicemap`: nodes and edges, filtered by `namespace`, `host`, `status`,
//!   `protocol` (L4 name or number, or L7 name), `from`/`to` (time window), `limit`;
//!   `format=graph` returns a `{nodes, edges}` document a UI lays out as is.
//! * `GET /api/v2/servicemap/edges/{id}`: one edge, its nodes, its periodicity and the flows
//!   behind it (active and ended flows the engine still holds in memory).
//! * `PATCH /api/v2/servicemap/edges/{id}` (write scope): `{"status": "allowed"|"denied"|
//!   "undecided"}`.
//! * `GET /api/v2/servicemap/policy.yaml`: the learned map as `ServicePolicy` YAML
//!   (`default_action=deny|allow`, `learning_period=24h`).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use netwarden_api::crd::ServiceRuleAction;
use netwarden_api::flow::{FlowRecord, proto};
use serde::{Deserialize, Serialize};

use super::edge::{Edge, Learned, Node, Status, id_text, l4_name, parse_id};
use super::{EdgeEvictions, ServiceMapCounters};
use crate::api::ApiState;
use crate::api::alerts::{bounded, time_param};
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, parse};
use crate::periodicity::{Detector, PeriodKey};

/// Edges returned unless `limit` says otherwise.
pub const DEFAULT_EDGES: usize = 1000;
/// Largest `limit`.
pub const MAX_EDGES: usize = 10_000;
/// Flows listed with an edge.
pub const EDGE_FLOWS: usize = 100;

/// The service-map routes (merged into the API router).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/servicemap", get(list))
        .route("/api/v2/servicemap/policy.yaml", get(policy_yaml))
        .route("/api/v2/servicemap/edges/{id}", get(detail).patch(patch))
}

/// Query parameters of `GET /api/v2/servicemap`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// Edges with a client or server node in this namespace.
    pub namespace: Option<String>,
    /// Edges with this address as last client or server, or this node id (`ns/Kind/name`).
    pub host: Option<String>,
    /// `allowed`, `denied` or `undecided`.
    pub status: Option<String>,
    /// L4 (`tcp`, `udp`, a number) or L7 name (case-insensitive).
    pub protocol: Option<String>,
    /// Edges last seen at or after this time (RFC 3339 or seconds since the epoch).
    pub from: Option<String>,
    /// Edges first seen at or before this time.
    pub to: Option<String>,
    /// Most edges (by flows, descending; default 1000, at most 10000).
    pub limit: Option<String>,
    /// `json` (default) or `graph`.
    pub format: Option<String>,
}

/// One node as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct NodeView {
    /// The node id: an address, `namespace/Kind/name` or `Node/name`.
    pub id: String,
    /// `host` or `workload`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub node_type: &'static str,
    /// Namespace, for workloads in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `Deployment`, `Service`, `Node`..., for workloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name, for workloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Edges (of the answer) where the node is the server.
    pub edges_in: u64,
    /// Edges (of the answer) where the node is the client.
    pub edges_out: u64,
}

impl NodeView {
    fn of(n: &Node) -> Self {
        match n {
            Node::Host { .. } => Self {
                id: n.id(),
                node_type: "host",
                namespace: None,
                kind: None,
                name: None,
                edges_in: 0,
                edges_out: 0,
            },
            Node::Workload {
                namespace,
                kind,
                name,
            } => Self {
                id: n.id(),
                node_type: "workload",
                namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                kind: Some(kind.to_string()),
                name: Some(name.to_string()),
                edges_in: 0,
                edges_out: 0,
            },
        }
    }
}

/// One edge as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct EdgeView {
    /// Edge id (16 hex digits, the same on every replica).
    pub id: String,
    /// Client node id.
    pub client: String,
    /// Server node id.
    pub server: String,
    /// Server port.
    pub port: u16,
    /// L4 name (`TCP`).
    pub l4: String,
    /// L4 number.
    pub l4_proto: u8,
    /// L7 application.
    pub l7: String,
    /// VLAN.
    pub vlan: u16,
    /// Observation point where first seen.
    pub observation_point: String,
    /// First flow start, ns since the epoch.
    pub first_seen_ns: u64,
    /// Last record, ns since the epoch.
    pub last_seen_ns: u64,
    /// Flows (all replicas).
    pub flows: u64,
    /// Client-to-server bytes.
    pub bytes_c2s: u64,
    /// Server-to-client bytes.
    pub bytes_s2c: u64,
    /// `allowed`, `denied`, `undecided`.
    pub status: Status,
    /// `during_learning`, `after_learning`, `policy`, `manual`, `replica`.
    pub learned: Learned,
    /// The `ServicePolicy` that decided (`namespace/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Last client address.
    pub client_ip: String,
    /// Last server address.
    pub server_ip: String,
}

impl EdgeView {
    /// The view of `e`.
    pub fn of(e: &Edge) -> Self {
        Self {
            id: id_text(e.id),
            client: e.client.id(),
            server: e.server.id(),
            port: e.port,
            l4: l4_name(e.l4),
            l4_proto: e.l4,
            l7: e.l7.to_string(),
            vlan: e.vlan,
            observation_point: e.observation_point.to_string(),
            first_seen_ns: e.first_seen_ns,
            last_seen_ns: e.last_seen_ns,
            flows: e.flows.saturating_add(e.remote[0]),
            bytes_c2s: e.bytes_c2s.saturating_add(e.remote[1]),
            bytes_s2c: e.bytes_s2c.saturating_add(e.remote[2]),
            status: e.status,
            learned: e.learned,
            policy: e.policy.as_ref().map(ToString::to_string),
            client_ip: e.client_ip.to_string(),
            server_ip: e.server_ip.to_string(),
        }
    }
}

/// Where learning stands.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LearningView {
    /// The global learning period, seconds.
    pub period_secs: u64,
    /// When the map started learning (flow time, ns), once it saw a flow.
    pub start_ns: Option<u64>,
    /// When the global learning period ends.
    pub ends_ns: Option<u64>,
    /// Whether it is still running (flow time).
    pub active: bool,
    /// `ServicePolicy` objects in force (`namespace/name`).
    pub policies: Vec<String>,
}

/// Edges by status.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StatusCounts {
    /// Allowed edges.
    pub allowed: u64,
    /// Denied edges.
    pub denied: u64,
    /// Undecided edges.
    pub undecided: u64,
}

impl StatusCounts {
    /// Counts `edges` by status.
    pub fn of<'a>(edges: impl Iterator<Item = &'a Edge>) -> Self {
        let mut c = Self::default();
        for e in edges {
            match e.status {
                Status::Allowed => c.allowed += 1,
                Status::Denied => c.denied += 1,
                Status::Undecided => c.undecided += 1,
            }
        }
        c
    }
}

/// `GET /api/v2/servicemap` (JSON format).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MapView {
    /// Learning.
    pub learning: LearningView,
    /// Flow time now, ns.
    pub now_ns: u64,
    /// Most edges kept.
    pub capacity: usize,
    /// Edges held (all, before filters).
    pub total_edges: usize,
    /// Edges matching the filters (before `limit`), by status.
    pub counts: StatusCounts,
    /// Edges matching the filters, before `limit`.
    pub matched: usize,
    /// What left the table.
    pub evictions: EdgeEvictions,
    /// Counters.
    pub counters: ServiceMapCounters,
    /// Nodes of the returned edges.
    pub nodes: Vec<NodeView>,
    /// Edges, most flows first.
    pub edges: Vec<EdgeView>,
}

/// A node of the graph document.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GraphNode {
    /// Node id.
    pub id: String,
    /// What to print.
    pub label: String,
    /// The namespace, `external` for hosts.
    pub group: String,
    /// `host` or `workload`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub node_type: &'static str,
    /// Edges in.
    pub edges_in: u64,
    /// Edges out.
    pub edges_out: u64,
}

/// An edge of the graph document.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GraphEdge {
    /// Edge id.
    pub id: String,
    /// Client node id.
    pub source: String,
    /// Server node id.
    pub target: String,
    /// `TCP/443 TLS`.
    pub label: String,
    /// Status.
    pub status: Status,
    /// Flows.
    pub flows: u64,
    /// Bytes both ways.
    pub bytes: u64,
}

/// `GET /api/v2/servicemap?format=graph`.
// `deny_unknown_fields` only closes its schema (`additionalProperties: false`; serialising is
// unchanged), so that a `MapView` never also validates as a `GraphView` in the route's `oneOf`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphView {
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges.
    pub edges: Vec<GraphEdge>,
    /// Edges matching the filters by status.
    pub counts: StatusCounts,
    /// Learning.
    pub learning: LearningView,
}

struct Filter {
    namespace: Option<String>,
    host: Option<String>,
    status: Option<Status>,
    l4: Option<u8>,
    l7: Option<String>,
    from: Option<u64>,
    to: Option<u64>,
}

impl Filter {
    fn parse(q: &MapQuery) -> Result<Self, Problem> {
        let status = bounded("status", q.status.as_deref())?
            .map(|s| {
                Status::parse(s).ok_or_else(|| {
                    Problem::bad_request(format!(
                        "query parameter `status`: invalid value {s:?}, expected allowed, denied or undecided"
                    ))
                })
            })
            .transpose()?;
        let protocol = bounded("protocol", q.protocol.as_deref())?;
        let l4 = protocol.and_then(proto::from_name);
        let l7 = protocol.filter(|_| l4.is_none()).map(str::to_lowercase);
        Ok(Self {
            namespace: bounded("namespace", q.namespace.as_deref())?.map(str::to_owned),
            host: bounded("host", q.host.as_deref())?.map(str::to_owned),
            status,
            l4,
            l7,
            from: time_param("from", q.from.as_deref())?,
            to: time_param("to", q.to.as_deref())?,
        })
    }

    fn matches(&self, e: &Edge) -> bool {
        if let Some(ns) = &self.namespace
            && e.client.namespace() != Some(ns.as_str())
            && e.server.namespace() != Some(ns.as_str())
        {
            return false;
        }
        if let Some(h) = &self.host {
            let hit = [&e.client, &e.server].iter().any(|n| &n.id() == h)
                || e.client_ip.to_string() == *h
                || e.server_ip.to_string() == *h;
            if !hit {
                return false;
            }
        }
        self.status.is_none_or(|s| s == e.status)
            && self.l4.is_none_or(|p| p == e.l4)
            && self.l7.as_ref().is_none_or(|p| e.l7.to_lowercase() == *p)
            && self.from.is_none_or(|t| e.last_seen_ns >= t)
            && self.to.is_none_or(|t| e.first_seen_ns <= t)
    }
}

fn learning_view(sm: &super::ServiceMap, now: u64) -> LearningView {
    let ends = sm.learning_ends_ns();
    LearningView {
        period_secs: sm.config().learning_secs,
        start_ns: sm.start_ns,
        ends_ns: ends,
        active: ends.is_none_or(|e| now < e),
        policies: sm.policies().iter().map(|p| p.id.to_string()).collect(),
    }
}

/// The map as JSON, filtered (the report and the API share it).
pub fn map_view(sm: &super::ServiceMap, now: u64, q: &MapQuery) -> Result<MapView, Problem> {
    let filter = Filter::parse(q)?;
    let limit =
        parse::<usize>("limit", q.limit.as_deref(), "a number 1..=10000")?.unwrap_or(DEFAULT_EDGES);
    if limit == 0 || limit > MAX_EDGES {
        return Err(Problem::bad_request(format!(
            "query parameter `limit`: {limit} is outside 1..={MAX_EDGES}"
        )));
    }
    let mut edges: Vec<&Edge> = sm.edges.iter().filter(|e| filter.matches(e)).collect();
    let counts = StatusCounts::of(edges.iter().copied());
    let matched = edges.len();
    edges.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.id.cmp(&b.id)));
    edges.truncate(limit);
    let mut nodes: BTreeMap<String, NodeView> = BTreeMap::new();
    for e in &edges {
        nodes
            .entry(e.client.id())
            .or_insert_with(|| NodeView::of(&e.client))
            .edges_out += 1;
        nodes
            .entry(e.server.id())
            .or_insert_with(|| NodeView::of(&e.server))
            .edges_in += 1;
    }
    Ok(MapView {
        learning: learning_view(sm, now),
        now_ns: now,
        capacity: sm.edges.capacity(),
        total_edges: sm.edges.len(),
        counts,
        matched,
        evictions: sm.edges.evictions,
        counters: sm.counters,
        nodes: nodes.into_values().collect(),
        edges: edges.into_iter().map(EdgeView::of).collect(),
    })
}

/// The graph document of a map view.
pub fn graph_of(view: MapView) -> GraphView {
    GraphView {
        nodes: view
            .nodes
            .into_iter()
            .map(|n| GraphNode {
                label: n.name.clone().unwrap_or_else(|| n.id.clone()),
                group: n.namespace.clone().unwrap_or_else(|| {
                    if n.node_type == "host" {
                        "external".into()
                    } else {
                        "cluster".into()
                    }
                }),
                node_type: n.node_type,
                edges_in: n.edges_in,
                edges_out: n.edges_out,
                id: n.id,
            })
            .collect(),
        edges: view
            .edges
            .into_iter()
            .map(|e| GraphEdge {
                label: format!("{}/{} {}", e.l4, e.port, e.l7),
                source: e.client,
                target: e.server,
                status: e.status,
                flows: e.flows,
                bytes: e.bytes_c2s.saturating_add(e.bytes_s2c),
                id: e.id,
            })
            .collect(),
        counts: view.counts,
        learning: view.learning,
    }
}

/// `GET /api/v2/servicemap`.
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<MapQuery>,
) -> Result<axum::response::Response, Problem> {
    let graph = match q.format.as_deref() {
        None | Some("json") => false,
        Some("graph") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "query parameter `format`: invalid value {:?}, expected json or graph",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let view = {
        let state = api.engine.read();
        map_view(&state.servicemap, state.analysis.now_ns, &q)?
    };
    Ok(if graph {
        Json(graph_of(view)).into_response()
    } else {
        Json(view).into_response()
    })
}

/// Periodicity of a pair, as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PairPeriodicity {
    /// The pair.
    pub key: PeriodKey,
    /// Its detector.
    pub detector: Detector,
}

/// `GET /api/v2/servicemap/edges/{id}`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EdgeDetail {
    /// The edge.
    pub edge: EdgeView,
    /// Its client node.
    pub client: NodeView,
    /// Its server node.
    pub server: NodeView,
    /// Periodicity of the edge's last address pair, when tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub periodicity: Option<PairPeriodicity>,
    /// Flows behind the edge still in memory (active first, then ended; at most 100, latest
    /// first).
    #[schema(value_type = Vec<crate::api::openapi::FlowRecordSchema>)]
    pub flows: Vec<FlowRecord>,
}

fn edge_id_param(id: &str) -> Result<u64, Problem> {
    parse_id(id).ok_or_else(|| {
        Problem::bad_request(format!(
            "edge id: invalid value {:?}, expected 16 hex digits",
            id.chars().take(32).collect::<String>()
        ))
    })
}

/// `GET /api/v2/servicemap/edges/{id}`.
pub async fn detail(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<EdgeDetail>, Problem> {
    let id = edge_id_param(&id)?;
    let state = api.engine.read();
    let sm = &state.servicemap;
    let e = sm
        .edges
        .get(id)
        .ok_or_else(|| Problem::not_found(format!("no edge {}", id_text(id))))?;
    let mut flows: Vec<FlowRecord> = state
        .flows
        .active()
        .chain(state.flows.ended())
        .filter(|r| sm.record_on_edge(e, r))
        .cloned()
        .collect();
    flows.sort_by_key(|r| std::cmp::Reverse(r.last_seen_ns));
    flows.truncate(EDGE_FLOWS);
    let key = PeriodKey {
        client: e.client_ip,
        server: e.server_ip,
        port: e.port,
        l4: e.l4,
        vlan: e.vlan,
    };
    Ok(Json(EdgeDetail {
        edge: EdgeView::of(e),
        client: NodeView::of(&e.client),
        server: NodeView::of(&e.server),
        periodicity: sm
            .edges
            .detector(id)
            .filter(|d| d.flows > 0)
            .map(|d| PairPeriodicity { key, detector: *d }),
        flows,
    }))
}

/// Body of `PATCH /api/v2/servicemap/edges/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// `allowed`, `denied` or `undecided`.
    #[schema(value_type = Status)]
    pub status: String,
}

/// `PATCH /api/v2/servicemap/edges/{id}` with `{"status": "allowed"|"denied"|"undecided"}`.
pub async fn patch(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<EdgeView>, Problem> {
    let id = edge_id_param(&id)?;
    let b: PatchBody =
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(format!("body: {e}")))?;
    let status = Status::parse(&b.status).ok_or_else(|| {
        Problem::bad_request(format!(
            "body: status {:?} is not allowed, denied or undecided",
            b.status.chars().take(32).collect::<String>()
        ))
    })?;
    let mut state = api
        .engine
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let e = state
        .servicemap
        .set_status(id, status)
        .ok_or_else(|| Problem::not_found(format!("no edge {}", id_text(id))))?;
    tracing::info!(edge = %id_text(id), status = status.as_str(), "service-map edge set through the API");
    Ok(Json(EdgeView::of(e)))
}

/// Query parameters of `GET /api/v2/servicemap/policy.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `deny` (default: what was not learned raises `lateral_movement`) or `allow`.
    pub default_action: Option<String>,
    /// The policies' `learningPeriod` (default `24h`).
    pub learning_period: Option<String>,
}

/// `GET /api/v2/servicemap/policy.yaml`.
pub async fn policy_yaml(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse, Problem> {
    let default_action = match q.default_action.as_deref() {
        None | Some("deny") => ServiceRuleAction::Deny,
        Some("allow") => ServiceRuleAction::Allow,
        Some(_) => {
            return Err(Problem::bad_request(
                "query parameter `default_action`: expected allow or deny",
            ));
        }
    };
    let learning = q.learning_period.as_deref().unwrap_or("24h");
    let probe = netwarden_api::crd::ServicePolicySpec {
        rules: Vec::new(),
        default_action,
        learning_period: learning.to_owned(),
    };
    if learning.len() > 16 || probe.learning_seconds().is_none() {
        return Err(Problem::bad_request(
            "query parameter `learning_period`: expected a number followed by s, m, h or d",
        ));
    }
    let yaml = {
        let state = api.engine.read();
        let dir = crate::directory::read(&api.engine.directory);
        let (docs, notes) = super::policy::export(
            state.servicemap.edges.iter(),
            &dir,
            default_action,
            learning,
        );
        super::policy::export_yaml(&docs, &notes)
    };
    Ok(([(header::CONTENT_TYPE, "application/yaml")], yaml))
}
