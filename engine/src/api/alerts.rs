//! The alert routes — list, summary, detail with drill-down, acknowledge, delete — and
//! `GET /api/v2/hosts/{ip}/score` and `/timeseries`.
//!
//! Alerts are read from the persistent store when the engine has one (`--data DIR`), else from
//! the in-memory store; both take the same [`AlertFilter`] with the same meaning. Changes
//! (acknowledge, delete) apply to both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netwarden_api::alert::{AlertState, Entity};
use serde::{Deserialize, Serialize};

use crate::alerts::store::filter::{AlertFilter, AlertSortKey, HostRole, MAX_TYPES, alert_hosts};
use crate::alerts::time::parse_time;
use crate::alerts::{HOST_METRICS, SeriesSample, StoredAlert};
use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort, parse};
use crate::hosts::HostKey;
use crate::score::{Contribution, ScoreValues};
use crate::store::db::query::{self as dbq, AlertGroup};
use crate::store::db::{Db, StoreError, Target};

/// Longest value accepted for a text parameter (bytes).
pub const MAX_PARAM_LEN: usize = 512;

/// Query parameters of `GET /api/v2/alerts` (the summary, acknowledge and delete routes take
/// the same filters).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Alerts last seen at or after this time (RFC 3339 or seconds since the epoch).
    pub from: Option<String>,
    /// Alerts first seen at or before this time.
    pub to: Option<String>,
    /// Minimum severity: `info`, `notice`, `warning`, `error`, `critical`, `emergency`.
    pub severity: Option<String>,
    /// Alert type (comma-separated list accepted).
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    /// Entity: `flow`, `host`, `interface`, `network`, `observation_point`, `service_map`.
    pub entity: Option<String>,
    /// Exact entity value (`10.0.0.1`, a flow's 5-tuple text, a point name).
    pub entity_value: Option<String>,
    /// A host address involved (flow client or server, or the host of a host alert).
    pub host: Option<String>,
    /// With `host`: `attacker`, `victim` or `any` (default; `either` accepted).
    pub role: Option<String>,
    /// `engaged`, `released`, `past`.
    pub state: Option<String>,
    /// `true` or `false`.
    pub acknowledged: Option<String>,
    /// Observation point name.
    pub observation_point: Option<String>,
    /// `time`, `score`, `count`, `id`; `-` prefix for descending (default `-time`).
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Summary only: bucket width in seconds (1..=86400, default 300).
    pub bucket: Option<String>,
    /// Acknowledge and delete only: `true` to act on every alert when no filter is given.
    pub all: Option<String>,
}

impl AlertQuery {
    /// A 400 for the first of `names` present that `route` does not take.
    fn reject(route: &str, names: &[(&str, bool)]) -> Result<(), Problem> {
        for (name, present) in names {
            if *present {
                return Err(Problem::bad_request(format!(
                    "query parameter `{name}` is not accepted by {route}"
                )));
            }
        }
        Ok(())
    }
}

fn enum_param<T: for<'de> Deserialize<'de>>(
    name: &str,
    v: Option<&str>,
    expected: &str,
) -> Result<Option<T>, Problem> {
    v.map(|v| {
        serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_lowercase())).map_err(
            |_| {
                Problem::bad_request(format!(
                    "query parameter `{name}`: invalid value {v:?}, expected one of {expected}"
                ))
            },
        )
    })
    .transpose()
}

/// A time parameter (`from`, `to`) in ns.
pub fn time_param(name: &str, v: Option<&str>) -> Result<Option<u64>, Problem> {
    v.map(|v| {
        parse_time(v.trim()).ok_or_else(|| {
            Problem::bad_request(format!(
                "query parameter `{name}`: invalid value {v:?}, expected an RFC 3339 time or seconds since the epoch"
            ))
        })
    })
    .transpose()
}

/// Rejects a text parameter longer than [`MAX_PARAM_LEN`].
pub fn bounded<'a>(name: &str, v: Option<&'a str>) -> Result<Option<&'a str>, Problem> {
    match v {
        Some(v) if v.len() > MAX_PARAM_LEN => Err(Problem::bad_request(format!(
            "query parameter `{name}`: longer than {MAX_PARAM_LEN} bytes"
        ))),
        _ => Ok(v),
    }
}

