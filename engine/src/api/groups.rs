//! `GET /api/v2/namespaces` and `GET /api/v2/workloads`: hosts rolled up by their Kubernetes
//! namespace or workload (from `nw-directory`), with traffic and score summed.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort};
use crate::directory::{Group, GroupBy, rollup};

/// Query parameters of both routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// `score`, `bytes`, `hosts`, `name`; `-` prefix for descending (default `-score`).
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupSort {
    Score,
    Bytes,
    Hosts,
    Name,
}

const SORT_KEYS: &[(&str, GroupSort)] = &[
    ("score", GroupSort::Score),
    ("bytes", GroupSort::Bytes),
    ("hosts", GroupSort::Hosts),
    ("name", GroupSort::Name),
];

fn groups(api: &ApiState, q: &GroupQuery, by: GroupBy) -> Result<Json<Page<Group>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        SORT_KEYS,
        Sort {
            key: GroupSort::Score,
            descending: true,
        },
    )?;
    let mut items = {
        let state = api.engine.read();
        let dir = crate::directory::read(&api.engine.directory);
        rollup(&state, &dir, by)
    };
    if let Some(ns) = &q.namespace {
        items.retain(|g| &g.namespace == ns);
    }
    items.sort_by(|a, b| {
        let o = match sort.key {
            GroupSort::Score => sort.order(&a.score, &b.score),
            GroupSort::Bytes => sort.order(
                &(a.bytes_sent + a.bytes_rcvd),
                &(b.bytes_sent + b.bytes_rcvd),
            ),
            GroupSort::Hosts => sort.order(&a.hosts, &b.hosts),
            GroupSort::Name => sort.order(&a.name, &b.name),
        };
        o.then_with(|| a.name.cmp(&b.name))
    });
    Ok(Json(paging.page(items, |g| g)))
}

/// `GET /api/v2/namespaces`.
#[utoipa::path(get, path = "/api/v2/namespaces", tag = "groups", params(GroupQuery), responses((status = 200, description = "A page of namespaces with their hosts' traffic and score", body = Page<Group>)))]
pub async fn namespaces(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> Result<Json<Page<Group>>, Problem> {
    groups(&api, &q, GroupBy::Namespace)
}

/// `GET /api/v2/workloads`.
#[utoipa::path(get, path = "/api/v2/workloads", tag = "groups", params(GroupQuery), responses((status = 200, description = "A page of workloads with their hosts' traffic and score", body = Page<Group>)))]
pub async fn workloads(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<GroupQuery>,
) -> Result<Json<Page<Group>>, Problem> {
    groups(&api, &q, GroupBy::Workload)
}
