//! `GET /api/v2/alerts`, `/api/v2/alerts/summary`, `/api/v2/alerts/{id}`,
//! `GET /api/v2/hosts/{ip}/score` and `GET /api/v2/hosts/{ip}/timeseries`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use netwarden_api::alert::{AlertState, Entity, Severity};
use serde::{Deserialize, Serialize};

use crate::alerts::time::parse_time;
use crate::alerts::{HOST_METRICS, SeriesSample, StoredAlert};
use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort, parse};
use crate::hosts::HostKey;
use crate::score::{Contribution, ScoreValues};

/// Query parameters of `GET /api/v2/alerts` (and of the summary, without paging).
#[derive(Debug, Default, Deserialize)]
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
    /// Entity: `flow`, `host`, `interface`, `network`, `observation_point`.
    pub entity: Option<String>,
    /// A host address involved (flow client or server, or the host of a host alert).
    pub host: Option<String>,
    /// With `host`: `attacker`, `victim` or `any` (default).
    pub role: Option<String>,
    /// `engaged`, `released`, `past`.
    pub state: Option<String>,
    /// Observation point name.
    pub observation_point: Option<String>,
    /// `time`, `score`, `count`; `-` prefix for descending (default `-time`).
    pub sort: Option<String>,
    /// Items skipped.
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    pub limit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Any,
    Attacker,
    Victim,
}

struct Filter {
    from: Option<u64>,
    to: Option<u64>,
    severity: Option<Severity>,
    types: Vec<String>,
    entity: Option<Entity>,
    host: Option<IpAddr>,
    role: Role,
    state: Option<AlertState>,
    point: Option<String>,
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

fn time_param(name: &str, v: Option<&str>) -> Result<Option<u64>, Problem> {
    v.map(|v| {
        parse_time(v.trim()).ok_or_else(|| {
            Problem::bad_request(format!(
                "query parameter `{name}`: invalid value {v:?}, expected an RFC 3339 time or seconds since the epoch"
            ))
        })
    })
    .transpose()
}

impl Filter {
    fn parse(q: &AlertQuery) -> Result<Self, Problem> {
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
            None | Some("any" | "either") => Role::Any,
            Some("attacker") => Role::Attacker,
            Some("victim") => Role::Victim,
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "query parameter `role`: invalid value {other:?}, expected attacker, victim or any"
                )));
            }
        };
        let host: Option<IpAddr> = parse("host", q.host.as_deref(), "an IPv4 or IPv6 address")?;
        if role != Role::Any && host.is_none() {
            return Err(Problem::bad_request("query parameter `role` needs `host`"));
        }
        Ok(Self {
            from,
            to,
            severity: enum_param(
                "severity",
                q.severity.as_deref(),
                "info, notice, warning, error, critical, emergency",
            )?,
            types: q
                .alert_type
                .as_deref()
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            entity: enum_param(
                "entity",
                q.entity.as_deref(),
                "flow, host, interface, network, observation_point, service_map",
            )?,
            host,
            role,
            state: enum_param("state", q.state.as_deref(), "engaged, released, past")?,
            point: q.observation_point.clone().filter(|p| !p.is_empty()),
        })
    }

    fn matches(&self, row: &StoredAlert) -> bool {
        let a = &row.alert;
        self.from.is_none_or(|f| a.last_seen_ns >= f)
            && self.to.is_none_or(|t| a.first_seen_ns <= t)
            && self.severity.is_none_or(|s| a.severity >= s)
            && (self.types.is_empty() || self.types.contains(&a.alert_type))
            && self.entity.is_none_or(|e| a.entity == e)
            && self.state.is_none_or(|s| a.state == s)
            && self.point.as_ref().is_none_or(|p| {
                a.observation_point == *p || a.observation_point.starts_with(&format!("{p}/"))
            })
            && self
                .host
                .is_none_or(|h| host_role_matches(row, h, self.role))
    }
}

fn host_role_matches(row: &StoredAlert, host: IpAddr, role: Role) -> bool {
    let a = &row.alert;
    let r = a.roles;
    let (is_client, is_server) = match (&a.flow, a.entity) {
        (Some(f), _) => (f.client_addr() == Some(host), f.server_addr() == Some(host)),
        (None, Entity::Host) => (a.entity_value == host.to_string(), false),
        _ => (false, false),
    };
    match role {
        Role::Any => is_client || is_server,
        Role::Attacker => (is_client && r.client_attacker) || (is_server && r.server_attacker),
        Role::Victim => (is_client && r.client_victim) || (is_server && r.server_victim),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AlertSort {
    Time,
    Score,
    Count,
}

const SORT_KEYS: &[(&str, AlertSort)] = &[
    ("time", AlertSort::Time),
    ("score", AlertSort::Score),
    ("count", AlertSort::Count),
];

/// `GET /api/v2/alerts`.
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<Page<StoredAlert>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        SORT_KEYS,
        Sort {
            key: AlertSort::Time,
            descending: true,
        },
    )?;
    let filter = Filter::parse(&q)?;
    let state = api.engine.read();
    let mut hits: Vec<&StoredAlert> = state
        .analysis
        .store
        .iter()
        .filter(|r| filter.matches(r))
        .collect();
    let value = |r: &StoredAlert| match sort.key {
        AlertSort::Time => r.alert.last_seen_ns,
        AlertSort::Score => u64::from(r.alert.score),
        AlertSort::Count => r.alert.count,
    };
    hits.sort_by(|a, b| {
        sort.order(&value(a), &value(b))
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(Json(paging.page(hits, Clone::clone)))
}

/// Counts of alerts by type, by severity, and by severity per time bucket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertSummary {
    /// Alerts matching the filters.
    pub total: usize,
    /// Host alerts engaged now.
    pub engaged: usize,
    /// Per type: count of rows and sum of repeats.
    pub by_type: BTreeMap<String, usize>,
    /// Per severity.
    pub by_severity: BTreeMap<String, usize>,
    /// Per entity.
    pub by_entity: BTreeMap<String, usize>,
    /// Bucket width, seconds.
    pub bucket_secs: u64,
    /// Per time bucket (start, ns) and severity.
    pub over_time: Vec<SummaryBucket>,
}

/// One time bucket of the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SummaryBucket {
    /// Bucket start, ns since the epoch.
    pub start_ns: u64,
    /// Alerts per severity.
    pub by_severity: BTreeMap<String, usize>,
}

