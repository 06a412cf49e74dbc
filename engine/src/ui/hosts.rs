//! Hosts: the paged host list, and the host page — identity, the score breakdown (every
//! contributing alert, client vs server, network vs security), score and traffic over time
//! with the DES band, flows and alerts.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::{Deserialize, Serialize};

use super::layout::{self, bytes, count, enc, host_link, query, time, type_label};
use super::{SessionExt, Ui, explain, flows, problem_page};
use crate::api::alerts::{AlertQuery, HostSubQuery};
use crate::api::flows::FlowQuery;
use crate::api::hosts::{HostDetailQuery, HostQuery};
use crate::api::query::ApiQuery;
use crate::checks::ScoreKind;

/// Rows per page.
pub const PAGE_ROWS: usize = 50;

/// Filters of the host list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HostFilters {
    /// Address or name prefix.
    pub q: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Sort key.
    pub sort: String,
    /// Rows skipped.
    pub offset: String,
}

/// `GET /ui/hosts`.
pub async fn list(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Query(f): Query<HostFilters>,
) -> Response {
    let opt = |v: &str| {
        let v = v.trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    let q = HostQuery {
        q: opt(&f.q),
        namespace: opt(&f.namespace),
        sort: opt(&f.sort),
        offset: opt(&f.offset),
        limit: Some(PAGE_ROWS.to_string()),
        ..HostQuery::default()
    };
    let page = match crate::api::hosts::list(State(ui.api.clone()), ApiQuery(q)).await {
        Ok(Json(p)) => p,
        Err(p) => return problem_page(&p),
    };
    let scores: Vec<u64> = {
        let st = ui.api.engine.read();
        let now = st.analysis.now_ns;
        page.items
            .iter()
            .map(|h| {
                st.analysis
                    .scores
                    .values(
                        &crate::hosts::HostKey {
                            ip: h.ip,
                            vlan: h.vlan,
                        },
                        now,
                    )
                    .total
            })
            .collect()
    };
    let params = [
        ("q", f.q.as_str()),
        ("namespace", &f.namespace),
        ("sort", &f.sort),
        ("offset", &f.offset),
    ];
    let body = html! {
        h1 { "Hosts" }
        form.filters method="get" action="/ui/hosts" aria-label="Host filters" {
            label for="f-q" { "Address or name starts with" } input #f-q type="text" name="q" value=(f.q) maxlength="128";
            label for="f-ns" { "Namespace" } input #f-ns type="text" name="namespace" value=(f.namespace) maxlength="64";
            label for="f-sort" { "Sort" }
            select #f-sort name="sort" {
                @for (v, l) in [("", "bytes"), ("-flows", "flows"), ("-packets", "packets"), ("-last_seen", "last seen")] { option value=(v) selected[f.sort == v] { (l) } }
            }
            button type="submit" { "Filter" }
        }
        p { (count(page.total as u64)) " hosts." }
        table {
            thead { tr { th scope="col" { "Host" } th scope="col" { "Name" } th scope="col" { "Score" } th scope="col" { "Sent" } th scope="col" { "Received" } th scope="col" { "Flows" } th scope="col" { "Protocols" } th scope="col" { "Last seen" } } }
            tbody {
                @for (h, sc) in page.items.iter().zip(&scores) { tr {
                    td { (host_link(&h.ip.to_string())) @if h.vlan != 0 { " vlan " (h.vlan) } }
                    td { (h.name.clone().unwrap_or_default()) }
                    td.num { (count(*sc)) }
                    td.num { (bytes(h.bytes_sent)) } td.num { (bytes(h.bytes_rcvd)) }
                    td.num { (count(h.flows_as_client + h.flows_as_server)) }
                    td { (h.l7_protocols.iter().take(4).cloned().collect::<Vec<_>>().join(", ")) }
                    td { (time(h.last_seen_ns)) }
                } }
            }
        }
        (layout::pager("/ui/hosts", &params, page.offset, page.limit, page.total))
    };
    layout::page("Hosts", "/ui/hosts", &s, &body)
}

