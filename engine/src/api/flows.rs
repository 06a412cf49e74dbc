//! `GET /api/v2/flows`: active flows and the in-memory ring of ended ones, filtered, sorted and
//! paged; `GET /api/v2/flows/history`: ended flows from the persistent store (drill-down).

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use netwarden_api::flow::{FlowRecord, proto};
use serde::Deserialize;

use crate::api::ApiState;
use crate::api::alerts::{bounded, store_problem, time_param};
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort, parse};
use crate::hosts::PointKey;
use crate::store::history::{self, HistoryFilter, HistorySortKey};

/// Query parameters of `GET /api/v2/flows`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlowQuery {
    /// Client or server address.
    pub host: Option<String>,
    /// Client or server port.
    #[param(value_type = Option<u16>)]
    pub port: Option<String>,
    /// L4 protocol: `tcp`, `udp`, `icmp`, ... or its number.
    pub protocol: Option<String>,
    /// Substring of the L7 (application or master) protocol, case-insensitive.
    pub l7: Option<String>,
    /// `active`, `ended` or `all` (default).
    pub state: Option<String>,
    /// VLAN id.
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub vlan: Option<String>,
    /// Observation point name (`sensor/interface`) or sensor name.
    pub observation_point: Option<String>,
    /// Flows last seen at or after this time (RFC 3339 or seconds since the epoch).
    pub from: Option<String>,
    /// Flows first seen at or before this time (RFC 3339 or seconds since the epoch).
    pub to: Option<String>,
    /// `bytes`, `packets`, `first_seen`, `last_seen`, `duration`; `-` prefix for descending.
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowSort {
    Bytes,
    Packets,
    FirstSeen,
    LastSeen,
    Duration,
}

const SORT_KEYS: &[(&str, FlowSort)] = &[
    ("bytes", FlowSort::Bytes),
    ("packets", FlowSort::Packets),
    ("first_seen", FlowSort::FirstSeen),
    ("last_seen", FlowSort::LastSeen),
    ("duration", FlowSort::Duration),
];

/// A parsed, validated flow filter.
struct Filter {
    host: Option<Vec<u8>>,
    port: Option<u32>,
    l4: Option<u8>,
    l7: Option<String>,
    vlan: Option<u32>,
    points: Option<Vec<PointKey>>,
    active: bool,
    ended: bool,
    from: Option<u64>,
    to: Option<u64>,
}

impl Filter {
    fn matches(&self, r: &FlowRecord) -> bool {
        self.host
            .as_ref()
            .is_none_or(|h| r.client_ip == *h || r.server_ip == *h)
            && self
                .port
                .is_none_or(|p| r.client_port == p || r.server_port == p)
            && self.l4.is_none_or(|p| r.l4_proto == u32::from(p))
            && self.from.is_none_or(|f| r.last_seen_ns >= f)
            && self.to.is_none_or(|t| r.first_seen_ns <= t)
            && self.vlan.is_none_or(|v| r.vlan == v)
            && self.l7.as_ref().is_none_or(|needle| {
                r.l7.as_ref().is_some_and(|l7| {
                    l7.app_protocol.to_ascii_lowercase().contains(needle)
                        || l7.master_protocol.to_ascii_lowercase().contains(needle)
                })
            })
            && self
                .points
                .as_ref()
                .is_none_or(|keys| keys.contains(&PointKey::of(r.observation_point.as_ref())))
    }
}

fn sort_value(key: FlowSort, r: &FlowRecord) -> u64 {
    match key {
        FlowSort::Bytes => r.total_bytes(),
        FlowSort::Packets => r.total_packets(),
        FlowSort::FirstSeen => r.first_seen_ns,
        FlowSort::LastSeen => r.last_seen_ns,
        FlowSort::Duration => r.last_seen_ns.saturating_sub(r.first_seen_ns),
    }
}

