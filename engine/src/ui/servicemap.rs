//! The service map: the learned graph (Cytoscape.js, vendored) with edges coloured by status
//! and as thick as their traffic, filters (namespace, status, protocol), the edge table with
//! allow/deny actions (CSRF-checked posts to the service map's own `PATCH` handler), and the
//! export as `ServicePolicy` YAML.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::html;
use serde::Deserialize;

use super::layout::{self, bytes, count, enc, query, time};
use super::{SessionExt, Ui, problem_page};
use crate::api::query::ApiQuery;
use crate::servicemap::api::{ExportQuery, MapQuery};

/// Edges listed in the table (and drawn).
pub const MAX_EDGES: usize = 300;

/// Filters of the map.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MapFilters {
    /// Namespace of a node.
    pub namespace: String,
    /// allowed, denied, undecided.
    pub status: String,
    /// L4 or L7 name.
    pub protocol: String,
    /// Address or node id.
    pub host: String,
}

impl MapFilters {
    fn api(&self, graph: bool) -> MapQuery {
        let opt = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        MapQuery {
            namespace: opt(&self.namespace),
            status: opt(&self.status),
            protocol: opt(&self.protocol),
            host: opt(&self.host),
            limit: Some(MAX_EDGES.to_string()),
            format: graph.then(|| "graph".to_owned()),
            ..MapQuery::default()
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            ("namespace", &self.namespace),
            ("status", &self.status),
            ("protocol", &self.protocol),
            ("host", &self.host),
        ]
    }
}

