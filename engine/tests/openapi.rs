//! The OpenAPI document against the live router: every route the engine serves (the router
//! itself is walked, no hand-kept list) is in `/api/v2/openapi.json` with each of its methods,
//! and every documented operation is served. UI pages (the routes of `ui::routes`) are left
//! out of the document by rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use netwarden_api::bus::{Bus, MemoryBus};
use netwarden_engine::api::{ApiState, openapi};
use netwarden_engine::auth::Auth;
use netwarden_engine::metrics::EngineMetrics;
use netwarden_engine::state::StateConfig;
use netwarden_engine::{Engine, ui};
use serde_json::Value;
use tower::ServiceExt as _;

/// Methods a route may take (HEAD comes with GET).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn api_state() -> ApiState {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    ApiState {
        engine: Engine::new(&StateConfig::default(), Arc::new(EngineMetrics::default())),
        bus,
        registry: Arc::new(prometheus_client::registry::Registry::default()),
    }
}

/// The paths a router holds, read from its `Debug` output (axum prints each route's path;
/// it has no other way to list them). Fallback routes are axum's own and left out.
fn router_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let mut paths = BTreeSet::new();
    let mut rest = debug.as_str();
    while let Some(i) = rest.find("RouteId(") {
        rest = &rest[i + "RouteId(".len()..];
        let Some(close) = rest.find("): \"") else {
            continue;
        };
        let after = &rest[close + 4..];
        let Some(end) = after.find('"') else { break };
        let path = &after[..end];
        if !path.contains("__private__axum") {
            paths.insert(path.to_owned());
        }
        rest = &after[end..];
    }
    paths
}

/// axum's `{*rest}` is OpenAPI's `{rest}`.
fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// A concrete URI for `path`: every parameter filled with a value that routes.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "p/q".to_owned()
            } else if seg.starts_with('{') {
                "x".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the router serves `method` on `uri`: anything but 405, and no fallback 404.
async fn served(router: &Router, method: &Method, uri: &str) -> bool {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .method(method.clone())
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return false;
    }
    if status == StatusCode::NOT_FOUND {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        return !text.contains("no route for");
    }
    true
}

/// (OpenAPI path, lower-case method) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete", "patch"] {
            if item.get(m).is_some() {
                ops.insert((path.clone(), m.to_owned()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_live_route_is_documented_and_every_documented_route_is_served() {
    let state = api_state();
    let app = netwarden_engine::app(
        state.clone(),
        Arc::new(Auth::open()),
        ui::UiHandle::default(),
    );
    let ui_paths = router_paths(&ui::routes(
        state,
        Arc::new(Auth::open()),
        ui::UiHandle::default(),
    ));
    assert!(
        ui_paths.iter().all(|p| !p.starts_with("/api/")),
        "a UI route under /api: {ui_paths:?}"
    );
    let live_paths = router_paths(&app);
    // The walk itself must see the router: a few routes every build has.
    for p in [
        "/api/v2/alerts",
        "/api/v2/hosts/{ip}",
        "/healthz",
        "/ui/alerts",
    ] {
        assert!(live_paths.contains(p), "{p} not found in {live_paths:?}");
    }

    let mut live = BTreeSet::new();
    for path in live_paths.difference(&ui_paths) {
        let uri = concrete(path);
        for method in &METHODS {
            if served(&app, method, &uri).await {
                live.insert((openapi_path(path), method.as_str().to_ascii_lowercase()));
            }
        }
    }
    assert!(live.len() >= 30, "too few live operations found: {live:?}");

    let doc = serde_json::to_value(openapi::document()).unwrap();
    let documented = documented(&doc);
    let missing: Vec<_> = live.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "live routes missing from the OpenAPI document (docs/api.md, \"Documenting a new \
         route\"): {missing:?}"
    );
    let unserved: Vec<_> = documented.difference(&live).collect();
    assert!(
        unserved.is_empty(),
        "documented operations the server does not answer: {unserved:?}"
    );
}

#[tokio::test]
async fn the_document_is_served_and_follows_the_conventions() {
    let app = netwarden_engine::app(api_state(), Arc::new(Auth::open()), ui::UiHandle::default());
    let response = app
        .oneshot(
            Request::builder()
                .uri("/api/v2/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "content type"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc, serde_json::to_value(openapi::document()).unwrap());
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security"));
            let public = openapi::PUBLIC_PATHS.contains(&path.as_str());
            if public {
                assert_eq!(security, &vec![serde_json::json!({})], "{method} {path}");
            } else {
                let scopes = security[0]["bearer"].as_array().unwrap();
                let want = if path.starts_with("/api/v2/tokens") {
                    "admin"
                } else if method == "get" {
                    "read"
                } else {
                    "write"
                };
                assert_eq!(scopes, &vec![Value::from(want)], "{method} {path}");
                assert_eq!(
                    op["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path}"
                );
            }
            let ok = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|s| s.starts_with('2'));
            assert!(ok, "{method} {path}: no 2xx response");
            assert_eq!(
                op["responses"]["400"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}"
            );
        }
    }
    // Response types are described field by field (FlowRecord by hand, the rest derived).
    let schemas = &doc["components"]["schemas"];
    let flow = &schemas["FlowRecord"];
    assert!(
        flow["required"]
            .as_array()
            .unwrap()
            .contains(&Value::from("flow_id")),
        "{flow}"
    );
    assert_eq!(
        flow["properties"]["c2s"]["anyOf"][0]["properties"]["bytes"]["type"],
        "integer"
    );
    assert_eq!(
        schemas["StoredAlert"]["properties"]["flow"]["$ref"],
        "#/components/schemas/FlowRecord"
    );
    assert!(schemas["StoredAlert"]["required"].as_array().unwrap().len() > 10);
    assert_eq!(
        schemas["SeriesSample"]["properties"]["value"]["type"],
        "number"
    );
    assert_eq!(schemas["HostView"]["properties"]["ip"]["type"], "string");
    // Query parameters are documented from the handlers' query types.
    let flows = &doc["paths"]["/api/v2/flows"]["get"]["parameters"];
    let names: BTreeSet<&str> = flows
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in [
        "host", "port", "protocol", "from", "to", "sort", "offset", "limit",
    ] {
        assert!(names.contains(n), "flows lacks `{n}`: {names:?}");
    }
}