/// Query parameters of `GET /api/v2/alerts/summary`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// See [`AlertQuery`].
    pub from: Option<String>,
    /// See [`AlertQuery`].
    pub to: Option<String>,
    /// See [`AlertQuery`].
    pub severity: Option<String>,
    /// See [`AlertQuery`].
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    /// See [`AlertQuery`].
    pub entity: Option<String>,
    /// See [`AlertQuery`].
    pub host: Option<String>,
    /// See [`AlertQuery`].
    pub role: Option<String>,
    /// See [`AlertQuery`].
    pub state: Option<String>,
    /// See [`AlertQuery`].
    pub observation_point: Option<String>,
    /// Bucket width in seconds (1..=86400, default 300).
    pub bucket: Option<String>,
}

fn label<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /api/v2/alerts/summary`.
pub async fn summary(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> Result<Json<AlertSummary>, Problem> {
    let bucket_secs: u64 =
        parse("bucket", q.bucket.as_deref(), "seconds from 1 to 86400")?.unwrap_or(300);
    if !(1..=86_400).contains(&bucket_secs) {
        return Err(Problem::bad_request(format!(
            "query parameter `bucket`: {bucket_secs} is not between 1 and 86400"
        )));
    }
    let filter = Filter::parse(&AlertQuery {
        from: q.from,
        to: q.to,
        severity: q.severity,
        alert_type: q.alert_type,
        entity: q.entity,
        host: q.host,
        role: q.role,
        state: q.state,
        observation_point: q.observation_point,
        ..AlertQuery::default()
    })?;
    let state = api.engine.read();
    let mut s = AlertSummary {
        bucket_secs,
        ..AlertSummary::default()
    };
    let width = bucket_secs * 1_000_000_000;
    let mut buckets: BTreeMap<u64, BTreeMap<String, usize>> = BTreeMap::new();
    for r in state.analysis.store.iter().filter(|r| filter.matches(r)) {
        let a = &r.alert;
        s.total += 1;
        s.engaged += usize::from(a.state == AlertState::Engaged);
        *s.by_type.entry(a.alert_type.clone()).or_default() += 1;
        *s.by_severity.entry(label(&a.severity)).or_default() += 1;
        *s.by_entity.entry(a.entity.as_str().to_owned()).or_default() += 1;
        *buckets
            .entry(a.first_seen_ns / width * width)
            .or_default()
            .entry(label(&a.severity))
            .or_default() += 1;
    }
    s.over_time = buckets
        .into_iter()
        .map(|(start_ns, by_severity)| SummaryBucket {
            start_ns,
            by_severity,
        })
        .collect();
    Ok(Json(s))
}

/// An alert with its drill-down links.
#[derive(Clone, Debug, Serialize)]
pub struct AlertDetail {
    /// The alert (the triggering flow is in `flow` for flow alerts).
    #[serde(flatten)]
    pub alert: StoredAlert,
    /// Links to related data.
    pub links: AlertLinks,
}

/// Drill-down links.
#[derive(Clone, Debug, Serialize)]
pub struct AlertLinks {
    /// The host's flows in the alert's time window (the client's for flow alerts).
    pub host_flows: String,
    /// The host's score breakdown.
    pub host_score: String,
    /// Other alerts of the same host.
    pub host_alerts: String,
}

/// `GET /api/v2/alerts/{id}`: by row id, or by alert key (the latest row of that key).
pub async fn detail(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, Problem> {
    let state = api.engine.read();
    let store = &state.analysis.store;
    let row = id
        .parse::<u64>()
        .ok()
        .and_then(|n| store.get(n))
        .or_else(|| store.by_key(&id))
        .ok_or_else(|| Problem::not_found(format!("no alert {id:?}")))?;
    let a = &row.alert;
    let host = a
        .flow
        .as_ref()
        .and_then(|f| f.client_addr())
        .map_or_else(|| a.entity_value.clone(), |ip| ip.to_string());
    let (from, to) = (
        a.first_seen_ns / 1_000_000_000,
        a.last_seen_ns.div_ceil(1_000_000_000),
    );
    Ok(Json(AlertDetail {
        links: AlertLinks {
            host_flows: format!("/api/v2/flows?host={host}&from={from}&to={to}"),
            host_score: format!("/api/v2/hosts/{host}/score"),
            host_alerts: format!("/api/v2/alerts?host={host}"),
        },
        alert: row.clone(),
    }))
}

/// A host's score and every contribution to it.
#[derive(Clone, Debug, Serialize)]
pub struct ScoreBreakdown {
    /// Address.
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSubQuery {
    /// VLAN id (default 0).
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
#[derive(Clone, Debug, Serialize)]
pub struct Timeseries {
    /// The metric.
    pub metric: String,
    /// Samples, oldest first, with the DES forecast and band.
    pub samples: Vec<SeriesSample>,
}

/// `GET /api/v2/hosts/{ip}/timeseries?metric=`.
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
