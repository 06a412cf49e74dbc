//! The OpenAPI 3.1 document of the REST API v2, generated from the code with `utoipa`:
//! `GET /api/v2/openapi.json`.
//!
//! Each handler carries a `#[utoipa::path]` annotation (method, path, parameters from its
//! `IntoParams` query struct, the 200 body from its `ToSchema` response type); [`ApiDoc`] lists
//! them. What every route shares is added once by [`Conventions`]: the bearer security scheme
//! and the scope each operation needs (from its method and path, as `auth::authorize` decides),
//! and the `application/problem+json` error responses. `engine/tests/openapi.rs` walks the live
//! router and fails when a route is missing from the document or a documented route is not
//! served (docs/api.md: "Documenting a new route").
//!
//! Every response and request body is described field by field: derived `ToSchema` on the
//! routes' own types, and by hand here for types that carry no derive (the protobuf
//! `FlowRecord` as [`FlowRecordSchema`], the stored alert) and for the service map's answer,
//! which is one of two shapes ([`ServiceMapAnswer`]).

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::{alerts, flows, groups, health, hosts, points, problem, resources};

/// Routes served without a token (`auth::authorize`); `/metrics` only with `--open-metrics`.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz"];

/// Stands for `netwarden_api::flow::FlowRecord` (a protobuf message) in the document: its
/// main fields with their JSON types (the message may carry more; see the proto file).
pub struct FlowRecordSchema;

impl utoipa::PartialSchema for FlowRecordSchema {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        let u64 = || serde_json::json!({"type": "integer", "minimum": 0});
        let text = || serde_json::json!({"type": "string"});
        let direction = serde_json::json!({
            "type": "object",
            "required": ["packets", "bytes"],
            "properties": {
                "packets": u64(), "bytes": u64(), "goodput_bytes": u64(), "tcp_flags": u64(),
                "retransmissions": u64(), "out_of_order": u64(), "lost": u64(),
                "zero_window": u64(), "fragments": u64()
            }
        });
        let schema = serde_json::json!({
            "type": "object",
            "description": "A flow record: the protobuf message `FlowRecord` of \
                api/proto/netwarden.proto in JSON (addresses as text, enums as lower-case \
                names, times in ns since the epoch, bytes on the wire).",
            "required": ["flow_id", "client_ip", "server_ip", "client_port", "server_port",
                "l4_proto", "first_seen_ns", "last_seen_ns", "update"],
            "properties": {
                "flow_id": u64(),
                "observation_point": {"type": ["object", "null"], "properties": {
                    "sensor": text(), "interface": text(), "exporter": text(), "domain_id": u64()
                }},
                "source": text(), "sampling_rate": u64(), "vlan": u64(), "ip_version": u64(),
                "client_ip": text(), "server_ip": text(),
                "client_port": u64(), "server_port": u64(), "l4_proto": u64(), "tunnel": text(),
                "first_seen_ns": u64(), "last_seen_ns": u64(),
                "update": text(), "end_reason": text(),
                "c2s": {"anyOf": [direction.clone(), {"type": "null"}]},
                "s2c": {"anyOf": [direction, {"type": "null"}]},
                "rtt_client_ns": u64(), "rtt_server_ns": u64(),
                "l7": {"type": ["object", "null"]},
                "risk_bits": {"type": "array", "items": u64()},
                "risk_details": {"type": "array"}
            }
        });
        serde_json::from_value(schema).map_or_else(
            |_| RefOr::T(utoipa::openapi::schema::Schema::default()),
            RefOr::T,
        )
    }
}

