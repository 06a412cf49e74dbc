//! `GET /api/v2/interfaces`, `GET /api/v2/checks` and `GET /api/v2/config/exclusions`: what
//! the engine observes through, what it checks (with defaults and the configuration in
//! force), and which alerts it drops.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::api::alerts::bounded;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort, parse};

/// Query parameters of `GET /api/v2/interfaces`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InterfaceQuery {
    /// Only this sensor.
    pub sensor: Option<String>,
    /// `capture` (a NIC or pcap the sensor reads) or `exporter` (a NetFlow/IPFIX/sFlow device).
    pub kind: Option<String>,
    /// `name`, `bytes`, `packets`, `flows`, `last_seen`; `-` prefix for descending (default
    /// `-bytes`).
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One interface: a capture interface of a sensor, or a flow exporter, with the observation
/// points it carries and their traffic summed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InterfaceView {
    /// The sensor that reads or collects it.
    pub sensor: String,
    /// The interface (`eth0`, a pcap's file name) or the exporter's address.
    pub name: String,
    /// `capture` or `exporter`.
    pub kind: String,
    /// Names of its observation points (one per exporter observation domain).
    pub observation_points: Vec<String>,
    /// Bytes of its flows.
    pub bytes: u64,
    /// Packets of its flows.
    pub packets: u64,
    /// Its flows.
    pub flows: u64,
    /// First seen, ns since the Unix epoch (0 when unknown).
    pub first_seen_ns: u64,
    /// Last seen, ns since the Unix epoch.
    pub last_seen_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InterfaceSort {
    Name,
    Bytes,
    Packets,
    Flows,
    LastSeen,
}

const INTERFACE_SORT: &[(&str, InterfaceSort)] = &[
    ("name", InterfaceSort::Name),
    ("bytes", InterfaceSort::Bytes),
    ("packets", InterfaceSort::Packets),
    ("flows", InterfaceSort::Flows),
    ("last_seen", InterfaceSort::LastSeen),
];

/// `GET /api/v2/interfaces`.
#[utoipa::path(get, path = "/api/v2/interfaces", tag = "observation points", params(InterfaceQuery), responses((status = 200, description = "A page of capture interfaces and exporters (in the sharded mode gathered from every replica, see docs/deploy.md)", body = crate::api::cluster::InterfacePage)))]
pub async fn interfaces(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<InterfaceQuery>,
) -> Result<Json<Page<InterfaceView>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        INTERFACE_SORT,
        Sort {
            key: InterfaceSort::Bytes,
            descending: true,
        },
    )?;
    let sensor = bounded("sensor", q.sensor.as_deref())?;
    let kind = match q.kind.as_deref().map(str::trim) {
        None => None,
        Some(k @ ("capture" | "exporter")) => Some(k),
        Some(k) => {
            return Err(Problem::bad_request(format!(
                "query parameter `kind`: invalid value {k:?}, expected capture or exporter"
            )));
        }
    };
    let mut by_key: BTreeMap<(String, String, bool), InterfaceView> = BTreeMap::new();
    {
        let state = api.engine.read();
        for p in state.points.sorted() {
            let exporter = !p.exporter.is_empty();
            let name = if exporter { &p.exporter } else { &p.interface };
            let v = by_key
                .entry((p.sensor.clone(), name.clone(), exporter))
                .or_insert_with(|| InterfaceView {
                    sensor: p.sensor.clone(),
                    name: name.clone(),
                    kind: if exporter { "exporter" } else { "capture" }.to_owned(),
                    observation_points: Vec::new(),
                    bytes: 0,
                    packets: 0,
                    flows: 0,
                    first_seen_ns: u64::MAX,
                    last_seen_ns: 0,
                });
            v.observation_points.push(p.name.clone());
            v.bytes = v.bytes.saturating_add(p.bytes);
            v.packets = v.packets.saturating_add(p.packets);
            v.flows = v.flows.saturating_add(p.flows);
            v.first_seen_ns = v.first_seen_ns.min(p.first_seen_ns);
            v.last_seen_ns = v.last_seen_ns.max(p.last_seen_ns);
        }
    }
    let mut items: Vec<InterfaceView> = by_key
        .into_values()
        .filter(|v| sensor.is_none_or(|s| v.sensor == s))
        .filter(|v| kind.is_none_or(|k| v.kind == k))
        .map(|mut v| {
            if v.first_seen_ns == u64::MAX {
                v.first_seen_ns = 0;
            }
            v
        })
        .collect();
    items.sort_by(|a, b| {
        let o = match sort.key {
            InterfaceSort::Name => sort.order(&a.name, &b.name),
            InterfaceSort::Bytes => sort.order(&a.bytes, &b.bytes),
            InterfaceSort::Packets => sort.order(&a.packets, &b.packets),
            InterfaceSort::Flows => sort.order(&a.flows, &b.flows),
            InterfaceSort::LastSeen => sort.order(&a.last_seen_ns, &b.last_seen_ns),
        };
        o.then_with(|| (&a.sensor, &a.name).cmp(&(&b.sensor, &b.name)))
    });
    Ok(Json(paging.page(items, |v| v)))
}