fn bool_param(name: &str, v: Option<&str>) -> Result<Option<bool>, Problem> {
    parse(name, v, "true or false")
}

/// The filter of an alert query, validated.
pub fn alert_filter(q: &AlertQuery) -> Result<AlertFilter, Problem> {
    let from = time_param("from", q.from.as_deref())?;
    let to = time_param("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(Problem::bad_request(
            "query parameters `from` and `to`: `from` is after `to`",
        ));
    }
    let role = match q.role.as_deref().map(str::trim) {
        None | Some("any" | "either") => HostRole::Any,
        Some("attacker") => HostRole::Attacker,
        Some("victim") => HostRole::Victim,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "query parameter `role`: invalid value {other:?}, expected attacker, victim or any"
            )));
        }
    };
    let host: Option<IpAddr> = parse("host", q.host.as_deref(), "an IPv4 or IPv6 address")?;
    if q.role.is_some() && host.is_none() {
        return Err(Problem::bad_request("query parameter `role` needs `host`"));
    }
    let types: Vec<String> = bounded("type", q.alert_type.as_deref())?
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if types.len() > MAX_TYPES {
        return Err(Problem::bad_request(format!(
            "query parameter `type`: more than {MAX_TYPES} types"
        )));
    }
    if let Some(bad) = types
        .iter()
        .find(|t| !t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'))
    {
        return Err(Problem::bad_request(format!(
            "query parameter `type`: invalid alert type {bad:?} (letters, digits and `_`)"
        )));
    }
    Ok(AlertFilter {
        from,
        to,
        severity: enum_param(
            "severity",
            q.severity.as_deref(),
            "info, notice, warning, error, critical, emergency",
        )?,
        types,
        entity: enum_param(
            "entity",
            q.entity.as_deref(),
            "flow, host, interface, network, observation_point, service_map",
        )?,
        entity_value: bounded("entity_value", q.entity_value.as_deref())?
            .map(str::to_owned)
            .filter(|v| !v.is_empty()),
        host,
        role,
        state: enum_param("state", q.state.as_deref(), "engaged, released, past")?,
        acknowledged: bool_param("acknowledged", q.acknowledged.as_deref())?,
        point: bounded("observation_point", q.observation_point.as_deref())?
            .map(str::to_owned)
            .filter(|p| !p.is_empty()),
    })
}

const SORT_KEYS: &[(&str, AlertSortKey)] = &[
    ("time", AlertSortKey::Time),
    ("score", AlertSortKey::Score),
    ("count", AlertSortKey::Count),
    ("id", AlertSortKey::Id),
];

/// 503: the persistent store did not answer.
pub fn store_problem(e: &StoreError) -> Problem {
    tracing::warn!(error = %e, "alert store unavailable");
    Problem {
        kind: "about:blank",
        title: "Service Unavailable",
        status: 503,
        detail: format!("the store is unavailable: {e}"),
    }
}

fn sort_value(key: AlertSortKey, r: &StoredAlert) -> u64 {
    match key {
        AlertSortKey::Time => r.alert.last_seen_ns,
        AlertSortKey::Score => u64::from(r.alert.score),
        AlertSortKey::Count => r.alert.count,
        AlertSortKey::Id => r.id,
    }
}

