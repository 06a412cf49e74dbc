//! Alerts: the filtered, paged table with counts and a timeline; the alert page with its
//! explanation, attacker and victim, triggering flow and the host's flows in the alert's
//! window; acknowledge and exclude (CSRF-checked posts).
//!
//! Filters are the API's (`GET /api/v2/alerts`): the same handler answers both, so a filter
//! means the same here and there. Namespaces are not an alert filter of the API yet.

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{Markup, html};
use netwarden_api::alert::{AlertState, Entity};
use netwarden_api::crd::{AlertExclusionSpec, ExclusionScope, HostMatcher, HostSide, PairMatcher};
use serde::{Deserialize, Serialize};

use super::layout::{self, bytes, count, enc, host_link, query, severity, time, type_label};
use super::{SessionExt, Ui, flows, problem_page};
use crate::alerts::StoredAlert;
use crate::alerts::store::filter::alert_hosts;
use crate::api::alerts::{AlertQuery, AlertSummary};
use crate::api::flows::HistoryQuery;
use crate::api::query::ApiQuery;

/// Rows per page.
pub const PAGE_ROWS: usize = 50;
/// Flows of the host listed on an alert's page.
pub const WINDOW_FLOWS: usize = 20;

/// The alert table's filters (every one optional; empty values are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AlertFilters {
    /// Relative range: `15m`, `1h`, `6h`, `24h`, `7d` before the latest flow time.
    pub range: String,
    /// From (RFC 3339 or epoch seconds).
    pub from: String,
    /// To.
    pub to: String,
    /// Minimum severity.
    pub severity: String,
    /// Alert type(s), comma-separated.
    #[serde(rename = "type")]
    pub alert_type: String,
    /// Entity kind.
    pub entity: String,
    /// Host involved.
    pub host: String,
    /// With host: attacker, victim, any.
    pub role: String,
    /// engaged, released, past.
    pub state: String,
    /// true/false.
    pub acknowledged: String,
    /// Observation point.
    pub observation_point: String,
    /// Sort key.
    pub sort: String,
    /// Rows skipped.
    pub offset: String,
}

impl AlertFilters {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
            ("severity", &self.severity),
            ("type", &self.alert_type),
            ("entity", &self.entity),
            ("host", &self.host),
            ("role", &self.role),
            ("state", &self.state),
            ("acknowledged", &self.acknowledged),
            ("observation_point", &self.observation_point),
            ("sort", &self.sort),
            ("offset", &self.offset),
        ]
    }

    /// The API query of these filters (`now_ns`: the latest flow time, for `range`).
    fn api_query(&self, now_ns: u64) -> AlertQuery {
        let opt = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        let range_secs = match self.range.as_str() {
            "15m" => Some(900),
            "1h" => Some(3600),
            "6h" => Some(6 * 3600),
            "24h" => Some(86_400),
            "7d" => Some(7 * 86_400),
            _ => None,
        };
        let from = opt(&self.from).or_else(|| {
            range_secs.map(|r: u64| (now_ns / 1_000_000_000).saturating_sub(r).to_string())
        });
        AlertQuery {
            from,
            to: opt(&self.to),
            severity: opt(&self.severity),
            alert_type: opt(&self.alert_type),
            entity: opt(&self.entity),
            host: opt(&self.host),
            role: opt(&self.role).filter(|_| !self.host.trim().is_empty()),
            state: opt(&self.state),
            acknowledged: opt(&self.acknowledged),
            observation_point: opt(&self.observation_point),
            ..AlertQuery::default()
        }
    }
}

