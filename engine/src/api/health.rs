//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::ApiState;
use crate::api::problem::Problem;

/// Media type of the Prometheus/OpenMetrics text exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The reply of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "The process answers", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The reply of `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Bus connected and ingest subscribed.
    pub ready: bool,
    /// The bus kind (`nats`, `memory`).
    #[schema(value_type = String)]
    pub bus: &'static str,
    /// Whether the bus is connected.
    pub bus_connected: bool,
    /// Whether ingest holds its subscription.
    pub ingest_running: bool,
    /// Why not ready, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /readyz`: 200 when the bus is connected and ingest runs, 503 with the reason otherwise.
#[utoipa::path(get, path = "/readyz", tag = "meta", responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready, with the reason", body = Readiness)))]
pub async fn readyz(State(api): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let bus_connected = api.bus.is_connected();
    let ingest_running = api.engine.status.is_running();
    let reason = match (bus_connected, ingest_running) {
        (true, true) => None,
        (false, _) => Some(format!("the {} bus is not connected", api.bus.kind())),
        (true, false) => Some("ingest is not subscribed to the flow subjects".to_owned()),
    };
    let ready = reason.is_none();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            bus: api.bus.kind(),
            bus_connected,
            ingest_running,
            reason,
        }),
    )
}

/// `GET /metrics`: the registry in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, description = "Every metric in the OpenMetrics text format", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(api): State<ApiState>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &api.registry) {
        return Problem::internal(format!("cannot encode metrics: {e}")).into_response();
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    response
}