/// `GET /api/v2/alerts`.
#[utoipa::path(get, path = "/api/v2/alerts", tag = "alerts", params(AlertQuery), responses((status = 200, description = "A page of alerts, most recent first by default", body = Page<StoredAlert>)))]
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<Page<StoredAlert>>, Problem> {
    AlertQuery::reject(
        "/api/v2/alerts",
        &[("bucket", q.bucket.is_some()), ("all", q.all.is_some())],
    )?;
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        SORT_KEYS,
        Sort {
            key: AlertSortKey::Time,
            descending: true,
        },
    )?;
    let filter = alert_filter(&q)?;
    if let Some(db) = api.engine.db.clone() {
        let (total, items) = db
            .read(move |c| {
                dbq::alerts_page(
                    c,
                    &filter,
                    sort.key,
                    sort.descending,
                    paging.offset,
                    paging.limit,
                )
            })
            .await
            .map_err(|e| store_problem(&e))?;
        return Ok(Json(Page {
            total: usize::try_from(total).unwrap_or(usize::MAX),
            offset: paging.offset,
            limit: paging.limit,
            items,
        }));
    }
    let state = api.engine.read();
    let mut hits: Vec<&StoredAlert> = state
        .analysis
        .store
        .iter()
        .filter(|r| filter.matches(r))
        .collect();
    hits.sort_by(|a, b| {
        sort.order(&sort_value(sort.key, a), &sort_value(sort.key, b))
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(Json(paging.page(hits, Clone::clone)))
}

/// Counts of alerts by type, by severity, by entity, and per time bucket.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    /// Alerts matching the filters.
    pub total: u64,
    /// Host alerts engaged now.
    pub engaged: u64,
    /// Rows per type.
    pub by_type: BTreeMap<String, u64>,
    /// Rows per severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Rows per entity.
    pub by_entity: BTreeMap<String, u64>,
    /// Bucket width, seconds.
    pub bucket_secs: u64,
    /// Per time bucket of first seen, oldest first (empty buckets left out).
    pub over_time: Vec<SummaryBucket>,
}

/// One time bucket of the summary.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct SummaryBucket {
    /// Bucket start, ns since the epoch.
    pub start_ns: u64,
    /// Rows in the bucket.
    pub total: u64,
    /// Rows per severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Rows per type.
    pub by_type: BTreeMap<String, u64>,
}

fn label<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Folds groups (from SQL, or one per in-memory row) into the summary.
fn summarize(groups: impl IntoIterator<Item = AlertGroup>, bucket_secs: u64) -> AlertSummary {
    let mut s = AlertSummary {
        bucket_secs,
        ..AlertSummary::default()
    };
    let mut buckets: BTreeMap<u64, SummaryBucket> = BTreeMap::new();
    for g in groups {
        let n = g.rows;
        let severity = label(&g.severity);
        s.total += n;
        if g.state == AlertState::Engaged {
            s.engaged += n;
        }
        *s.by_type.entry(g.alert_type.clone()).or_default() += n;
        *s.by_severity.entry(severity.clone()).or_default() += n;
        *s.by_entity.entry(g.entity.as_str().to_owned()).or_default() += n;
        let b = buckets.entry(g.bucket_ns).or_insert_with(|| SummaryBucket {
            start_ns: g.bucket_ns,
            ..SummaryBucket::default()
        });
        b.total += n;
        *b.by_severity.entry(severity).or_default() += n;
        *b.by_type.entry(g.alert_type).or_default() += n;
    }
    s.over_time = buckets.into_values().collect();
    s
}

/// `GET /api/v2/alerts/summary`.
#[utoipa::path(get, path = "/api/v2/alerts/summary", tag = "alerts", params(AlertQuery), responses((status = 200, description = "Counts by type, severity, entity and time bucket", body = AlertSummary)))]
pub async fn summary(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<AlertSummary>, Problem> {
    AlertQuery::reject(
        "/api/v2/alerts/summary",
        &[
            ("sort", q.sort.is_some()),
            ("offset", q.offset.is_some()),
            ("limit", q.limit.is_some()),
            ("all", q.all.is_some()),
        ],
    )?;
    let bucket_secs: u64 =
        parse("bucket", q.bucket.as_deref(), "seconds from 1 to 86400")?.unwrap_or(300);
    if !(1..=86_400).contains(&bucket_secs) {
        return Err(Problem::bad_request(format!(
            "query parameter `bucket`: {bucket_secs} is not between 1 and 86400"
        )));
    }
    let filter = alert_filter(&q)?;
    let width = bucket_secs * 1_000_000_000;
    if let Some(db) = api.engine.db.clone() {
        let groups = db
            .read(move |c| dbq::alert_groups(c, &filter, width))
            .await
            .map_err(|e| store_problem(&e))?;
        return Ok(Json(summarize(groups, bucket_secs)));
    }
    let state = api.engine.read();
    let groups = state
        .analysis
        .store
        .iter()
        .filter(|r| filter.matches(r))
        .map(|r| AlertGroup {
            alert_type: r.alert.alert_type.clone(),
            severity: r.alert.severity,
            entity: r.alert.entity,
            state: r.alert.state,
            bucket_ns: r.alert.first_seen_ns / width * width,
            rows: 1,
        });
    Ok(Json(summarize(groups, bucket_secs)))
}

/// An alert with its drill-down links.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    /// The alert (the triggering flow is in `flow` for flow alerts).
    #[serde(flatten)]
    pub alert: StoredAlert,
    /// Links to related data.
    pub links: AlertLinks,
}