/// `GET /ui/servicemap`.
pub async fn page(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Query(f): Query<MapFilters>,
) -> Response {
    let view = {
        let st = ui.api.engine.read();
        crate::servicemap::api::map_view(&st.servicemap, st.analysis.now_ns, &f.api(false))
    };
    let view = match view {
        Ok(v) => v,
        Err(p) => return problem_page(&p),
    };
    let q = query(&f.pairs());
    let body = html! {
        h1 { "Service map" }
        // Cytoscape adds a <style> element unless this id exists; the rule it would add is in
        // app.css (the CSP forbids inline style).
        span #__________cytoscape_stylesheet hidden {}
        script src=(super::assets::url("cytoscape.js")) defer {}
        form.filters method="get" action="/ui/servicemap" aria-label="Service map filters" {
            label for="f-ns" { "Namespace" } input #f-ns type="text" name="namespace" value=(f.namespace) maxlength="64";
            label for="f-status" { "Status" }
            select #f-status name="status" {
                @for (v, l) in [("", "any"), ("allowed", "allowed"), ("undecided", "undecided"), ("denied", "denied")] { option value=(v) selected[f.status == v] { (l) } }
            }
            label for="f-proto" { "Protocol" } input #f-proto type="text" name="protocol" value=(f.protocol) maxlength="32" placeholder="tcp, TLS…";
            label for="f-host" { "Host or node" } input #f-host type="text" name="host" value=(f.host) maxlength="128";
            button type="submit" { "Filter" }
            a href="/ui/servicemap" { "Clear" }
        }
        p {
            (count(view.matched as u64)) " of " (count(view.total_edges as u64)) " edges: "
            span.badge.st-allowed { (view.counts.allowed) " allowed" } " "
            span.badge.st-undecided { (view.counts.undecided) " undecided" } " "
            span.badge.st-denied { (view.counts.denied) " denied" }
            @if view.learning.active { " · learning until " (time(view.learning.ends_ns.unwrap_or(0))) }
            " · " a href="/ui/servicemap/policy.yaml" { "export as ServicePolicy" }
        }
        div.graph #map-graph data-src={ "/ui/servicemap.json" (q) } role="img" aria-label="Service map graph: nodes are hosts and workloads, edges are coloured by status (green allowed, amber undecided, red denied) and as thick as their traffic" {}
        table.edges {
            thead { tr {
                th scope="col" { "Client" } th scope="col" { "Server" } th scope="col" { "Service" }
                th scope="col" { "Status" } th scope="col" { "Flows" } th scope="col" { "Bytes" }
                th scope="col" { "Last seen" } th scope="col" { "Actions" }
            } }
            tbody {
                @for e in &view.edges {
                    tr #{ "edge-" (e.id) } {
                        td { a href={ "/ui/servicemap" (query(&[("host", &e.client)])) } { (e.client) } }
                        td { a href={ "/ui/servicemap" (query(&[("host", &e.server)])) } { (e.server) } }
                        td { a href={ "/ui/servicemap/edges/" (enc(&e.id)) } title="Edge details and the flows behind it" { (e.l4) "/" (e.port) " " (e.l7) } }
                        td { span class={ "badge st-" (e.status.as_str()) } { (e.status.as_str()) } @if let Some(p) = &e.policy { " " span.small { (p) } } }
                        td.num { (count(e.flows)) }
                        td.num { (bytes(e.bytes_c2s + e.bytes_s2c)) }
                        td { (time(e.last_seen_ns)) }
                        td {
                            @if s.can_write {
                                @for (to, label) in [("allowed", "Allow"), ("denied", "Deny")] {
                                    @if e.status.as_str() != to {
                                        form.inline method="post" action={ "/ui/servicemap/edges/" (enc(&e.id)) } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            input type="hidden" name="status" value=(to);
                                            input type="hidden" name="back" value=(q);
                                            button type="submit" class={ "act-" (to) } { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page("Service map", "/ui/servicemap", &s, &body)
}

/// A snake_case enum as the API writes it, in words (`during_learning` → `during learning`).
fn words<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

/// `GET /ui/servicemap/edges/{id}`: one edge, its nodes, its periodicity and the flows behind it.
pub async fn edge(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
) -> Response {
    let d = match crate::servicemap::api::detail(State(ui.api.clone()), Path(id)).await {
        Ok(Json(d)) => d,
        Err(p) => return problem_page(&p),
    };
    let e = &d.edge;
    let body = html! {
        h1 { "Edge " (e.client) " → " (e.server) }
        p.lead {
            (e.l4) "/" (e.port) " " (e.l7) " · "
            span class={ "badge st-" (e.status.as_str()) } { (e.status.as_str()) }
            " (" (words(&e.learned)) @if let Some(p) = &e.policy { ", policy " (p) } ")"
        }
        dl.facts {
            dt { "Client" } dd { (e.client) " (last " (super::layout::host_link(&e.client_ip)) ")" }
            dt { "Server" } dd { (e.server) " (last " (super::layout::host_link(&e.server_ip)) ")" }
            dt { "Seen" } dd { (time(e.first_seen_ns)) " – " (time(e.last_seen_ns)) }
            dt { "Traffic" } dd { (count(e.flows)) " flows, " (bytes(e.bytes_c2s)) " client to server, " (bytes(e.bytes_s2c)) " back" }
            dt { "Observed at" } dd { (e.observation_point) @if e.vlan != 0 { " (VLAN " (e.vlan) ")" } }
            @if let Some(p) = &d.periodicity {
                dt { "Periodicity" } dd {
                    (words(&p.detector.status))
                    @if p.detector.period_ns > 0.0 {
                        ", every " (format!("{:.1}", p.detector.period_ns / 1e9)) " s ± "
                        (format!("{:.1}", p.detector.jitter_ns / 1e9)) " s over "
                        (p.detector.observations) " intervals"
                    }
                }
            }
        }
        p { a href={ "/ui/servicemap" (query(&[("host", &e.client)])) } { "Back to the map around " (e.client) } }
        @if s.can_write {
            @for (to, label) in [("allowed", "Allow"), ("denied", "Deny")] {
                @if e.status.as_str() != to {
                    form.inline method="post" action={ "/ui/servicemap/edges/" (enc(&e.id)) } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="status" value=(to);
                        button type="submit" class={ "act-" (to) } { (label) }
                    }
                }
            }
        }
        section {
            h2 { "Flows behind the edge" }
            p.small { "Still in memory: active first, then ended, at most 100." }
            (super::flows::table(&d.flows))
        }
    };
    layout::page("Service-map edge", "/ui/servicemap", &s, &body)
}

/// `GET /ui/servicemap.json`: the graph document of the service map's API.
pub async fn data(State(ui): State<Ui>, Query(f): Query<MapFilters>) -> Response {
    match crate::servicemap::api::list(State(ui.api.clone()), ApiQuery(f.api(true))).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

/// The allow/deny form.
#[derive(Debug, Deserialize)]
pub struct EdgeForm {
    /// CSRF token.
    pub csrf: String,
    /// New status.
    pub status: String,
    /// The page's query, to go back to.
    #[serde(default)]
    pub back: String,
}

/// `POST /ui/servicemap/edges/{id}`.
pub async fn set_status(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
    Form(f): Form<EdgeForm>,
) -> Response {
    if !s.csrf_ok(&f.csrf) {
        return layout::error_page(StatusCode::FORBIDDEN, "Invalid CSRF token.");
    }
    if !s.can_write {
        return layout::error_page(StatusCode::FORBIDDEN, "Your token has no write scope.");
    }
    let body = Bytes::from(serde_json::json!({ "status": f.status }).to_string());
    match crate::servicemap::api::patch(State(ui.api.clone()), Path(id), body).await {
        Ok(Json(e)) => {
            tracing::info!(target: crate::auth::middleware::AUDIT_TARGET, who = %s.who, edge = %e.id, status = e.status.as_str(), "UI service-map decision");
            // Only a query string of this page goes back (nothing else can be injected).
            let back = if f.back.starts_with('?')
                && f.back.len() <= 1024
                && f.back
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"?&=%._~-+".contains(&b))
            {
                f.back.as_str()
            } else {
                ""
            };
            Redirect::to(&format!("/ui/servicemap{back}")).into_response()
        }
        Err(p) => problem_page(&p),
    }
}

/// `GET /ui/servicemap/policy.yaml`: the map as `ServicePolicy` objects.
pub async fn policy(State(ui): State<Ui>) -> Response {
    match crate::servicemap::api::policy_yaml(
        State(ui.api.clone()),
        ApiQuery(ExportQuery::default()),
    )
    .await
    {
        Ok(r) => {
            let mut r = r.into_response();
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                header::HeaderValue::from_static("inline; filename=\"servicepolicy.yaml\""),
            );
            r
        }
        Err(p) => problem_page(&p),
    }
}
