//! `GET /api/v2/observation-points` and `GET /api/v2/observation-points/{name}`.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging};
use crate::hosts::{Counters, PointKey, PointTotals};
use crate::state::l7_name;
use crate::store::{ProtocolTotals, ProtocolTotalsRow};

/// Query parameters of `GET /api/v2/observation-points`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PointQuery {
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// The handler: every observation point by name, with its totals.
#[utoipa::path(get, path = "/api/v2/observation-points", tag = "observation points", params(PointQuery), responses((status = 200, description = "A page of observation points with their totals (in the sharded mode gathered from every replica, see docs/deploy.md)", body = crate::api::cluster::PointPage)))]
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<PointQuery>,
) -> Result<Json<Page<PointTotals>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let state = api.engine.read();
    Ok(Json(paging.page(state.points.sorted(), |p| {
        let mut p = p.clone();
        if p.first_seen_ns == u64::MAX {
            p.first_seen_ns = 0;
        }
        p
    })))
}

/// Hosts listed in an observation point's drill-down.
pub const TOP_POINT_HOSTS: usize = 20;

/// One host of an observation point's drill-down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PointHost {
    /// Address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// Bytes of its flows seen at this point (both directions).
    pub bytes: u64,
    /// Packets of those flows.
    pub packets: u64,
    /// Those flows.
    pub flows: u64,
}

/// `GET /api/v2/observation-points/{name}`: a point's totals, and its top hosts and
/// protocols over the flows the engine still keeps (active flows and the bounded history).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PointDetail {
    /// The point's totals since it was first seen.
    pub point: PointTotals,
    /// Flows of this point the drill-down was computed from.
    pub flows_kept: u64,
    /// Hosts with the most bytes at this point.
    pub top_hosts: Vec<PointHost>,
    /// L4 protocols at this point, most bytes first.
    pub l4_protocols: Vec<ProtocolTotalsRow>,
    /// L7 protocols at this point, most bytes first.
    pub l7_protocols: Vec<ProtocolTotalsRow>,
}

/// The handler of `GET /api/v2/observation-points/{name}`: `name` is the point's name as
/// listed (`sensor/interface` or `sensor/exporter/domain`; slashes allowed).
#[utoipa::path(get, path = "/api/v2/observation-points/{name}", tag = "observation points", params(("name" = String, Path, description = "The point's name as listed (`sensor/interface`; slashes allowed)")), responses((status = 200, description = "The point's totals, top hosts and protocols", body = PointDetail)))]
pub async fn detail(
    State(api): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PointDetail>, Problem> {
    let state = api.engine.read();
    let Some((key, point)) = state
        .points
        .matching(&name)
        .into_iter()
        .filter_map(|k| state.points.get(k).map(|p| (k, p)))
        .find(|(_, p)| p.name == name)
    else {
        return Err(Problem::not_found(format!(
            "no observation point {name} is known"
        )));
    };
    let mut point = point.clone();
    if point.first_seen_ns == u64::MAX {
        point.first_seen_ns = 0;
    }
    let mut hosts: HashMap<IpAddr, PointHost> = HashMap::new();
    let mut protocols = ProtocolTotals::default();
    let mut flows_kept = 0u64;
    for r in state
        .flows
        .active()
        .chain(state.flows.ended())
        .filter(|r| PointKey::of(r.observation_point.as_ref()) == key)
    {
        flows_kept += 1;
        let counters = Counters::of(r);
        for ip in [r.client_addr(), r.server_addr()].into_iter().flatten() {
            let h = hosts.entry(ip).or_insert(PointHost {
                ip,
                bytes: 0,
                packets: 0,
                flows: 0,
            });
            h.bytes += counters.bytes();
            h.packets += counters.packets();
            h.flows += 1;
        }
        protocols.add_l4(u8::try_from(r.l4_proto).unwrap_or(u8::MAX), counters, true);
        protocols.add_l7(&l7_name(r), counters, true);
    }
    let mut top_hosts: Vec<PointHost> = hosts.into_values().collect();
    top_hosts.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.ip.cmp(&b.ip)));
    top_hosts.truncate(TOP_POINT_HOSTS);
    Ok(Json(PointDetail {
        point,
        flows_kept,
        top_hosts,
        l4_protocols: protocols.l4_rows(),
        l7_protocols: protocols.l7_rows(),
    }))
}