/// Query parameters of `GET /api/v2/checks`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// `flow` or `host` checks only.
    pub entity: Option<String>,
    /// `check` (the engine's own) or `risk` (a catalogue flow risk, nDPI's and ours).
    pub source: Option<String>,
    /// `true` or `false`: only checks that run, or only those that do not.
    pub enabled: Option<String>,
    /// Case-insensitive substring of the alert type or name.
    pub q: Option<String>,
    /// `type`, `score`, `id`; `-` prefix for descending (default `type`).
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One check: its defaults and whether it runs with the configuration in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// The alert type it raises (`blacklisted_flow`, a risk key such as `known_proto_on_non_std_port`).
    pub alert_type: String,
    /// Human name (the risk's name, else the alert type).
    pub name: String,
    /// `flow` or `host`.
    pub entity: String,
    /// `check` or `risk`.
    pub source: String,
    /// ntopng's alert id, when ntopng has one.
    pub ntopng_id: Option<u16>,
    /// Default score.
    pub score: u16,
    /// Share of the score that goes to the client, percent.
    pub client_pct: u8,
    /// `security` or `network` (what the score counts towards).
    pub score_kind: String,
    /// Default severity (risks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Whether it runs without being enabled.
    pub default_enabled: bool,
    /// Whether it runs now (`checks.enable` / `checks.disable`).
    pub enabled: bool,
}

/// `GET /api/v2/checks`: a page of checks and the check configuration in force.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ChecksView {
    /// Checks matching the filters, over all pages.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// This page.
    pub items: Vec<CheckView>,
    /// The `checks:` configuration in force (docs/checks.md): local networks, enable/disable,
    /// thresholds, allowed servers, blocklist files.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

fn label<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn bool_param(name: &str, v: Option<&str>) -> Result<Option<bool>, Problem> {
    parse(name, v, "true or false")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckSort {
    Type,
    Score,
    Id,
}

const CHECK_SORT: &[(&str, CheckSort)] = &[
    ("type", CheckSort::Type),
    ("score", CheckSort::Score),
    ("id", CheckSort::Id),
];

/// `GET /api/v2/checks`.
#[utoipa::path(get, path = "/api/v2/checks", tag = "config", params(CheckQuery), responses((status = 200, description = "Every flow and host check with its defaults, whether it runs, and the check configuration in force", body = ChecksView)))]
pub async fn checks(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> Result<Json<ChecksView>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        CHECK_SORT,
        Sort {
            key: CheckSort::Type,
            descending: false,
        },
    )?;
    let one_of = |name: &str, v: Option<&str>, allowed: [&'static str; 2]| {
        v.map(str::trim)
            .map(|v| {
                allowed.into_iter().find(|a| *a == v).ok_or_else(|| {
                    Problem::bad_request(format!(
                        "query parameter `{name}`: invalid value {v:?}, expected {} or {}",
                        allowed[0], allowed[1]
                    ))
                })
            })
            .transpose()
    };
    let entity = one_of("entity", q.entity.as_deref(), ["flow", "host"])?;
    let source = one_of("source", q.source.as_deref(), ["check", "risk"])?;
    let enabled = bool_param("enabled", q.enabled.as_deref())?;
    let needle = bounded("q", q.q.as_deref())?.map(str::to_ascii_lowercase);

    let state = api.engine.read();
    let config = &state.analysis.config.checks;
    let own = crate::checks::CHECKS.iter().map(|c| CheckView {
        alert_type: c.alert_type.to_owned(),
        name: c.alert_type.to_owned(),
        entity: if c.host { "host" } else { "flow" }.to_owned(),
        source: "check".to_owned(),
        ntopng_id: Some(c.ntopng_id),
        score: c.score,
        client_pct: c.client_pct,
        score_kind: label(&c.kind),
        severity: None,
        default_enabled: c.default_enabled,
        enabled: config.enabled(c.alert_type),
    });
    let risks = netwarden_api::risk::CATALOGUE.iter().map(|r| CheckView {
        alert_type: r.key.to_owned(),
        name: r.name.to_owned(),
        entity: "flow".to_owned(),
        source: "risk".to_owned(),
        ntopng_id: r.ntopng_alert_id,
        score: r.score(),
        client_pct: r.client_pct,
        score_kind: label(&r.category),
        severity: Some(label(&r.severity)),
        default_enabled: true,
        enabled: config.enabled(r.key),
    });
    let mut items: Vec<CheckView> = own
        .chain(risks)
        .filter(|c| entity.is_none_or(|e| c.entity == e))
        .filter(|c| source.is_none_or(|s| c.source == s))
        .filter(|c| enabled.is_none_or(|e| c.enabled == e))
        .filter(|c| {
            needle.as_ref().is_none_or(|n| {
                c.alert_type.to_ascii_lowercase().contains(n)
                    || c.name.to_ascii_lowercase().contains(n)
            })
        })
        .collect();
    items.sort_by(|a, b| {
        let o = match sort.key {
            CheckSort::Type => sort.order(&a.alert_type, &b.alert_type),
            CheckSort::Score => sort.order(&a.score, &b.score),
            CheckSort::Id => sort.order(&a.ntopng_id, &b.ntopng_id),
        };
        o.then_with(|| a.alert_type.cmp(&b.alert_type))
            .then_with(|| a.source.cmp(&b.source))
    });
    let config = serde_json::to_value(config)
        .map_err(|e| Problem::internal(format!("cannot encode the check configuration: {e}")))?;
    let page = paging.page(items, |c| c);
    Ok(Json(ChecksView {
        total: page.total,
        offset: page.offset,
        limit: page.limit,
        items: page.items,
        config,
    }))
}