impl utoipa::ToSchema for FlowRecordSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("FlowRecord")
    }
}
impl utoipa::PartialSchema for crate::alerts::StoredAlert {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        let u64 = || serde_json::json!({"type": "integer", "minimum": 0});
        let text = || serde_json::json!({"type": "string"});
        let flag = || serde_json::json!({"type": "boolean"});
        let number = || serde_json::json!({"type": "number"});
        let schema = serde_json::json!({
            "type": "object",
            "description": "An alert as stored (`netwarden_api::alert::Alert` with its row id and \
                acknowledgement); `flow` is the triggering flow record of a flow alert, `anomaly` \
                the band a behaviour alert left.",
            "required": ["id", "acknowledged", "key", "type", "entity", "entity_value", "severity",
                "score", "client_score", "server_score", "roles", "observation_point",
                "first_seen_ns", "last_seen_ns", "count", "state", "message"],
            "properties": {
                "id": u64(), "acknowledged": flag(), "key": text(), "type": text(),
                "entity": {"type": "string", "enum": ["flow", "host", "interface", "network",
                    "observation_point", "service_map"]},
                "entity_value": text(),
                "severity": {"type": "string", "enum": ["none", "info", "notice", "warning",
                    "error", "critical", "emergency"]},
                "score": u64(), "client_score": u64(), "server_score": u64(),
                "roles": {"type": "object", "properties": {
                    "client_attacker": flag(), "client_victim": flag(),
                    "server_attacker": flag(), "server_victim": flag()
                }},
                "observation_point": text(),
                "first_seen_ns": u64(), "last_seen_ns": u64(), "count": u64(),
                "state": {"type": "string", "enum": ["past", "engaged", "released"]},
                "message": text(),
                "flow": {"$ref": "#/components/schemas/FlowRecord"},
                "anomaly": {"type": "object", "properties": {
                    "value": number(), "expected": number(), "lower": number(), "upper": number()
                }}
            }
        });
        serde_json::from_value(schema).map_or_else(
            |_| RefOr::T(utoipa::openapi::schema::Schema::default()),
            RefOr::T,
        )
    }
}

impl utoipa::ToSchema for crate::alerts::StoredAlert {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("StoredAlert")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema as _;
        schemas.push(("FlowRecord".to_owned(), FlowRecordSchema::schema()));
    }
}

/// The answer of `GET /api/v2/servicemap`: `oneOf` a `MapView` (`format=json`, the default)
/// and a `GraphView` (`format=graph`). `GraphView` is closed (`additionalProperties: false`), so
/// an answer matches exactly one of them.
pub struct ServiceMapAnswer;

impl utoipa::PartialSchema for ServiceMapAnswer {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        RefOr::T(utoipa::openapi::schema::Schema::OneOf(
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(Ref::from_schema_name("MapView"))
                .item(Ref::from_schema_name("GraphView"))
                .description(Some(
                    "`MapView` with `format=json` (the default), `GraphView` with `format=graph`.",
                ))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for ServiceMapAnswer {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ServiceMapAnswer")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>) {
        use crate::servicemap::api::{GraphView, MapView};
        use utoipa::PartialSchema as _;
        schemas.push(("MapView".to_owned(), MapView::schema()));
        MapView::schemas(schemas);
        schemas.push(("GraphView".to_owned(), GraphView::schema()));
        GraphView::schemas(schemas);
    }
}

/// The document: every documented operation and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Netwarden REST API",
        description = "The engine's REST API v2 (docs/api.md). Every request needs \
            `Authorization: Bearer <token>` once the engine has a token file, except /healthz \
            and /readyz (and /metrics with --open-metrics). Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0"),
    ),
    paths(
        alerts::list,
        alerts::delete_where,
        alerts::summary,
        alerts::acknowledge_where,
        alerts::detail,
        alerts::delete_one,
        alerts::acknowledge_one,
        alerts::host_score,
        alerts::host_timeseries,
        flows::list,
        flows::history,
        hosts::list,
        hosts::detail,
        groups::namespaces,
        groups::workloads,
        points::list,
        points::detail,
        resources::interfaces,
        resources::checks,
        resources::exclusions,
        resources::endpoints,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        others::tokens,
        others::servicemap,
        others::servicemap_policy,
        others::servicemap_edge,
        others::servicemap_edge_patch,
        others::periodicity,
        others::devices,
        others::device,
        others::device_type,
    ),
    components(schemas(
        problem::Problem,
        crate::servicemap::api::MapView,
        crate::servicemap::api::GraphView,
        crate::servicemap::api::EdgeDetail,
        crate::servicemap::api::PatchBody,
        crate::periodicity::api::PeriodicityView,
        crate::devices::DeviceView,
        crate::devices::api::SetType,
        crate::devices::api::TypeSet,
        crate::auth::TokenView,
    )),
    modifiers(&Conventions),
    tags(
        (name = "alerts", description = "Alerts: list, summary, detail, acknowledge, delete"),
        (name = "flows", description = "Active flows and the history of ended flows"),
        (name = "hosts", description = "Hosts, their score breakdown and time series"),
        (name = "groups", description = "Hosts rolled up by Kubernetes namespace and workload"),
        (name = "observation points", description = "Where flows are observed, and interfaces"),
        (name = "config", description = "Checks, exclusions and notification endpoints in effect"),
        (name = "service map", description = "The learned service map and periodicity"),
        (name = "devices", description = "Device types of local hosts"),
        (name = "meta", description = "Health, readiness, metrics, tokens, this document"),
    )
)]
pub struct ApiDoc;