/// The alert table (`links`: alert ids link to the alert page; always true outside tests).
pub fn table(items: &[StoredAlert], _compact: bool) -> Markup {
    html! {
        @if items.is_empty() { p.empty { "No alerts." } }
        @else {
            table.alerts {
                thead { tr {
                    th scope="col" { "Last seen" } th scope="col" { "Severity" } th scope="col" { "Type" }
                    th scope="col" { "Attacker → victim / entity" } th scope="col" { "Details" }
                    th scope="col" { "Score" } th scope="col" { "Count" } th scope="col" { "State" }
                } }
                tbody {
                    @for r in items {
                        tr class=[r.acknowledged.then_some("acked")] {
                            td { a href={ "/ui/alerts/" (r.id) } { (time(r.alert.last_seen_ns)) } }
                            td { (severity(r.alert.severity)) }
                            td { a href={ "/ui/alerts/" (r.id) } { (type_label(&r.alert.alert_type)) } }
                            td { (parties(r)) }
                            td.msg { (shorten(&r.alert.message, 140)) }
                            td.num { (r.alert.score) }
                            td.num { (count(r.alert.count)) }
                            td { (state_name(r.alert.state)) @if r.acknowledged { " ✓" } }
                        }
                    }
                }
            }
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `engaged`, `released`, `past`.
pub fn state_name(s: AlertState) -> &'static str {
    match s {
        AlertState::Engaged => "engaged",
        AlertState::Released => "released",
        AlertState::Past => "past",
    }
}

/// Attacker and victim of an alert, as links.
fn parties(r: &StoredAlert) -> Markup {
    let a = &r.alert;
    let (client, server) = alert_hosts(a);
    let roles = &a.roles;
    let mark = |attacker: bool, victim: bool| {
        if attacker {
            " (attacker)"
        } else if victim {
            " (victim)"
        } else {
            ""
        }
    };
    html! {
        @match (client, server) {
            (Some(c), Some(s)) => {
                (host_link(&c.to_string())) (mark(roles.client_attacker, roles.client_victim))
                " → " (host_link(&s.to_string())) (mark(roles.server_attacker, roles.server_victim))
            }
            (Some(c), None) => { (host_link(&c.to_string())) (mark(roles.client_attacker, roles.client_victim)) }
            _ => { (a.entity.as_str()) " " (a.entity_value) }
        }
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        label for={ "f-" (name) } { (label) }
        select id={ "f-" (name) } name=(name) {
            @for (v, l) in options { option value=(v) selected[*v == current] { (l) } }
        }
    }
}

fn filter_form(f: &AlertFilters, points: &[String]) -> Markup {
    let mut point_opts: Vec<(&str, &str)> = vec![("", "any")];
    point_opts.extend(points.iter().map(|p| (p.as_str(), p.as_str())));
    html! {
        form.filters method="get" action="/ui/alerts" aria-label="Alert filters" {
            (select("range", "Time", &f.range, &[("", "all"), ("15m", "last 15 min"), ("1h", "last hour"), ("6h", "last 6 h"), ("24h", "last 24 h"), ("7d", "last 7 days")]))
            (select("severity", "Min. severity", &f.severity, &[("", "any"), ("notice", "notice"), ("warning", "warning"), ("error", "error"), ("critical", "critical"), ("emergency", "emergency")]))
            label for="f-type" { "Type" }
            input #f-type type="text" name="type" value=(f.alert_type) placeholder="syn_scan,…" maxlength="512";
            (select("entity", "Entity", &f.entity, &[("", "any"), ("flow", "flow"), ("host", "host"), ("observation_point", "observation point"), ("interface", "interface"), ("network", "network")]))
            label for="f-host" { "Host" }
            input #f-host type="text" name="host" value=(f.host) placeholder="10.0.0.1" maxlength="64";
            (select("role", "as", &f.role, &[("", "any"), ("attacker", "attacker"), ("victim", "victim")]))
            (select("state", "State", &f.state, &[("", "any"), ("engaged", "engaged"), ("released", "released"), ("past", "past")]))
            (select("acknowledged", "Acknowledged", &f.acknowledged, &[("", "any"), ("false", "no"), ("true", "yes")]))
            (select("observation_point", "Point", &f.observation_point, &point_opts))
            (select("sort", "Sort", &f.sort, &[("", "newest"), ("-score", "score"), ("-count", "count"), ("time", "oldest")]))
            button type="submit" { "Filter" }
            a href="/ui/alerts" { "Clear" }
        }
    }
}

/// A small bar chart of the summary's buckets (server-rendered SVG; no script needed).
pub fn timeline(s: &AlertSummary) -> Markup {
    let max = s
        .over_time
        .iter()
        .map(|b| b.total)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = s.over_time.len().max(1);
    let w = 600.0_f64;
    let bw = (w / n as f64).max(1.0);
    html! {
        figure.timeline {
            svg viewBox="0 0 600 60" width="100%" height="60" role="img" aria-label={ (s.over_time.len()) " time buckets of " (s.bucket_secs) " s" } {
                @for (i, b) in s.over_time.iter().enumerate() {
                    @let h = (b.total as f64 / max as f64 * 58.0).max(1.0);
                    rect x=(format!("{:.1}", i as f64 * bw)) y=(format!("{:.1}", 60.0 - h)) width=(format!("{:.1}", (bw - 1.0).max(0.5))) height=(format!("{h:.1}")) {
                        title { (time(b.start_ns)) ": " (b.total) }
                    }
                }
            }
            figcaption {
                @if let (Some(a), Some(b)) = (s.over_time.first(), s.over_time.last()) { (time(a.start_ns)) " – " (time(b.start_ns)) ", per " (s.bucket_secs / 60) " min" }
            }
        }
    }
}

/// `GET /ui/alerts`.
pub async fn list(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Query(f): Query<AlertFilters>,
) -> Response {
    let (now, points) = {
        let st = ui.api.engine.read();
        (
            st.analysis.now_ns,
            st.points
                .sorted()
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>(),
        )
    };
    let mut q = f.api_query(now);
    let summary =
        match crate::api::alerts::summary(State(ui.api.clone()), ApiQuery(q_clone(&q))).await {
            Ok(Json(s)) => s,
            Err(p) => return problem_page(&p),
        };
    q.sort = (!f.sort.is_empty()).then(|| f.sort.clone());
    q.offset = (!f.offset.is_empty()).then(|| f.offset.clone());
    q.limit = Some(PAGE_ROWS.to_string());
    let page = match crate::api::alerts::list(State(ui.api.clone()), ApiQuery(q)).await {
        Ok(Json(p)) => p,
        Err(p) => return problem_page(&p),
    };
    let params = f.pairs();
    let body = html! {
        h1 { "Alerts" }
        (filter_form(&f, &points))
        section.counts aria-label="Counts" {
            p { strong data-live="alerts-filtered" { (count(summary.total)) } " alerts match; " (count(summary.engaged)) " engaged." }
            ul.inline {
                @for (sev, n) in &summary.by_severity { li { (super::overview::severity_of(sev)) " " (count(*n)) } }
            }
            details {
                summary { "By type (" (summary.by_type.len()) ")" }
                ul.inline { @for (t, n) in &summary.by_type {
                    li { a href={ "/ui/alerts" (query(&[("type", t)])) } { (type_label(t)) } " " (count(*n)) }
                } }
            }
            (timeline(&summary))
        }
        (table(&page.items, false))
        (layout::pager("/ui/alerts", &params, page.offset, page.limit, page.total))
    };
    layout::page("Alerts", "/ui/alerts", &s, &body)
}

fn q_clone(q: &AlertQuery) -> AlertQuery {
    AlertQuery {
        from: q.from.clone(),
        to: q.to.clone(),
        severity: q.severity.clone(),
        alert_type: q.alert_type.clone(),
        entity: q.entity.clone(),
        entity_value: q.entity_value.clone(),
        host: q.host.clone(),
        role: q.role.clone(),
        state: q.state.clone(),
        acknowledged: q.acknowledged.clone(),
        observation_point: q.observation_point.clone(),
        ..AlertQuery::default()
    }
}

/// Finds an alert by its row id.
async fn find(ui: &Ui, id: &str) -> Result<StoredAlert, Response> {
    match crate::api::alerts::detail(State(ui.api.clone()), Path(id.to_owned())).await {
        Ok(Json(d)) => Ok(d.alert),
        Err(p) => Err(problem_page(&p)),
    }
}

/// `GET /ui/alerts/{id}`.
pub async fn detail(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
) -> Response {
    let row = match find(&ui, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    render_detail(&ui, &s, &row, None).await
}

async fn render_detail(
    ui: &Ui,
    s: &super::session::Session,
    row: &StoredAlert,
    notice: Option<Markup>,
) -> Response {
    let a = &row.alert;
    let (client, server) = alert_hosts(a);
    let from = a.first_seen_ns / 1_000_000_000;
    let to = a.last_seen_ns.div_ceil(1_000_000_000).max(from + 1);
    let window_flows = match client {
        Some(ip) => crate::api::flows::history(
            State(ui.api.clone()),
            ApiQuery(HistoryQuery {
                host: Some(ip.to_string()),
                from: Some(from.to_string()),
                to: Some(to.to_string()),
                limit: Some(WINDOW_FLOWS.to_string()),
                ..HistoryQuery::default()
            }),
        )
        .await
        .ok()
        .map(|Json(p)| p),
        None => None,
    };
    let def = crate::checks::def(&a.alert_type);
    let risk = netwarden_api::risk::by_key(&a.alert_type);
    let body = html! {
        @if let Some(n) = notice { (n) }
        h1 { (type_label(&a.alert_type)) " " (severity(a.severity)) }
        p.lead { (a.message) }
        dl.facts {
            dt { "Type" } dd { code { (a.alert_type) } }
            dt { "Entity" } dd { (a.entity.as_str()) " " (a.entity_value) }
            dt { "State" } dd { (state_name(a.state)) @if row.acknowledged { ", acknowledged" } }
            dt { "Score" } dd { (a.score) " (client " (a.client_score) ", server " (a.server_score) ")"
                @if let Some(d) = def { ", " (format!("{:?}", d.kind).to_lowercase()) } @else if let Some(r) = risk { ", " (format!("{:?}", r.category).to_lowercase()) } }
            dt { "Seen" } dd { (time(a.first_seen_ns)) " – " (time(a.last_seen_ns)) ", " (count(a.count)) " times" }
            @if !a.observation_point.is_empty() { dt { "Observation point" } dd { (a.observation_point) } }
            @if let Some(b) = &a.anomaly { dt { "Anomaly" } dd { (b.value) " outside the expected band [" (b.lower) ", " (b.upper) "] (forecast " (format!("{:.1}", b.expected)) ")" } }
        }
        section {
            h2 { "Who" }
            @match (client, server) {
                (Some(c), Some(sv)) => {
                    p { "Client " (host_link(&c.to_string())) (role_words(a.roles.client_attacker, a.roles.client_victim))
                        " → server " (host_link(&sv.to_string())) (role_words(a.roles.server_attacker, a.roles.server_victim)) }
                }
                (Some(c), None) => { p { "Host " (host_link(&c.to_string())) (role_words(a.roles.client_attacker, a.roles.client_victim)) } }
                _ => { p { (a.entity.as_str()) " " (a.entity_value) } }
            }
            ul.inline {
                @if let Some(c) = client { li { a href={ "/ui/alerts" (query(&[("host", &c.to_string())])) } { "all alerts of " (c) } } }
                @if let Some(c) = client { li { a href={ "/ui/flows" (query(&[("host", &c.to_string())])) } { "flows of " (c) } } }
                @if let Some(sv) = server { li { a href={ "/ui/flows" (query(&[("host", &sv.to_string())])) } { "flows of " (sv) } } }
                @if let (Some(c), Some(_)) = (client, server) { li { a href={ "/ui/servicemap" (query(&[("host", &c.to_string())])) } { "service-map edges of " (c) } } }
            }
        }
        @if let Some(flow) = &a.flow {
            section {
                h2 { "Triggering flow" }
                (flows::flow_facts(flow))
                details {
                    summary { "Every field of the flow record" }
                    pre.json { (serde_json::to_string_pretty(flow.as_ref()).unwrap_or_default()) }
                }
            }
        }
        @if let Some(p) = &window_flows {
            section {
                h2 { "Flows of " (client.map(|c| c.to_string()).unwrap_or_default()) " in the alert's window" }
                p.small { (time(from * 1_000_000_000)) " – " (time(to * 1_000_000_000)) ": " (count(p.total as u64)) " ended flows" }
                (flows::table(&p.items))
            }
        }
        @if s.can_write {
            section.actions {
                h2 { "Actions" }
                @if !row.acknowledged {
                    form method="post" action={ "/ui/alerts/" (row.id) "/acknowledge" } {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button type="submit" #ack { "Acknowledge" }
                    }
                }
                form method="post" action={ "/ui/alerts/" (row.id) "/exclude" } {
                    input type="hidden" name="csrf" value=(s.csrf);
                    button type="submit" #exclude { "Exclude alerts like this" }
                    span.small { " (" (exclusion_summary(a)) ")" }
                }
            }
        }
    };
    layout::page(&type_label(&a.alert_type), "/ui/alerts", s, &body)
}

fn role_words(attacker: bool, victim: bool) -> &'static str {
    match (attacker, victim) {
        (true, _) => " (attacker)",
        (_, true) => " (victim)",
        _ => "",
    }
}

/// The CSRF form of the actions.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// The session's CSRF token.
    pub csrf: String,
}

fn check_write(s: &super::session::Session, f: &ActionForm) -> Option<Response> {
    if !s.csrf_ok(&f.csrf) {
        return Some(layout::error_page(
            StatusCode::FORBIDDEN,
            "Invalid CSRF token: reload the page and try again.",
        ));
    }
    if !s.can_write {
        return Some(layout::error_page(
            StatusCode::FORBIDDEN,
            "Your token has no write scope.",
        ));
    }
    None
}

/// `POST /ui/alerts/{id}/acknowledge`.
pub async fn acknowledge(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = check_write(&s, &f) {
        return r;
    }
    match crate::api::alerts::acknowledge_one(State(ui.api.clone()), Path(id)).await {
        Ok(Json(d)) => {
            tracing::info!(target: crate::auth::middleware::AUDIT_TARGET, who = %s.who, alert = d.alert.id, "UI acknowledge");
            Redirect::to(&format!("/ui/alerts/{}", d.alert.id)).into_response()
        }
        Err(p) => problem_page(&p),
    }
}

/// What an exclusion made from an alert matches, in words.
fn exclusion_summary(a: &netwarden_api::alert::Alert) -> String {
    let (client, server) = alert_hosts(a);
    match (a.entity, client, server) {
        (Entity::Flow, Some(c), Some(s)) => format!("{} from {c} to {s}", a.alert_type),
        (_, Some(c), _) => format!("{} of host {c}", a.alert_type),
        _ => format!("{} everywhere", a.alert_type),
    }
}

/// An `AlertExclusion` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExclusionDoc {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    spec: AlertExclusionSpec,
}

