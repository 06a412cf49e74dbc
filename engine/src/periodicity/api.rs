//! `GET /api/v2/periodicity`: the periodicity map (docs/servicemap.md).
//!
//! Filters: `host` (client or server address), `periodic=true` (only periodic pairs),
//! `limit` (default 1000, at most 10000; periodic pairs first, then by flows).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::{Change, PeriodStatus, PeriodicityCounters};
use crate::api::ApiState;
use crate::api::alerts::bounded;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, parse};

/// The periodicity route (merged into the API router).
pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/v2/periodicity", get(list))
}

/// Query parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicityQuery {
    /// Client or server address.
    pub host: Option<String>,
    /// `true`: only periodic pairs.
    pub periodic: Option<String>,
    /// Most entries (default 1000, at most 10000).
    pub limit: Option<String>,
}

/// One pair.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PeriodicityEntry {
    /// Client address.
    pub client: String,
    /// Server address.
    pub server: String,
    /// Server port.
    pub port: u16,
    /// L4 name.
    pub l4: String,
    /// VLAN.
    pub vlan: u16,
    /// `learning`, `periodic`, `no_longer_periodic`.
    pub status: PeriodStatus,
    /// The period, seconds.
    pub period_secs: f64,
    /// Mean deviation from the period, seconds.
    pub jitter_secs: f64,
    /// Consistent intervals behind the period.
    pub observations: u32,
    /// Flow starts seen.
    pub flows: u64,
    /// First flow start, ns.
    pub first_seen_ns: u64,
    /// Last flow start, ns.
    pub last_start_ns: u64,
    /// Changes so far.
    pub changes: u32,
}

/// One recent change.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChangeView {
    /// Client address.
    pub client: String,
    /// Server address.
    pub server: String,
    /// Server port.
    pub port: u16,
    /// L4 name.
    pub l4: String,
    /// Flow time, ns.
    pub t_ns: u64,
    /// The change (`kind`: `periodic`, `changed`, `no_longer_periodic`, with its periods).
    pub change: Change,
    /// In words.
    pub message: String,
}

/// The answer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PeriodicityView {
    /// Most pairs kept.
    pub capacity: usize,
    /// Pairs held.
    pub total: usize,
    /// Pairs periodic now.
    pub periodic: usize,
    /// Counters.
    pub counters: PeriodicityCounters,
    /// Pairs.
    pub entries: Vec<PeriodicityEntry>,
    /// Latest changes, newest first.
    pub recent_changes: Vec<ChangeView>,
}

#[allow(clippy::cast_precision_loss)]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The view of `map`, filtered.
pub fn view(
    sm: &crate::servicemap::ServiceMap,
    q: &PeriodicityQuery,
) -> Result<PeriodicityView, Problem> {
    let host = bounded("host", q.host.as_deref())?;
    let only_periodic =
        parse::<bool>("periodic", q.periodic.as_deref(), "true or false")?.unwrap_or(false);
    let limit = parse::<usize>("limit", q.limit.as_deref(), "a number 1..=10000")?.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(Problem::bad_request(format!(
            "query parameter `limit`: {limit} is outside 1..=10000"
        )));
    }
    let host_ok = |c: &std::net::IpAddr, s: &std::net::IpAddr| {
        host.is_none_or(|h| c.to_string() == h || s.to_string() == h)
    };
    let map = &sm.periodicity;
    let mut rows: Vec<_> = sm
        .periodic_pairs()
        .filter(|(k, d)| host_ok(&k.client, &k.server) && (!only_periodic || d.is_periodic()))
        .collect();
    rows.sort_by(|a, b| {
        b.1.is_periodic()
            .cmp(&a.1.is_periodic())
            .then_with(|| b.1.flows.cmp(&a.1.flows))
            .then_with(|| a.0.cmp(&b.0))
    });
    rows.truncate(limit);
    let l4 = |p: u8| netwarden_api::flow::proto::name(p).into_owned();
    Ok(PeriodicityView {
        capacity: map.capacity(),
        total: sm.periodic_pairs().count(),
        periodic: sm.periodic_pairs().filter(|(_, d)| d.is_periodic()).count(),
        counters: map.counters,
        entries: rows
            .into_iter()
            .map(|(k, d)| PeriodicityEntry {
                client: k.client.to_string(),
                server: k.server.to_string(),
                port: k.port,
                l4: l4(k.l4),
                vlan: k.vlan,
                status: d.status,
                period_secs: secs(d.period()),
                jitter_secs: secs(d.jitter()),
                observations: d.observations,
                flows: d.flows,
                first_seen_ns: d.first_seen_ns,
                last_start_ns: d.last_start_ns,
                changes: d.changes,
            })
            .collect(),
        recent_changes: map
            .recent
            .iter()
            .rev()
            .filter(|c| host_ok(&c.key.client, &c.key.server))
            .map(|c| ChangeView {
                client: c.key.client.to_string(),
                server: c.key.server.to_string(),
                port: c.key.port,
                l4: l4(c.key.l4),
                t_ns: c.t_ns,
                change: c.change,
                message: c.change.describe(),
            })
            .collect(),
    })
}

/// `GET /api/v2/periodicity`.
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<PeriodicityQuery>,
) -> Result<Json<PeriodicityView>, Problem> {
    let state = api.engine.read();
    view(&state.servicemap, &q).map(Json)
}
