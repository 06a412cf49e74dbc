//! `GET /api/v2/devices`, `GET /api/v2/devices/{ip}` and `PUT /api/v2/devices/{ip}/type`
//! (write scope: the auth layer requires it for every non-GET method).
//!
//! Views of the device table joined with the directory; the only change is the manual
//! override, kept in memory and, with `--data DIR`, in `DIR/device-types.json` ([`super::persist`]).

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::{DeviceType, DeviceView};
use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, parse};

/// The device routes, merged into the API router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/devices", get(list))
        .route("/api/v2/devices/{ip}", get(detail))
        .route("/api/v2/devices/{ip}/type", put(set_type))
}

/// Query parameters of `GET /api/v2/devices`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Only devices of this type (`printer`, `kubernetes_pod`…).
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    /// Only guesses at least this confident (0..=1).
    pub min_confidence: Option<String>,
    /// Items skipped.
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    pub limit: Option<String>,
}

/// Body of `PUT /api/v2/devices/{ip}/type`: `{"type": "printer"}`, or `{"type": null}` to go
/// back to the guess.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetType {
    /// The type, or null.
    #[serde(rename = "type")]
    pub device_type: Option<String>,
}

/// Answer of the PUT: the device as it now stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TypeSet {
    /// The device.
    #[serde(flatten)]
    pub device: DeviceView,
}

fn parse_type(s: &str) -> Result<DeviceType, Problem> {
    DeviceType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = DeviceType::ALL.iter().map(|t| t.as_str()).collect();
        Problem::bad_request(format!(
            "unknown device type {:?}; expected one of {}",
            super::bounded_text(s, 64),
            names.join(", ")
        ))
    })
}

fn parse_ip(ip: &str) -> Result<IpAddr, Problem> {
    parse("ip", Some(ip), "an IPv4 or IPv6 address")?
        .ok_or_else(|| Problem::bad_request("missing address"))
}

/// Every device view, strongest confidence first, then by address.
pub fn all_views(api: &ApiState) -> Vec<DeviceView> {
    let state = api.engine.read();
    let dir = crate::directory::read(&api.engine.directory);
    let mut v: Vec<DeviceView> = state
        .devices
        .addresses()
        .filter_map(|ip| state.devices.view(ip, dir.get(ip)))
        .collect();
    v.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then_with(|| a.ip.cmp(&b.ip))
    });
    v
}

/// `GET /api/v2/devices`.
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Result<Json<Page<DeviceView>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let wanted = q.device_type.as_deref().map(parse_type).transpose()?;
    let min: Option<f32> = parse(
        "min_confidence",
        q.min_confidence.as_deref(),
        "a number from 0 to 1",
    )?;
    if min.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
        return Err(Problem::bad_request(
            "query parameter `min_confidence`: expected a number from 0 to 1",
        ));
    }
    let hits: Vec<DeviceView> = all_views(&api)
        .into_iter()
        .filter(|d| wanted.is_none_or(|t| d.device_type == t))
        .filter(|d| min.is_none_or(|m| d.confidence >= m))
        .collect();
    Ok(Json(paging.page(hits, |d| d)))
}

/// `GET /api/v2/devices/{ip}`.
pub async fn detail(
    State(api): State<ApiState>,
    Path(ip): Path<String>,
) -> Result<Json<DeviceView>, Problem> {
    let ip = parse_ip(&ip)?;
    let state = api.engine.read();
    let dir = crate::directory::read(&api.engine.directory);
    state
        .devices
        .view(ip, dir.get(ip))
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no local device {ip} is known")))
}

/// `PUT /api/v2/devices/{ip}/type`.
pub async fn set_type(
    State(api): State<ApiState>,
    Path(ip): Path<String>,
    body: Bytes,
) -> Result<Json<TypeSet>, Problem> {
    let ip = parse_ip(&ip)?;
    let req: SetType = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request(format!(
            "body: {}; expected {{\"type\": \"printer\"}} or {{\"type\": null}}",
            super::bounded_text(&e.to_string(), 200)
        ))
    })?;
    let t = req.device_type.as_deref().map(parse_type).transpose()?;
    let mut state = api
        .engine
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if state.devices.view(ip, None).is_none() {
        return Err(Problem::not_found(format!("no local device {ip} is known")));
    }
    if !state.devices.set_override(ip, t) {
        return Err(Problem::bad_request("too many manual device types"));
    }
    // Under the lock, so two changes cannot reach the file out of order (a small file).
    if let Err(e) = state.devices.save_overrides() {
        tracing::warn!(error = %e, "cannot keep the manual device types on disk");
    }
    tracing::info!(%ip, device_type = t.map_or("(guess)", DeviceType::as_str), "device type set by hand");
    drop(state);
    let state = api.engine.read();
    let dir = crate::directory::read(&api.engine.directory);
    let device = state
        .devices
        .view(ip, dir.get(ip))
        .ok_or_else(|| Problem::internal("device vanished"))?;
    Ok(Json(TypeSet { device }))
}
