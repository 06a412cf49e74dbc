//! Flows: active and ended, filtered and paged (the API's `GET /api/v2/flows` handler), with
//! protocol, SNI/host, JA4, certificate issues and risks as badges; and the flow facts block
//! used on alert pages.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use netwarden_api::flow::{FlowRecord, proto};
use serde::Deserialize;

use super::layout::{self, bytes, count, duration, host_link, time};
use super::{SessionExt, Ui, problem_page};
use crate::api::flows::FlowQuery;
use crate::api::query::ApiQuery;

/// Rows per page.
pub const PAGE_ROWS: usize = 50;

/// Filters of the flow table.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FlowFilters {
    /// Client or server address.
    pub host: String,
    /// Port.
    pub port: String,
    /// L4 protocol.
    pub protocol: String,
    /// L7 name (substring).
    pub l7: String,
    /// active, ended, all.
    pub state: String,
    /// Observation point.
    pub observation_point: String,
    /// Sort key.
    pub sort: String,
    /// Rows skipped.
    pub offset: String,
}

/// The flow's server name: SNI, HTTP Host or DNS query (what DPI called its hostname).
pub fn server_name(r: &FlowRecord) -> &str {
    let Some(l7) = &r.l7 else { return "" };
    if let Some(t) = &l7.tls
        && !t.sni.is_empty()
    {
        return &t.sni;
    }
    if !l7.hostname.is_empty() {
        return &l7.hostname;
    }
    l7.dns.as_ref().map_or("", |d| d.query.as_str())
}

/// The risk badges of a flow.
pub fn risks(r: &FlowRecord) -> Markup {
    html! {
        @for id in r.risk_ids() {
            @let info = netwarden_api::risk::by_id(id);
            span class={ "badge risk-" (info.map_or("unknown", |i| severity_class(i.score()))) } title=[info.map(|i| i.key)] {
                (info.map_or_else(|| format!("risk {id}"), |i| i.name.to_owned()))
            }
        }
        @if let Some(c) = r.l7.as_ref().and_then(|l| l.tls.as_ref()).and_then(|t| t.certificate.as_ref()) {
            @if c.self_signed { span.badge.risk-high { "self-signed certificate" } }
        }
    }
}

fn severity_class(score: u16) -> &'static str {
    match score {
        0..=10 => "low",
        11..=50 => "medium",
        51..=100 => "high",
        _ => "severe",
    }
}

fn endpoint(ip: Option<std::net::IpAddr>, port: u32) -> Markup {
    html! {
        @if let Some(ip) = ip { (host_link(&ip.to_string())) ":" (port) } @else { "?" }
    }
}

/// Short L7 details of a flow: certificate subject, HTTP server and user agent, DNS answers.
fn details(r: &FlowRecord) -> Markup {
    let Some(l7) = &r.l7 else { return html! {} };
    let cert = l7.tls.as_ref().and_then(|t| t.certificate.as_ref());
    html! {
        @if let Some(c) = cert { @if !c.subject.is_empty() { span.small { "cert " } (c.subject) " " } }
        @if let Some(h) = &l7.http {
            @if !h.server.is_empty() { span.small { "server " } (h.server) " " }
            @if !h.user_agent.is_empty() { span.small { "UA " } (h.user_agent) " " }
        }
        @if let Some(d) = &l7.dns { @if !d.answers.is_empty() { span.small { "→ " } (d.answers.iter().take(2).cloned().collect::<Vec<_>>().join(", ")) } }
    }
}

/// The flow table.
pub fn table(items: &[FlowRecord]) -> Markup {
    html! {
        @if items.is_empty() { p.empty { "No flows." } }
        @else {
            table.flows {
                thead { tr {
                    th scope="col" { "First seen" } th scope="col" { "Client" } th scope="col" { "Server" }
                    th scope="col" { "Protocol" } th scope="col" { "Name (SNI / host / query)" } th scope="col" { "JA4" }
                    th scope="col" { "Details" } th scope="col" { "Bytes" } th scope="col" { "Duration" } th scope="col" { "Risks" }
                } }
                tbody {
                    @for r in items {
                        tr class=[(!r.is_final()).then_some("active")] {
                            td { (time(r.first_seen_ns)) }
                            td { (endpoint(r.client_addr(), r.client_port)) }
                            td { (endpoint(r.server_addr(), r.server_port)) }
                            td { (proto::name(r.l4_proto as u8)) @if let Some(l7) = &r.l7 { " " (l7.app_protocol) } }
                            td.name { (server_name(r)) }
                            td.mono { (r.l7.as_ref().and_then(|l| l.tls.as_ref()).map_or("", |t| t.ja4.as_str())) }
                            td.name { (details(r)) }
                            td.num { (bytes(r.total_bytes())) }
                            td.num { (duration(r.last_seen_ns.saturating_sub(r.first_seen_ns))) }
                            td { (risks(r)) }
                        }
                    }
                }
            }
        }
    }
}

