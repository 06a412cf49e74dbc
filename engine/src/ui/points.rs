//! Observation points (sensor interfaces and flow exporters) with their totals and top hosts,
//! the pipeline's health counters, and a read-only view of the configuration in effect
//! (analysis settings, local networks, checks switched on or off, alert exclusions).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::layout::{self, bytes, count, enc, host_link, time};
use super::{SessionExt, Ui};
use crate::api::points::PointQuery;
use crate::api::query::ApiQuery;

/// `GET /ui/points`.
pub async fn list(State(ui): State<Ui>, axum::Extension(s): SessionExt) -> Response {
    let names: Vec<String> = match crate::api::points::list(
        State(ui.api.clone()),
        ApiQuery(PointQuery {
            limit: Some("100".into()),
            ..PointQuery::default()
        }),
    )
    .await
    {
        Ok(Json(p)) => p.items.into_iter().map(|p| p.name).collect(),
        Err(p) => return super::problem_page(&p),
    };
    let mut details = Vec::new();
    for n in names {
        if let Ok(Json(d)) =
            crate::api::points::detail(State(ui.api.clone()), axum::extract::Path(n)).await
        {
            details.push(d);
        }
    }
    let health = super::overview::health_rows(&ui);
    let settings = ui.settings.get();
    let body = {
        let st = ui.api.engine.read();
        let cfg = &st.analysis.config;
        let ex = &st.analysis.exclusions;
        html! {
            h1 { "Observation points" }
            @if details.is_empty() { p.empty { "No observation point has reported flows yet." } }
            @for d in &details {
                section.point {
                    h2 { (d.point.name) }
                    dl.facts {
                        dt { "Sensor / interface" } dd { (d.point.sensor) " / " (d.point.interface) }
                        @if !d.point.exporter.is_empty() { dt { "Exporter" } dd { (d.point.exporter) " (domain " (d.point.domain_id) ")" } }
                        dt { "Totals" } dd { (count(d.point.hosts)) " hosts, " (count(d.point.flows)) " flows, " (bytes(d.point.bytes)) ", " (count(d.point.packets)) " packets" }
                        dt { "Seen" } dd { (time(d.point.first_seen_ns)) " – " (time(d.point.last_seen_ns)) }
                        dt { "Flows kept" } dd { (count(d.flows_kept)) " (" a href={ "/ui/flows?observation_point=" (enc(&d.point.name)) } { "see them" } ")" }
                    }
                    div.grid2 {
                        table.compact {
                            caption { "Top hosts" }
                            tbody { @for h in &d.top_hosts { tr { td { (host_link(&h.ip.to_string())) } td.num { (bytes(h.bytes)) } } } }
                        }
                        table.compact {
                            caption { "Applications" }
                            tbody { @for p in d.l7_protocols.iter().take(10) { tr { td { (p.name) } td.num { (bytes(p.bytes)) } } } }
                        }
                    }
                }
            }
            section {
                h2 { "Pipeline health" }
                table.compact {
                    tbody { @for (n, v) in &health { tr { td { code { (n) } } td.num { (v) } } } }
                }
            }
            section {
                h2 { "Configuration in effect (read-only)" }
                dl.facts {
                    dt { "Local networks" } dd { @if cfg.checks.local_networks.is_empty() { "private ranges (default)" } @else { (cfg.checks.local_networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) } }
                    dt { "Checks switched on" } dd { @if cfg.checks.enable.is_empty() { "defaults" } @else { (cfg.checks.enable.join(", ")) } }
                    dt { "Checks switched off" } dd { @if cfg.checks.disable.is_empty() { "none" } @else { (cfg.checks.disable.join(", ")) } }
                    dt { "DES" } dd { "α " (cfg.des.alpha) ", β " (cfg.des.beta) ", ρ " (cfg.des.rho) }
                    dt { "Sampling" } dd { "hosts every " (cfg.host_sample_secs) " s, points and network every " (cfg.point_sample_secs) " s" }
                    dt { "Alerts kept" } dd { (count(cfg.max_alerts as u64)) " rows, " (cfg.max_alert_age_secs / 3600) " h" }
                    dt { "Exclusions written to" } dd { @match &settings.config_dir { Some(d) => { code { (d.display()) } }, None => { "nowhere: the UI shows AlertExclusion YAML to apply" } } }
                }
                h3 { "Alert exclusions (" (ex.rules.len()) ")" }
                @if ex.is_empty() { p.empty { "None." } }
                @for (name, spec) in &ex.rules {
                    details { summary { (name) } pre { (format!("{spec:#?}")) } }
                }
            }
        }
    };
    layout::page("Observation points", "/ui/points", &s, &body)
}