/// Query parameters of `GET /api/v2/config/exclusions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExclusionQuery {
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One exclusion in force.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExclusionView {
    /// Its name (`namespace/name` of the `AlertExclusion`, or the file's document name).
    pub name: String,
    /// The spec as in force (the `AlertExclusion` CRD shape: hosts, pairs, domains,
    /// certificateIssuers, scope, alertTypes, expiresAt, reason).
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

/// `GET /api/v2/config/exclusions`.
#[utoipa::path(get, path = "/api/v2/config/exclusions", tag = "config", params(ExclusionQuery), responses((status = 200, description = "A page of the alert exclusions in force, by name", body = Page<ExclusionView>)))]
pub async fn exclusions(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<ExclusionQuery>,
) -> Result<Json<Page<ExclusionView>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let mut rules: Vec<(String, serde_json::Value)> = {
        let state = api.engine.read();
        state
            .analysis
            .exclusions
            .rules
            .iter()
            .map(|(name, spec)| {
                serde_json::to_value(spec)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Problem::internal(format!("cannot encode exclusion {name}: {e}")))
            })
            .collect::<Result<_, _>>()?
    };
    rules.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(
        paging.page(rules, |(name, spec)| ExclusionView { name, spec }),
    ))
}

/// Query parameters of `GET /api/v2/config/endpoints`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// One notification endpoint in force. Never holds the secret (the webhook URL, token or
/// password): only where it is read from and whether it can be read.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `namespace/name` of the `NotificationEndpoint` (or its file document).
    pub name: String,
    /// `slack`, `webhook`, `teams`, `discord`, `telegram`, `email`, `syslog`.
    #[serde(rename = "type")]
    pub endpoint_type: String,
    /// Whether the secret named by `secret_key_ref` can be read now.
    pub secret_set: bool,
    /// Where the secret is read: the Secret's name and key (not the value).
    #[schema(value_type = Object)]
    pub secret_key_ref: serde_json::Value,
    /// Filters (minimum severity, alert types, entities, namespaces, attacker/victim only).
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    /// Rate limit, when set.
    #[schema(value_type = Option<Object>)]
    pub rate_limit: serde_json::Value,
    /// Batching, when set.
    #[schema(value_type = Option<Object>)]
    pub batching: serde_json::Value,
}

/// `GET /api/v2/config/endpoints`.
#[utoipa::path(get, path = "/api/v2/config/endpoints", tag = "config", params(EndpointQuery), responses((status = 200, description = "A page of the notification endpoints in force, by name (secrets never included)", body = Page<EndpointView>)))]
pub async fn endpoints(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<EndpointQuery>,
) -> Result<Json<Page<EndpointView>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let in_force = match api.engine.notifier.get() {
        Some(n) => n.in_force().await,
        None => Vec::new(),
    };
    let encode = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| Problem::internal(format!("cannot encode an endpoint: {e}")))
    };
    let mut items = Vec::with_capacity(in_force.len());
    for (name, spec, secret_set) in in_force {
        items.push(EndpointView {
            name,
            endpoint_type: label(&spec.endpoint_type),
            secret_set,
            secret_key_ref: encode(serde_json::to_value(&spec.secret_key_ref))?,
            filters: encode(serde_json::to_value(&spec.filters))?,
            rate_limit: encode(serde_json::to_value(spec.rate_limit))?,
            batching: encode(serde_json::to_value(spec.batching))?,
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(paging.page(items, |e| e)))
}
