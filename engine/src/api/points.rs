//! `GET /api/v2/observation-points`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging};
use crate::hosts::PointTotals;

/// Query parameters of `GET /api/v2/observation-points`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointQuery {
    /// Items skipped.
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    pub limit: Option<String>,
}

/// The handler: every observation point by name, with its totals.
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