/// What every operation shares: security and problem responses.
struct Conventions;

/// Error responses every operation may give, with when.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "A query parameter or path segment is invalid, or unknown",
    ),
    ("404", "No such resource"),
    ("405", "The route does not take this method"),
    ("408", "The request took longer than 30 s"),
    ("413", "The request body is over 64 KiB"),
    ("503", "The persistent store (--data) did not answer"),
];

/// Error responses of the operations that need a token.
const AUTH_ERRORS: &[(&str, &str)] = &[
    (
        "401",
        "No token, a malformed, unknown or expired token (WWW-Authenticate: Bearer)",
    ),
    ("403", "The token lacks the scope this operation needs"),
    ("429", "The token's rate limit is spent (Retry-After)"),
];

/// The scope `method` on `path` needs, as `auth::authorize` decides.
fn scope(method: &str, path: &str) -> &'static str {
    if path.starts_with("/api/v2/tokens") {
        "admin"
    } else if method == "get" || method == "head" {
        "read"
    } else {
        "write"
    }
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("nw_<id>_<secret>")
                    .description(Some(
                        "An API token (`netwarden-engine token create`). Scopes: read (GET), \
                         write (also POST, PUT, PATCH, DELETE), admin (also /api/v2/tokens); \
                         each includes the ones before it.",
                    ))
                    .build(),
            ),
        );
        env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
        for (path, item) in &mut doc.paths.paths {
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    conventions(path, method, op);
                }
            }
        }
    }
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                problem::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

/// A unique operation id from the method and path: `get_alerts_by_id`, `get_healthz`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for seg in path.trim_start_matches("/api/v2").split('/') {
        if seg.is_empty() {
            continue;
        }
        id.push('_');
        if let Some(param) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            id.push_str("by_");
            id.push_str(param.trim_start_matches('*'));
        } else {
            id.extend(
                seg.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            );
        }
    }
    id
}

fn conventions(path: &str, method: &str, op: &mut Operation) {
    op.operation_id = Some(operation_id(method, path));
    let public = PUBLIC_PATHS.contains(&path);
    let scope = scope(method, path);
    op.security = Some(if public {
        vec![SecurityRequirement::default()]
    } else if path == "/metrics" {
        // Public with --open-metrics, else a read token.
        vec![
            SecurityRequirement::new("bearer", [scope]),
            SecurityRequirement::default(),
        ]
    } else {
        vec![SecurityRequirement::new("bearer", [scope])]
    });
    let errors = ERRORS
        .iter()
        .chain(if public { &[][..] } else { AUTH_ERRORS });
    for (status, description) in errors {
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| problem_response(description));
    }
}

/// The document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as JSON (built once).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(document()).unwrap_or_else(|e| {
            // Serialising typed data to a String cannot fail; keep a valid document anyway.
            tracing::error!(error = %e, "cannot serialise the OpenAPI document");
            String::from("{}")
        })
    })
}

/// `GET /api/v2/openapi.json`: this API's OpenAPI 3.1 document (read scope).
#[utoipa::path(
    get,
    path = "/api/v2/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Documentation of routes whose handlers live in other modules (service map, periodicity,
/// devices, tokens): only the annotations, the handlers are theirs.
#[allow(dead_code, clippy::unused_async)]
mod others {

    use crate::auth::TokenView;
    use crate::devices::DeviceView;
    use crate::devices::api::{SetType, TypeSet};
    use crate::periodicity::api::PeriodicityView;
    use crate::servicemap::api::{EdgeDetail, EdgeView, PatchBody};