/// The facts of one flow (alert pages): endpoints, protocol, L7 metadata, risks.
pub fn flow_facts(r: &FlowRecord) -> Markup {
    let l7 = r.l7.as_ref();
    let tls = l7.and_then(|l| l.tls.as_ref());
    let http = l7.and_then(|l| l.http.as_ref());
    let dns = l7.and_then(|l| l.dns.as_ref());
    html! {
        dl.facts {
            dt { "Client" } dd { (endpoint(r.client_addr(), r.client_port)) }
            dt { "Server" } dd { (endpoint(r.server_addr(), r.server_port)) }
            dt { "Protocol" } dd { (proto::name(r.l4_proto as u8)) @if let Some(l) = l7 { " · " (l.app_protocol) @if !l.category.is_empty() { " (" (l.category) ")" } } }
            dt { "Time" } dd { (time(r.first_seen_ns)) " – " (time(r.last_seen_ns)) }
            dt { "Traffic" } dd { (bytes(r.c2s.as_ref().map_or(0, |d| d.bytes))) " → · ← " (bytes(r.s2c.as_ref().map_or(0, |d| d.bytes))) ", " (count(r.total_packets())) " packets" }
            @if let Some(p) = &r.observation_point { dt { "Observed at" } dd { (p.sensor) "/" (p.interface) (p.exporter) } }
            @if let Some(l) = l7 { @if !l.hostname.is_empty() { dt { "Host name" } dd.name { (l.hostname) } } }
            @if let Some(t) = tls {
                dt { "TLS" } dd { "SNI " span.name { (t.sni) } @if !t.ja4.is_empty() { " · JA4 " code { (t.ja4) } } @if !t.ja3c.is_empty() { " · JA3 " code { (t.ja3c) } } }
                @if let Some(c) = &t.certificate {
                    dt { "Certificate" } dd { "subject " span.name { (c.subject) } " · issuer " span.name { (c.issuer) } @if c.self_signed { " · self-signed" } }
                }
            }
            @if let Some(h) = http {
                dt { "HTTP" } dd { (h.method) " " span.name { (h.url) } @if h.status > 0 { " → " (h.status) } }
                @if !h.user_agent.is_empty() { dt { "User-Agent" } dd.name { (h.user_agent) } }
                @if !h.server.is_empty() { dt { "Server" } dd.name { (h.server) } }
            }
            @if let Some(d) = dns { dt { "DNS" } dd { "query " span.name { (d.query) } @if !d.answers.is_empty() { " → " (d.answers.join(", ")) } } }
            dt { "Risks" } dd { (risks(r)) @for d in &r.risk_details { " " span.small { (d.detail) } } }
        }
    }
}

/// `GET /ui/flows`.
pub async fn list(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Query(f): Query<FlowFilters>,
) -> Response {
    let opt = |v: &str| {
        let v = v.trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    let q = FlowQuery {
        host: opt(&f.host),
        port: opt(&f.port),
        protocol: opt(&f.protocol),
        l7: opt(&f.l7),
        state: opt(&f.state),
        observation_point: opt(&f.observation_point),
        sort: opt(&f.sort),
        offset: opt(&f.offset),
        limit: Some(PAGE_ROWS.to_string()),
        ..FlowQuery::default()
    };
    let page = match crate::api::flows::list(State(ui.api.clone()), ApiQuery(q)).await {
        Ok(Json(p)) => p,
        Err(p) => return problem_page(&p),
    };
    let params = [
        ("host", f.host.as_str()),
        ("port", &f.port),
        ("protocol", &f.protocol),
        ("l7", &f.l7),
        ("state", &f.state),
        ("observation_point", &f.observation_point),
        ("sort", &f.sort),
        ("offset", &f.offset),
    ];
    let body = html! {
        h1 { "Flows" }
        form.filters method="get" action="/ui/flows" aria-label="Flow filters" {
            label for="f-host" { "Host" } input #f-host type="text" name="host" value=(f.host) maxlength="64" placeholder="10.0.0.1";
            label for="f-port" { "Port" } input #f-port type="text" name="port" value=(f.port) maxlength="5" size="5";
            label for="f-protocol" { "L4" } input #f-protocol type="text" name="protocol" value=(f.protocol) maxlength="8" size="5" placeholder="tcp";
            label for="f-l7" { "Application" } input #f-l7 type="text" name="l7" value=(f.l7) maxlength="64" placeholder="TLS";
            label for="f-state" { "State" }
            select #f-state name="state" {
                @for (v, l) in [("", "all"), ("active", "active"), ("ended", "ended")] { option value=(v) selected[f.state == v] { (l) } }
            }
            label for="f-point" { "Point" } input #f-point type="text" name="observation_point" value=(f.observation_point) maxlength="128";
            label for="f-sort" { "Sort" }
            select #f-sort name="sort" {
                @for (v, l) in [("", "bytes"), ("-last_seen", "newest"), ("first_seen", "oldest"), ("-duration", "longest"), ("-packets", "packets")] { option value=(v) selected[f.sort == v] { (l) } }
            }
            button type="submit" { "Filter" }
            a href="/ui/flows" { "Clear" }
        }
        p { (count(page.total as u64)) " flows (active ones highlighted)." }
        (table(&page.items))
        (layout::pager("/ui/flows", &params, page.offset, page.limit, page.total))
    };
    layout::page("Flows", "/ui/flows", &s, &body)
}
