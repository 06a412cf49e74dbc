//! The REST API v2 (DESIGN.md section 7), health, readiness and metrics.
//!
//! Views of the state: each handler takes the read lock (or reads the persistent store),
//! filters, sorts, pages and serialises typed data (no JSON is built from strings); the only
//! changes are acknowledging and deleting alerts. Errors are RFC 9457 problem details.
//! Owns nothing but the HTTP shell: what the numbers mean is decided in `state`, `hosts` and
//! `store`.

pub mod alerts;
pub mod cluster;
pub mod flows;
pub mod groups;
pub mod health;
pub mod hosts;
pub mod openapi;
pub mod points;
pub mod problem;
pub mod query;
pub mod resources;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use netwarden_api::bus::Bus;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::Engine;
use crate::metrics::HttpLabels;
use problem::Problem;

/// Largest request body accepted (no route takes a body).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// State, metrics and ingest status.
    pub engine: Engine,
    /// The bus, for readiness.
    pub bus: Arc<dyn Bus>,
    /// Every metric of the process, for `/metrics`.
    pub registry: Arc<Registry>,
}

/// The router with every route and layer.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/api/v2/alerts",
            get(alerts::list).delete(alerts::delete_where),
        )
        .route("/api/v2/alerts/summary", get(alerts::summary))
        .route(
            "/api/v2/alerts/acknowledge",
            post(alerts::acknowledge_where),
        )
        .route(
            "/api/v2/alerts/{id}",
            get(alerts::detail).delete(alerts::delete_one),
        )
        .route(
            "/api/v2/alerts/{id}/acknowledge",
            post(alerts::acknowledge_one),
        )
        .route("/api/v2/flows", get(flows::list))
        .route("/api/v2/flows/history", get(flows::history))
        .route("/api/v2/hosts", get(hosts::list))
        .route("/api/v2/hosts/{ip}", get(hosts::detail))
        .route("/api/v2/hosts/{ip}/score", get(alerts::host_score))
        .route(
            "/api/v2/hosts/{ip}/timeseries",
            get(alerts::host_timeseries),
        )
        .route("/api/v2/namespaces", get(groups::namespaces))
        .route("/api/v2/workloads", get(groups::workloads))
        .route("/api/v2/observation-points", get(points::list))
        .route("/api/v2/observation-points/{*name}", get(points::detail))
        .route("/api/v2/interfaces", get(resources::interfaces))
        .route("/api/v2/checks", get(resources::checks))
        .route("/api/v2/config/exclusions", get(resources::exclusions))
        .route("/api/v2/config/endpoints", get(resources::endpoints))
        .route("/api/v2/openapi.json", get(openapi::openapi_json))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(crate::devices::api::routes())
        .merge(crate::servicemap::api::routes())
        .merge(crate::periodicity::api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cluster::route,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // A 503 from /readyz while NATS is down is expected, not an error worth a log line per
        // probe: failures are counted in `http_requests` and logged at debug.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` turns true (or its sender is dropped).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(crate::Error::Serve)
}

async fn not_found(req: Request) -> Problem {
    Problem::not_found(format!("no route for {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::method_not_allowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}

/// Counts every request by matched route, method and status.
async fn count_requests(State(api): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    api.engine
        .metrics
        .http_requests
        .get_or_create(&labels)
        .inc();
    response
}