    /// Lists the tokens in force: id, name, scopes, created, expires (never a secret).
    #[utoipa::path(get, path = "/api/v2/tokens", tag = "meta",
        responses((status = 200, description = "The tokens in force", body = Vec<TokenView>)))]
    pub async fn tokens() {}

    /// The learned service map: nodes and edges (docs/servicemap.md).
    #[utoipa::path(get, path = "/api/v2/servicemap", tag = "service map",
        params(
            ("namespace" = Option<String>, Query, description = "Edges with a node in this namespace"),
            ("host" = Option<String>, Query, description = "Edges with this address or node id"),
            ("status" = Option<String>, Query, description = "`allowed`, `denied` or `undecided`"),
            ("protocol" = Option<String>, Query, description = "L4 name or number, or L7 name"),
            ("from" = Option<String>, Query, description = "Edges last seen at or after (RFC 3339 or epoch seconds)"),
            ("to" = Option<String>, Query, description = "Edges first seen at or before (RFC 3339 or epoch seconds)"),
            ("limit" = Option<u32>, Query, description = "Most edges (default 1000, at most 10000)"),
            ("format" = Option<String>, Query, description = "`json` (default) or `graph`"),
        ),
        responses((status = 200, description = "Nodes and edges: a `MapView` (`format=json`, the default) or a `GraphView` (`format=graph`)", body = super::ServiceMapAnswer)))]
    pub async fn servicemap() {}

    /// The learned map as a `ServicePolicy` (YAML).
    #[utoipa::path(get, path = "/api/v2/servicemap/policy.yaml", tag = "service map",
        params(
            ("default_action" = Option<String>, Query, description = "`deny` or `allow`"),
            ("learning_period" = Option<String>, Query, description = "A duration (`24h`)"),
        ),
        responses((status = 200, description = "ServicePolicy YAML", content_type = "application/yaml", body = serde_json::Value)))]
    pub async fn servicemap_policy() {}

    /// One edge, its nodes, its periodicity and the flows behind it.
    #[utoipa::path(get, path = "/api/v2/servicemap/edges/{id}", tag = "service map",
        params(("id" = String, Path, description = "Edge id")),
        responses((status = 200, description = "The edge", body = EdgeDetail)))]
    pub async fn servicemap_edge() {}

    /// Sets an edge's status: `{"status": "allowed"|"denied"|"undecided"}`.
    #[utoipa::path(patch, path = "/api/v2/servicemap/edges/{id}", tag = "service map",
        params(("id" = String, Path, description = "Edge id")),
        request_body(content = PatchBody, content_type = "application/json"),
        responses((status = 200, description = "The edge as changed", body = EdgeView)))]
    pub async fn servicemap_edge_patch() {}

    /// Periodic flows between hosts (beacons) and recent period changes.
    #[utoipa::path(get, path = "/api/v2/periodicity", tag = "service map",
        params(
            ("host" = Option<String>, Query, description = "Entries with this client or server address"),
            ("periodic" = Option<String>, Query, description = "`true` for periodic entries only"),
            ("limit" = Option<u32>, Query, description = "Most entries"),
        ),
        responses((status = 200, description = "Periodicity entries", body = PeriodicityView)))]
    pub async fn periodicity() {}

    /// Device types of local hosts (docs/devices.md).
    #[utoipa::path(get, path = "/api/v2/devices", tag = "devices",
        params(
            ("type" = Option<String>, Query, description = "Only this device type"),
            ("min_confidence" = Option<String>, Query, description = "Lowest confidence"),
            ("offset" = Option<u64>, Query, maximum = 9_223_372_036_854_775_807_u64, description = "Items skipped"),
            ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Items per page"),
        ),
        responses((status = 200, description = "A page of devices", body = crate::api::query::Page<DeviceView>)))]
    pub async fn devices() {}

    /// One local host's device type with its evidence.
    #[utoipa::path(get, path = "/api/v2/devices/{ip}", tag = "devices",
        params(("ip" = String, Path, description = "IPv4 or IPv6 address", example = "192.168.1.212")),
        responses((status = 200, description = "The device", body = DeviceView)))]
    pub async fn device() {}

    /// Sets (or clears) a host's device type by hand.
    #[utoipa::path(put, path = "/api/v2/devices/{ip}/type", tag = "devices",
        params(("ip" = String, Path, description = "IPv4 or IPv6 address", example = "192.168.1.212")),
        request_body(content = SetType, content_type = "application/json"),
        responses((status = 200, description = "The device as changed", body = TypeSet)))]
    pub async fn device_type() {}
}