#[derive(Debug, Serialize)]
struct Meta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

/// The exclusion of alerts like `row`: its type, for its host pair (flow alerts) or its host.
/// Returns the object's name and its YAML.
pub fn exclusion_yaml(row: &StoredAlert, namespace: Option<String>) -> (String, String) {
    let a = &row.alert;
    let (client, server) = alert_hosts(a);
    let cidr = |ip: IpAddr| ip.to_string();
    let (hosts, pairs) = match (a.entity, client, server) {
        (Entity::Flow, Some(c), Some(s)) => (
            Vec::new(),
            vec![PairMatcher {
                client: cidr(c),
                server: cidr(s),
            }],
        ),
        (_, Some(c), _) => (
            vec![HostMatcher {
                cidr: cidr(c),
                side: HostSide::Either,
            }],
            Vec::new(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let scope = if a.entity == Entity::Flow {
        ExclusionScope::Flow
    } else {
        ExclusionScope::Host
    };
    let slug: String = a
        .alert_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let key: String = a
        .key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let name = format!("ui-{slug}-{key}").trim_matches('-').to_owned();
    let doc = ExclusionDoc {
        api_version: "netwarden.io/v1alpha1",
        kind: "AlertExclusion",
        metadata: Meta {
            name: name.clone(),
            namespace,
        },
        spec: AlertExclusionSpec {
            hosts,
            pairs,
            pod_selector: None,
            domains: Vec::new(),
            certificate_issuers: Vec::new(),
            scope,
            alert_types: vec![a.alert_type.clone()],
            expires_at: None,
            reason: Some(format!("excluded from the Netwarden UI (alert {})", a.key)),
        },
    };
    (name, serde_saphyr::to_string(&doc).unwrap_or_default())
}

/// `POST /ui/alerts/{id}/exclude`: standalone with `--config DIR` writes the exclusion there
/// (the directory watcher applies it); otherwise the page shows the YAML to apply.
pub async fn exclude(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(r) = check_write(&s, &f) {
        return r;
    }
    let row = match find(&ui, &id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let settings = ui.settings.get();
    let namespace = if settings.config_dir.is_some() {
        None
    } else {
        let (client, _) = alert_hosts(&row.alert);
        let dir = crate::directory::read(&ui.api.engine.directory);
        Some(
            client
                .and_then(|c| dir.get(c).and_then(|e| e.namespace.clone()))
                .unwrap_or_else(|| "default".to_owned()),
        )
    };
    let (name, yaml) = exclusion_yaml(&row, namespace);
    let notice = if let Some(dir) = settings.config_dir {
        // The name is built from [a-z0-9-] only: no path can come from the alert.
        let path = dir.join(format!("{name}.yaml"));
        match std::fs::write(&path, &yaml) {
            Ok(()) => {
                tracing::info!(target: crate::auth::middleware::AUDIT_TARGET, who = %s.who, file = %path.display(), "UI exclusion written");
                html! { div.notice role="status" { p { "Exclusion written to " code { (path.display()) } "; it applies when the configuration directory is read again (within seconds)." } pre.yaml #exclusion-yaml { (yaml) } } }
            }
            Err(e) => {
                html! { div.notice.error role="alert" { p { "Could not write " code { (path.display()) } ": " (e) } pre.yaml #exclusion-yaml { (yaml) } } }
            }
        }
    } else {
        html! {
            div.notice role="status" {
                p { "In a cluster, exclusions are " code { "AlertExclusion" } " objects: apply this with " code { "kubectl apply -f -" } "." }
                pre.yaml #exclusion-yaml { (yaml) }
            }
        }
    };
    render_detail(&ui, &s, &row, Some(notice)).await
}

/// Bytes of a flow (for tables elsewhere).
pub fn flow_bytes(r: &netwarden_api::flow::FlowRecord) -> String {
    bytes(r.total_bytes())
}

/// A link to the alert list of `host`.
pub fn host_alerts_link(ip: &str) -> String {
    format!("/ui/alerts?host={}", enc(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_api::alert::{Alert, Roles, Severity};

    #[test]
    fn exclusion_names_are_safe_and_yaml_is_a_crd() {
        let row = StoredAlert {
            id: 7,
            acknowledged: false,
            alert: Alert {
                key: "0123456789abcdef".into(),
                alert_type: "syn_scan".into(),
                entity: Entity::Host,
                entity_value: "10.0.0.7".into(),
                severity: Severity::Warning,
                score: 50,
                client_score: 50,
                server_score: 0,
                roles: Roles::default(),
                observation_point: "n/eth0".into(),
                first_seen_ns: 1,
                last_seen_ns: 2,
                count: 1,
                state: AlertState::Engaged,
                message: "x".into(),
                flow: None,
                anomaly: None,
            },
        };
        let (name, yaml) = exclusion_yaml(&row, Some("payments".into()));
        assert_eq!(name, "ui-syn-scan-01234567");
        assert!(yaml.contains("kind: AlertExclusion"), "{yaml}");
        assert!(
            yaml.contains("10.0.0.7") && yaml.contains("namespace: payments"),
            "{yaml}"
        );
        assert!(
            yaml.contains("alertTypes:") && yaml.contains("scope: host"),
            "{yaml}"
        );
    }
}