/// `GET /ui/hosts/{ip}`.
pub async fn detail(
    State(ui): State<Ui>,
    axum::Extension(s): SessionExt,
    Path(ip): Path<String>,
) -> Response {
    let host = match crate::api::hosts::detail(
        State(ui.api.clone()),
        Path(ip.clone()),
        ApiQuery(HostDetailQuery::default()),
    )
    .await
    {
        Ok(Json(h)) => h,
        Err(p) => return problem_page(&p),
    };
    let ipt = host.host.ip.to_string();
    let vlan = host.host.vlan.to_string();
    let score = match crate::api::alerts::host_score(
        State(ui.api.clone()),
        Path(ipt.clone()),
        ApiQuery(HostSubQuery {
            vlan: Some(vlan.clone()),
            metric: None,
        }),
    )
    .await
    {
        Ok(Json(b)) => b,
        Err(p) => return problem_page(&p),
    };
    let alerts = match crate::api::alerts::list(
        State(ui.api.clone()),
        ApiQuery(AlertQuery {
            host: Some(ipt.clone()),
            limit: Some("20".into()),
            ..AlertQuery::default()
        }),
    )
    .await
    {
        Ok(Json(p)) => p,
        Err(p) => return problem_page(&p),
    };
    let active = crate::api::flows::list(
        State(ui.api.clone()),
        ApiQuery(FlowQuery {
            host: Some(ipt.clone()),
            limit: Some("20".into()),
            sort: Some("-last_seen".into()),
            ..FlowQuery::default()
        }),
    )
    .await
    .map(|Json(p)| p)
    .ok();
    let words = {
        let st = ui.api.engine.read();
        explain::explain(
            &score.contributions,
            |k| st.analysis.store.by_key(k).map(|a| a.alert.message.clone()),
            5,
        )
    };
    let h = &host.host;
    let v = &score.score;
    let body = html! {
        h1 { "Host " (ipt) @if let Some(n) = &h.name { " — " (n) } }
        @if !words.is_empty() { p.lead { "Why it scores: " (words.join("; ")) "." } }
        section.grid2 {
            div {
                h2 { "Identity" }
                dl.facts {
                    dt { "Address" } dd { (ipt) @if h.vlan != 0 { " (VLAN " (h.vlan) ")" } }
                    @if let Some(k) = &h.kubernetes {
                        dt { "Kubernetes" } dd { (k.kind) " " (k.name)
                            @if let Some(ns) = &k.namespace { " in " (ns) }
                            @if let Some(w) = &k.workload { ", workload " (w) }
                            @if let Some(n) = &k.node { ", node " (n) } }
                    }
                    @if let Some(d) = &host.device {
                        dt { "Device" } dd {
                            (d.device_type.as_str().replace('_', " "))
                            " (" (format!("{:.0}", d.confidence * 100.0)) "% confidence"
                            @if d.manual { ", set by an operator" } ")"
                            @if let Some(v) = d.vendor { "; " (v) }
                            @if let Some(m) = &d.mac { " " span.mono { (m) } }
                            @if !d.evidence.is_empty() {
                                ul.evidence { @for e in d.evidence.iter().take(6) {
                                    li { span.badge { (e.source.as_str().replace('_', " ")) } " " (e.detail)
                                        " → " (e.device_type.as_str().replace('_', " ")) }
                                } }
                            }
                        }
                    }
                    dt { "Seen" } dd { (time(h.first_seen_ns)) " – " (time(h.last_seen_ns)) }
                    dt { "Traffic" } dd { "sent " (bytes(h.bytes_sent)) ", received " (bytes(h.bytes_rcvd)) }
                    dt { "Flows" } dd { (count(h.flows_as_client)) " as client, " (count(h.flows_as_server)) " as server; active " (h.active_flows_as_client + h.active_flows_as_server) }
                    dt { "Observed at" } dd { (h.observation_points.join(", ")) }
                    dt { "Protocols" } dd { @for p in host.protocols.iter().take(8) { span.badge { (p.name) " " (bytes(p.bytes)) } " " } }
                }
                p { a href={ "/ui/servicemap" (query(&[("host", &ipt)])) } { "Service-map neighbourhood of " (ipt) } }
                h3 { "Top peers" }
                ul.inline { @for p in &host.top_peers { li { (host_link(&p.ip.to_string())) " " (bytes(p.bytes)) } } }
            }
            div {
                h2 { "Score " (count(v.total)) }
                table.compact {
                    caption { "Score split" }
                    thead { tr { td {} th scope="col" { "Network" } th scope="col" { "Security" } th scope="col" { "Total" } } }
                    tbody {
                        tr { th scope="row" { "As client" } td.num { (v.client_network) } td.num { (v.client_security) } td.num { (v.client) } }
                        tr { th scope="row" { "As server" } td.num { (v.server_network) } td.num { (v.server_security) } td.num { (v.server) } }
                    }
                }
                p.small { "Settled score (after decays) " (score.settled) "; points accumulated over the run " (count(score.accumulated)) "." }
            }
        }
        section {
            h2 { "Score breakdown" }
            @if score.contributions.is_empty() { p.empty { "No alert contributes now." } }
            @else {
                table {
                    thead { tr { th scope="col" { "Alert" } th scope="col" { "Side" } th scope="col" { "Kind" } th scope="col" { "Points" } th scope="col" { "Peer" } th scope="col" { "Since" } th scope="col" { "Leaving" } } }
                    tbody { @for c in &score.contributions { tr {
                        td { a href={ "/ui/alerts/" (enc(&c.alert_key)) } { (type_label(&c.alert_type)) } }
                        td { @if c.as_client { "client" } @else { "server" } }
                        td { @match c.kind { ScoreKind::Network => "network", ScoreKind::Security => "security" } }
                        td.num { (c.points) }
                        td { @if let Some(p) = c.peer { (host_link(&p.to_string())) } }
                        td { (time(c.since_ns)) }
                        td { @if let Some(l) = c.leaving_since_ns { "since " (time(l)) } }
                    } } }
                }
                @if score.omitted_points > 0 { p.small { (score.omitted_points) " points not itemised (bounded list)." } }
            }
        }
        section.grid2 {
            div {
                h2 #hs-title { "Score raised over time" }
                p.small { "Points of the host's alerts by the period they were first seen in; the band (DES) is over their sum." }
                div.chart #host-score data-src={ "/ui/hosts/" (enc(&ipt)) "/series.json" (query(&[("vlan", &vlan), ("metric", "score")])) } data-kind="host-score" role="img" aria-labelledby="hs-title" {}
            }
            div {
                h2 #ht-title { "Traffic over time" }
                p.small { "Bytes of the host's flows (kept in memory) by the period they started in." }
                div.chart #host-traffic data-src={ "/ui/hosts/" (enc(&ipt)) "/series.json" (query(&[("vlan", &vlan), ("metric", "traffic")])) } data-kind="host-traffic" role="img" aria-labelledby="ht-title" {}
            }
        }
        section {
            h2 { "Alerts" }
            (super::alerts::table(&alerts.items, false))
            p { a href=(super::alerts::host_alerts_link(&ipt)) { "all " (alerts.total) " alerts of " (ipt) } }
        }
        @if let Some(p) = active {
            section {
                h2 { "Flows" }
                (flows::table(&p.items))
                p { a href={ "/ui/flows" (query(&[("host", &ipt)])) } { "all " (p.total) " flows of " (ipt) } }
            }
        }
    };
    layout::page(&format!("Host {ipt}"), "/ui/hosts", &s, &body)
}