/// Drill-down links (absent when the alert names no host or point).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AlertLinks {
    /// The host's ended flows in the alert's time window, from the flow history (the
    /// client's for flow alerts, the host's for host alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_flows: Option<String>,
    /// The server's ended flows in the window (flow alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_flows: Option<String>,
    /// The host's score breakdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_score: Option<String>,
    /// Other alerts of the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_alerts: Option<String>,
    /// The flows of the alert's observation point in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_flows: Option<String>,
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The drill-down links of `row`.
pub fn links(row: &StoredAlert) -> AlertLinks {
    let a = &row.alert;
    let (from, to) = (
        a.first_seen_ns / 1_000_000_000,
        a.last_seen_ns.div_ceil(1_000_000_000).max(1),
    );
    let window = format!("from={from}&to={to}");
    let (client, server) = alert_hosts(a);
    let flows = |ip: IpAddr| {
        format!(
            "/api/v2/flows/history?host={}&{window}",
            encode(&ip.to_string())
        )
    };
    AlertLinks {
        host_flows: client.map(flows),
        server_flows: server.map(flows),
        host_score: client.map(|ip| format!("/api/v2/hosts/{}/score", encode(&ip.to_string()))),
        host_alerts: client.map(|ip| format!("/api/v2/alerts?host={}", encode(&ip.to_string()))),
        point_flows: (!a.observation_point.is_empty()
            && matches!(a.entity, Entity::ObservationPoint | Entity::Interface))
        .then(|| {
            format!(
                "/api/v2/flows/history?observation_point={}&{window}",
                encode(&a.observation_point)
            )
        }),
    }
}

/// Finds an alert by row id or by key (the newest row of that key).
async fn find(api: &ApiState, id: &str) -> Result<StoredAlert, Problem> {
    if id.is_empty() || id.len() > 64 {
        return Err(Problem::bad_request(
            "alert id: expected a row id or an alert key",
        ));
    }
    let found = if let Some(db) = api.engine.db.clone() {
        let key = id.to_owned();
        db.read(move |c| match key.parse::<u64>() {
            Ok(n) => match dbq::alert_by_id(c, n)? {
                Some(row) => Ok(Some(row)),
                None => dbq::alert_by_key(c, &key),
            },
            Err(_) => dbq::alert_by_key(c, &key),
        })
        .await
        .map_err(|e| store_problem(&e))?
    } else {
        let state = api.engine.read();
        let store = &state.analysis.store;
        id.parse::<u64>()
            .ok()
            .and_then(|n| store.get(n))
            .or_else(|| store.by_key(id))
            .cloned()
    };
    found.ok_or_else(|| Problem::not_found(format!("no alert {id:?}")))
}

/// `GET /api/v2/alerts/{id}`: by row id, or by alert key (the latest row of that key).
#[utoipa::path(get, path = "/api/v2/alerts/{id}", tag = "alerts", params(("id" = String, Path, description = "Row id, or an alert key (the latest row of that key)")), responses((status = 200, description = "The alert with drill-down links", body = AlertDetail)))]
pub async fn detail(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, Problem> {
    let row = find(&api, &id).await?;
    Ok(Json(AlertDetail {
        links: links(&row),
        alert: row,
    }))
}

/// The answer of an acknowledgement.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Acknowledged {
    /// Alerts that were not acknowledged and now are.
    pub acknowledged: u64,
}

/// The answer of a deletion.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// Alerts deleted.
    pub deleted: u64,
}

fn write_state(api: &ApiState) -> std::sync::RwLockWriteGuard<'_, crate::state::State> {
    api.engine
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn change(db: &Arc<Db>, ack: bool, target: Target) -> Result<u64, Problem> {
    if ack {
        db.acknowledge(target).await
    } else {
        db.delete(target).await
    }
    .map_err(|e| store_problem(&e))
}