/// The handler.
#[utoipa::path(get, path = "/api/v2/flows", tag = "flows", params(FlowQuery), responses((status = 200, description = "A page of flow records (latest record of each active flow, and ended flows)", body = Page<crate::api::openapi::FlowRecordSchema>)))]
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<FlowQuery>,
) -> Result<Json<Page<FlowRecord>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        SORT_KEYS,
        Sort {
            key: FlowSort::Bytes,
            descending: true,
        },
    )?;
    let host: Option<IpAddr> = parse("host", q.host.as_deref(), "an IPv4 or IPv6 address")?;
    let port: Option<u16> = parse("port", q.port.as_deref(), "a port number (0-65535)")?;
    let vlan: Option<u32> = parse("vlan", q.vlan.as_deref(), "a VLAN id")?;
    let l4 = q
        .protocol
        .as_deref()
        .map(|p| {
            proto::from_name(p.trim()).ok_or_else(|| {
                Problem::bad_request(format!(
                    "query parameter `protocol`: invalid value {p:?}, expected tcp, udp, icmp, icmpv6, sctp, gre or a protocol number"
                ))
            })
        })
        .transpose()?;
    let (active, ended) = match q.state.as_deref().unwrap_or("all") {
        "all" => (true, true),
        "active" => (true, false),
        "ended" => (false, true),
        other => {
            return Err(Problem::bad_request(format!(
                "query parameter `state`: invalid value {other:?}, expected active, ended or all"
            )));
        }
    };
    let time = |name: &str, v: Option<&str>| {
        v.map(|v| {
            crate::alerts::time::parse_time(v.trim()).ok_or_else(|| {
                Problem::bad_request(format!(
                    "query parameter `{name}`: invalid value {v:?}, expected an RFC 3339 time or seconds since the epoch"
                ))
            })
        })
        .transpose()
    };
    let from = time("from", q.from.as_deref())?;
    let to = time("to", q.to.as_deref())?;
    let state = api.engine.read();
    let filter = Filter {
        from,
        to,
        host: host.map(netwarden_api::flow::ip_to_bytes),
        port: port.map(u32::from),
        l4,
        l7: q
            .l7
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty()),
        vlan,
        points: q
            .observation_point
            .as_deref()
            .map(|p| state.points.matching(p)),
        active,
        ended,
    };
    let active_iter = state.flows.active().filter(|_| filter.active);
    let ended_iter = state.flows.ended().filter(|_| filter.ended);
    let mut hits: Vec<&FlowRecord> = active_iter
        .chain(ended_iter)
        .filter(|r| filter.matches(r))
        .collect();
    hits.sort_by(|a, b| {
        sort.order(&sort_value(sort.key, a), &sort_value(sort.key, b))
            .then_with(|| a.first_seen_ns.cmp(&b.first_seen_ns))
            .then_with(|| a.flow_id.cmp(&b.flow_id))
    });
    Ok(Json(paging.page(hits, Clone::clone)))
}

/// Query parameters of `GET /api/v2/flows/history`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Client or server address.
    pub host: Option<String>,
    /// Client or server port.
    #[param(value_type = Option<u16>)]
    pub port: Option<String>,
    /// L4 protocol: `tcp`, `udp`, `icmp`, ... or its number.
    pub protocol: Option<String>,
    /// VLAN id.
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub vlan: Option<String>,
    /// Observation point name (`sensor/interface`) or sensor name.
    pub observation_point: Option<String>,
    /// Flows last seen at or after this time (RFC 3339 or seconds since the epoch).
    pub from: Option<String>,
    /// Flows first seen at or before this time.
    pub to: Option<String>,
    /// `last_seen`, `first_seen`, `bytes`, `packets`, `duration`; `-` for descending
    /// (default `-last_seen`).
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

const HISTORY_SORT_KEYS: &[(&str, HistorySortKey)] = &[
    ("last_seen", HistorySortKey::LastSeen),
    ("first_seen", HistorySortKey::FirstSeen),
    ("bytes", HistorySortKey::Bytes),
    ("packets", HistorySortKey::Packets),
    ("duration", HistorySortKey::Duration),
];

fn l4_param(v: Option<&str>) -> Result<Option<u8>, Problem> {
    v.map(|p| {
        proto::from_name(p.trim()).ok_or_else(|| {
            Problem::bad_request(format!(
                "query parameter `protocol`: invalid value {p:?}, expected tcp, udp, icmp, icmpv6, sctp, gre or a protocol number"
            ))
        })
    })
    .transpose()
}

/// The filter of a history query, validated.
pub fn history_filter(q: &HistoryQuery) -> Result<HistoryFilter, Problem> {
    let from = time_param("from", q.from.as_deref())?;
    let to = time_param("to", q.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(Problem::bad_request(
            "query parameters `from` and `to`: `from` is after `to`",
        ));
    }
    Ok(HistoryFilter {
        host: parse("host", q.host.as_deref(), "an IPv4 or IPv6 address")?,
        port: parse("port", q.port.as_deref(), "a port number (0-65535)")?,
        l4: l4_param(q.protocol.as_deref())?,
        vlan: parse("vlan", q.vlan.as_deref(), "a VLAN id")?,
        point: bounded("observation_point", q.observation_point.as_deref())?
            .map(str::to_owned)
            .filter(|p| !p.is_empty()),
        from,
        to,
    })
}

/// `GET /api/v2/flows/history`: ended flows from the persistent store (`--data`), else from
/// the in-memory history ring.
#[utoipa::path(get, path = "/api/v2/flows/history", tag = "flows", params(HistoryQuery), responses((status = 200, description = "A page of ended flows", body = Page<crate::api::openapi::FlowRecordSchema>)))]
pub async fn history(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<FlowRecord>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        HISTORY_SORT_KEYS,
        Sort {
            key: HistorySortKey::LastSeen,
            descending: true,
        },
    )?;
    let filter = history_filter(&q)?;
    if let Some(db) = api.engine.db.clone() {
        let (total, items) = db
            .read(move |c| {
                crate::store::db::query::history_page(
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
    let mut hits: Vec<&FlowRecord> = state.flows.ended().filter(|r| filter.matches(r)).collect();
    hits.sort_by(|a, b| {
        sort.order(
            &history::sort_value(sort.key, a),
            &history::sort_value(sort.key, b),
        )
        .then_with(|| a.first_seen_ns.cmp(&b.first_seen_ns))
    });
    Ok(Json(paging.page(hits, Clone::clone)))
}