/// Query of the series data.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SeriesQuery {
    /// VLAN.
    pub vlan: String,
    /// `score` (client and server) or `traffic` (sent and received).
    pub metric: String,
}

/// Columns of a host chart: times (s) and, per series, values with the DES band of the first.
#[derive(Debug, Default, Serialize)]
pub struct HostSeriesData {
    /// Seconds since the epoch.
    pub t: Vec<u64>,
    /// Series names.
    pub names: Vec<String>,
    /// Values per series.
    pub values: Vec<Vec<f64>>,
    /// Band low of the first series.
    pub lower: Vec<f64>,
    /// Band high of the first series.
    pub upper: Vec<f64>,
    /// Anomalous values of the first series (else null).
    pub anomaly: Vec<Option<f64>>,
}

/// `GET /ui/hosts/{ip}/series.json`: the host's score raised per period (its side's points of
/// the alerts first seen in it, as client and as server) or its traffic per period (bytes of
/// its flows by their start, sent and received), with the DES band of their sum — rebuilt from
/// the stored alerts and flows, so a replay's out-of-order records still chart in time order.
pub async fn series(
    State(ui): State<Ui>,
    Path(ip): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Response {
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return crate::api::problem::Problem::bad_request("not an IP address").into_response();
    };
    let traffic = q.metric == "traffic";
    let (rows, des) = {
        let st = ui.api.engine.read();
        let mut rows: Vec<(u64, [u64; 2])> = Vec::new();
        if traffic {
            let ipb = netwarden_api::flow::ip_to_bytes(ip);
            for f in st.flows.active().chain(st.flows.ended()) {
                let (c2s, s2c) = (
                    f.c2s.as_ref().map_or(0, |d| d.bytes),
                    f.s2c.as_ref().map_or(0, |d| d.bytes),
                );
                if f.client_ip == ipb {
                    rows.push((f.first_seen_ns, [c2s, s2c]));
                } else if f.server_ip == ipb {
                    rows.push((f.first_seen_ns, [s2c, c2s]));
                }
            }
        } else {
            for r in st.analysis.store.iter() {
                let a = &r.alert;
                let (client, server) = crate::alerts::store::filter::alert_hosts(a);
                if client == Some(ip) {
                    rows.push((a.first_seen_ns, [u64::from(a.client_score), 0]));
                }
                if server == Some(ip) {
                    rows.push((a.first_seen_ns, [0, u64::from(a.server_score)]));
                }
            }
        }
        (rows, st.analysis.config.des)
    };
    let (_, periods) = super::overview::periods(&rows);
    let band =
        super::overview::with_band(periods.iter().map(|(t, v)| (*t, (v[0] + v[1]) as f64)), des);
    let out = HostSeriesData {
        t: periods.iter().map(|p| p.0 / 1_000_000_000).collect(),
        names: if traffic {
            vec!["bytes sent".into(), "bytes received".into()]
        } else {
            vec!["points as client".into(), "points as server".into()]
        },
        values: (0..2)
            .map(|i| periods.iter().map(|p| p.1[i] as f64).collect())
            .collect(),
        lower: band.iter().map(|b| b.lower).collect(),
        upper: band.iter().map(|b| b.upper).collect(),
        anomaly: band.iter().map(|b| b.anomaly.then_some(b.value)).collect(),
    };
    Json(out).into_response()
}