/// The filter of an acknowledge or delete request: some filter, or `all=true`.
fn mutation_filter(q: &AlertQuery, route: &str) -> Result<AlertFilter, Problem> {
    AlertQuery::reject(
        route,
        &[
            ("sort", q.sort.is_some()),
            ("offset", q.offset.is_some()),
            ("limit", q.limit.is_some()),
            ("bucket", q.bucket.is_some()),
        ],
    )?;
    let filter = alert_filter(q)?;
    let all = bool_param("all", q.all.as_deref())?.unwrap_or(false);
    if filter.is_empty() && !all {
        return Err(Problem::bad_request(
            "no filter given: add filters, or `all=true` to act on every alert",
        ));
    }
    if !filter.is_empty() && all {
        return Err(Problem::bad_request(
            "query parameter `all` cannot be combined with filters",
        ));
    }
    Ok(filter)
}

/// `POST /api/v2/alerts/acknowledge?<filters>`: acknowledges every alert matching.
#[utoipa::path(post, path = "/api/v2/alerts/acknowledge", tag = "alerts", params(AlertQuery), responses((status = 200, description = "How many alerts were acknowledged", body = Acknowledged)))]
pub async fn acknowledge_where(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<Acknowledged>, Problem> {
    let filter = mutation_filter(&q, "/api/v2/alerts/acknowledge")?;
    let in_memory = write_state(&api).analysis.store.acknowledge_where(&filter) as u64;
    let n = match api.engine.db.clone() {
        Some(db) => change(&db, true, Target::Filter(filter)).await?,
        None => in_memory,
    };
    tracing::info!(acknowledged = n, "alerts acknowledged");
    Ok(Json(Acknowledged { acknowledged: n }))
}

/// `DELETE /api/v2/alerts?<filters>`: deletes every alert matching.
#[utoipa::path(delete, path = "/api/v2/alerts", tag = "alerts", params(AlertQuery), responses((status = 200, description = "How many alerts were deleted", body = Deleted)))]
pub async fn delete_where(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<Deleted>, Problem> {
    let filter = mutation_filter(&q, "DELETE /api/v2/alerts")?;
    let in_memory = write_state(&api).analysis.store.remove_where(&filter) as u64;
    let n = match api.engine.db.clone() {
        Some(db) => change(&db, false, Target::Filter(filter)).await?,
        None => in_memory,
    };
    tracing::info!(deleted = n, "alerts deleted");
    Ok(Json(Deleted { deleted: n }))
}

/// `POST /api/v2/alerts/{id}/acknowledge`: the alert, acknowledged.
#[utoipa::path(post, path = "/api/v2/alerts/{id}/acknowledge", tag = "alerts", params(("id" = String, Path, description = "Row id, or an alert key")), responses((status = 200, description = "The alert, acknowledged", body = AlertDetail)))]
pub async fn acknowledge_one(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, Problem> {
    let mut row = find(&api, &id).await?;
    write_state(&api).analysis.store.acknowledge(row.id);
    if let Some(db) = api.engine.db.clone() {
        change(&db, true, Target::Id(row.id)).await?;
    }
    row.acknowledged = true;
    Ok(Json(AlertDetail {
        links: links(&row),
        alert: row,
    }))
}

/// `DELETE /api/v2/alerts/{id}`: 204, or 404.
#[utoipa::path(delete, path = "/api/v2/alerts/{id}", tag = "alerts", params(("id" = String, Path, description = "Row id, or an alert key")), responses((status = 204, description = "Deleted")))]
pub async fn delete_one(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let row = find(&api, &id).await?;
    write_state(&api).analysis.store.remove(row.id);
    if let Some(db) = api.engine.db.clone() {
        change(&db, false, Target::Id(row.id)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A host's score and every contribution to it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreBreakdown {
    /// Address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// VLAN id.
    pub vlan: u32,
    /// Flow time of the reading, ns.
    pub at_ns: u64,
    /// The live score (decays included).
    pub score: ScoreValues,
    /// The score once pending decays are over (= the sum of `contributions`).
    pub settled: u64,
    /// Points ever added to the host over the run.
    pub accumulated: u64,
    /// Every contribution, most points first: live ones, then leaving ones (flow ended, alert
    /// released: `leaving_since_ns` set, `points` = what is left while the score decays).
    /// Their points plus `omitted_points` sum to `score.total`.
    pub contributions: Vec<Contribution>,
    /// Points not itemised (the per-host lists are bounded).
    pub omitted_points: u64,
}

/// Query parameter of the host sub-resources.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HostSubQuery {
    /// VLAN id (default 0).
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub vlan: Option<String>,
    /// For `timeseries`: one of `score_as_client`, `score_as_server`, `active_flows_as_client`,
    /// `active_flows_as_server`.
    pub metric: Option<String>,
}

fn host_key(ip: &str, vlan: Option<&str>) -> Result<HostKey, Problem> {
    let ip: IpAddr = parse("ip", Some(ip), "an IPv4 or IPv6 address")?
        .ok_or_else(|| Problem::bad_request("missing address"))?;
    let vlan: u32 = parse("vlan", vlan, "a VLAN id")?.unwrap_or(0);
    Ok(HostKey { ip, vlan })
}

/// `GET /api/v2/hosts/{ip}/score`.
#[utoipa::path(get, path = "/api/v2/hosts/{ip}/score", tag = "hosts", params(("ip" = String, Path, description = "IPv4 or IPv6 address", example = "192.168.1.212"), HostSubQuery), responses((status = 200, description = "The host's score and every contribution to it", body = ScoreBreakdown)))]
pub async fn host_score(
    State(api): State<ApiState>,
    Path(ip): Path<String>,
    ApiQuery(q): ApiQuery<HostSubQuery>,
) -> Result<Json<ScoreBreakdown>, Problem> {
    if q.metric.is_some() {
        return Err(Problem::bad_request(
            "query parameter `metric` is for /timeseries",
        ));
    }
    let key = host_key(&ip, q.vlan.as_deref())?;
    let state = api.engine.read();
    let now = state.analysis.now_ns;
    let hs = state.analysis.scores.host(&key);
    if hs.is_none() && state.hosts.get(&key).is_none() {
        return Err(Problem::not_found(format!(
            "no host {} on VLAN {} is known",
            key.ip, key.vlan
        )));
    }
    let (mut contributions, omitted_points) = hs.map(|h| h.breakdown(now)).unwrap_or_default();
    contributions.sort_by(|a, b| {
        b.points
            .cmp(&a.points)
            .then_with(|| a.alert_type.cmp(&b.alert_type))
    });
    Ok(Json(ScoreBreakdown {
        ip: key.ip,
        vlan: key.vlan,
        at_ns: now,
        score: state.analysis.scores.values(&key, now),
        settled: hs.map_or(0, |h| {
            h.gauges
                .client
                .iter()
                .chain(&h.gauges.server)
                .map(crate::score::Gauge::target)
                .sum()
        }),
        accumulated: hs.map_or(0, |h| h.accumulated),
        omitted_points,
        contributions,
    }))
}

/// A host's series.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Timeseries {
    /// The metric.
    pub metric: String,
    /// Samples, oldest first, with the DES forecast and band.
    pub samples: Vec<SeriesSample>,
}

/// `GET /api/v2/hosts/{ip}/timeseries?metric=`.
#[utoipa::path(get, path = "/api/v2/hosts/{ip}/timeseries", tag = "hosts", params(("ip" = String, Path, description = "IPv4 or IPv6 address", example = "192.168.1.212"), HostSubQuery), responses((status = 200, description = "One bounded per-minute series of the host with its DES forecast and band", body = Timeseries)))]
pub async fn host_timeseries(
    State(api): State<ApiState>,
    Path(ip): Path<String>,
    ApiQuery(q): ApiQuery<HostSubQuery>,
) -> Result<Json<Timeseries>, Problem> {
    let key = host_key(&ip, q.vlan.as_deref())?;
    let metric = q.metric.unwrap_or_else(|| HOST_METRICS[0].to_owned());
    let state = api.engine.read();
    let samples = state.analysis.series(&key, &metric).ok_or_else(|| {
        Problem::bad_request(format!(
            "query parameter `metric`: unknown metric {metric:?}, expected one of {}",
            HOST_METRICS.join(", ")
        ))
    })?;
    Ok(Json(Timeseries { metric, samples }))
}
