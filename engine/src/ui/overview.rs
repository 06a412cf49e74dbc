//! The overview: is my network OK? The network's score now and over time with its DES band,
//! the few hosts that explain most of it (in words), alerts by severity over time, engaged
//! host alerts, top talkers and protocols, observation points and the pipeline's health
//! (drops, decode errors, evictions, lag).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Serialize;

use super::layout::{self, bytes, count, enc, host_link, severity, time};
use super::{SessionExt, Ui, explain, problem_page};
use crate::api::alerts::{AlertQuery, AlertSummary};
use crate::api::query::ApiQuery;
use crate::hosts::HostKey;

/// Hosts listed as explaining the score.
pub const TOP_SCORERS: usize = 5;
/// Rows of the top-talker and protocol tables.
pub const TOP_ROWS: usize = 8;
/// Words per explaining host.
pub const PHRASES_PER_HOST: usize = 3;
/// Pipeline health rows shown at most.
pub const MAX_HEALTH_ROWS: usize = 40;
/// Most periods in the score chart (the period widens to stay under it).
pub const MAX_PERIODS: u64 = 240;

/// Rows `(time ns, values)` summed per period of flow time, every period from the first row to
/// the last (empty ones as zeros), oldest first; the period (seconds) widens from 1 min so that
/// there are fewer than [`MAX_PERIODS`].
pub fn periods<const N: usize>(rows: &[(u64, [u64; N])]) -> (u64, Vec<(u64, [u64; N])>) {
    let (Some(min), Some(max)) = (
        rows.iter().map(|r| r.0).filter(|t| *t > 0).min(),
        rows.iter().map(|r| r.0).max(),
    ) else {
        return (60, Vec::new());
    };
    let span = (max - min) / 1_000_000_000;
    let mut secs = 60;
    while span / secs >= MAX_PERIODS {
        secs = match secs {
            60 => 300,
            300 => 900,
            900 => 3600,
            s => s * 2,
        };
    }
    let width = secs * 1_000_000_000;
    let first = min / width;
    let n = (max / width - first + 1) as usize;
    let mut out: Vec<(u64, [u64; N])> = (0..n as u64)
        .map(|i| ((first + i) * width, [0; N]))
        .collect();
    for (t, v) in rows.iter().filter(|r| r.0 > 0) {
        let slot = &mut out[(t / width - first) as usize].1;
        for (a, b) in slot.iter_mut().zip(v) {
            *a += b;
        }
    }
    (secs, out)
}

/// The DES forecast and band over `values`, one sample per period.
pub fn with_band(
    periods: impl Iterator<Item = (u64, f64)>,
    des: crate::anomaly::DesConfig,
) -> Vec<crate::alerts::SeriesSample> {
    let mut d = crate::anomaly::Des::new(des);
    periods
        .map(|(t_ns, v)| {
            let o = d.push(v);
            crate::alerts::SeriesSample {
                t_ns,
                value: o.value,
                forecast: o.forecast,
                lower: o.lower,
                upper: o.upper,
                anomaly: o.anomaly,
            }
        })
        .collect()
}

/// Score points raised per period of flow time — the sum of the scores of the alerts first
/// seen in it — with the DES forecast and band, oldest first; and the period in seconds.
/// Built from the stored alerts, so it is in flow-time order even when a replay delivers
/// records out of order (the live score only knows its current value).
pub fn score_raised(
    alerts: impl Iterator<Item = (u64, u32)>,
    des: crate::anomaly::DesConfig,
) -> (u64, Vec<crate::alerts::SeriesSample>) {
    let rows: Vec<(u64, [u64; 1])> = alerts.map(|(t, s)| (t, [u64::from(s)])).collect();
    let (secs, p) = periods(&rows);
    (
        secs,
        with_band(p.into_iter().map(|(t, v)| (t, v[0] as f64)), des),
    )
}

fn raised(ui: &Ui) -> (u64, Vec<crate::alerts::SeriesSample>) {
    let st = ui.api.engine.read();
    score_raised(
        st.analysis
            .store
            .iter()
            .map(|r| (r.alert.first_seen_ns, r.alert.score)),
        st.analysis.config.des,
    )
}

/// A host that explains part of the network's score.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// The host.
    pub key: HostKey,
    /// Its Kubernetes name, when the directory knows it.
    pub name: Option<String>,
    /// Its score now.
    pub score: u64,
    /// Why, in words.
    pub words: Vec<String>,
}

/// The hosts with the highest score now, with their words.
pub fn top_scorers(ui: &Ui, n: usize) -> Vec<Scorer> {
    let state = ui.api.engine.read();
    let now = state.analysis.now_ns;
    let scores = &state.analysis.scores;
    let mut all: Vec<(HostKey, u64)> = scores
        .hosts()
        .map(|(k, _)| (*k, scores.values(k, now).total))
        .filter(|(_, s)| *s > 0)
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    let dir = crate::directory::read(&ui.api.engine.directory);
    all.into_iter()
        .map(|(key, score)| {
            let (contributions, _) = scores
                .host(&key)
                .map(|h| h.breakdown(now))
                .unwrap_or_default();
            let words = explain::explain(
                &contributions,
                |k| {
                    state
                        .analysis
                        .store
                        .by_key(k)
                        .map(|a| a.alert.message.clone())
                },
                PHRASES_PER_HOST,
            );
            Scorer {
                key,
                name: dir
                    .get(key.ip)
                    .map(netwarden_api::directory::DirectoryEntry::display_name),
                score,
                words,
            }
        })
        .collect()
}

/// Counters of the pipeline's health from the metrics registry: drops, decode errors,
/// evictions, invalid records, lag (name with labels, value).
pub fn health_rows(ui: &Ui) -> Vec<(String, String)> {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &ui.api.registry).is_err() {
        return Vec::new();
    }
    let wanted = [
        "drop",
        "decode_error",
        "evict",
        "invalid",
        "lag",
        "overflow",
        "lost",
    ];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| {
            !name.contains("_bucket")
                && !name.contains("_sum")
                && !name.contains("_count{")
                && !name.ends_with("_count")
                && !name.ends_with("_created")
                && wanted.iter().any(|w| name.contains(w))
        })
        .take(MAX_HEALTH_ROWS)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// `GET /`.
pub async fn page(State(ui): State<Ui>, axum::Extension(s): SessionExt) -> Response {
    let engaged = match crate::api::alerts::list(
        State(ui.api.clone()),
        ApiQuery(AlertQuery {
            state: Some("engaged".into()),
            limit: Some("10".into()),
            sort: Some("-score".into()),
            ..AlertQuery::default()
        }),
    )
    .await
    {
        Ok(Json(p)) => p,
        Err(p) => return problem_page(&p),
    };
    let summary =
        match crate::api::alerts::summary(State(ui.api.clone()), ApiQuery(AlertQuery::default()))
            .await
        {
            Ok(Json(s)) => s,
            Err(p) => return problem_page(&p),
        };
    let scorers = top_scorers(&ui, TOP_SCORERS);
    let (period, series) = raised(&ui);
    let health = health_rows(&ui);
    let body = {
        let state = ui.api.engine.read();
        let now = state.analysis.now_ns;
        let total = state.analysis.scores.total.values(now);
        let mut talkers: Vec<_> = state.hosts.iter().collect();
        talkers.sort_by(|a, b| b.bytes().cmp(&a.bytes()).then_with(|| a.key.cmp(&b.key)));
        talkers.truncate(TOP_ROWS);
        let mut protocols = state.protocols.l7_rows();
        protocols.truncate(TOP_ROWS);
        let points = state.points.sorted();
        let verdict = if total.total == 0 {
            "Nothing wrong is scored now."
        } else if engaged.total > 0 {
            "Hosts have engaged alerts: look at who explains the score."
        } else {
            "Some flows were scored: see who explains the score."
        };
        html! {
            h1 { "Overview" }
            p.lead { (verdict) " Flow time: " time datetime=(crate::notify::format::rfc3339(now)) { (time(now)) } "." }
            section.cards aria-label="Totals" {
                div.card { h2 { "Network score" } p.big data-live="score" { (count(total.total)) }
                    p.small { "client " (count(total.client)) " · server " (count(total.server)) br;
                        "network " (count(total.client_network + total.server_network)) " · security " (count(total.client_security + total.server_security)) } }
                div.card { h2 { "Alerts" } p.big data-live="alerts" { (count(summary.total)) }
                    p.small { a href="/ui/alerts?state=engaged" { (count(summary.engaged)) " engaged host alerts" } } }
                div.card { h2 { "Hosts" } p.big data-live="hosts" { (count(state.hosts.len() as u64)) } p.small { a href="/ui/hosts" { "all hosts" } } }
                div.card { h2 { "Flows" } p.big data-live="flows" { (count(state.totals.flows)) }
                    p.small { (bytes(state.totals.bytes)) " · " (count(state.totals.packets)) " packets" } }
            }
            section.grid2 {
                div {
                    h2 #score-title { "Score raised over time" }
                    p.small { "Points of the alerts first seen in each " (period / 60) " min of flow time; the band is the Double Exponential Smoothing forecast ± its expected error; anomalies (outside the band) are marked." }
                    div.chart #score-chart data-src="/ui/overview.json" data-kind="score" role="img" aria-labelledby="score-title" {}
                    (score_table(&series))
                }
                div {
                    h2 #alerts-title { "Alerts by severity over time" }
                    p.small { "Alerts by the time they were first seen, per " (summary.bucket_secs / 60) " min." }
                    div.chart #alerts-chart data-src="/ui/overview.json" data-kind="alerts" role="img" aria-labelledby="alerts-title" {}
                    (severity_table(&summary))
                }
            }
            section {
                h2 { "Who explains the score" }
                @if scorers.is_empty() { p { "No host has a score now." } }
                @else {
                    ol.scorers {
                        @for sc in &scorers {
                            li {
                                strong { (host_link(&sc.key.ip.to_string())) }
                                @if let Some(n) = &sc.name { " (" (n) ")" }
                                " — score " (count(sc.score)) ": "
                                (sc.words.join("; "))
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Engaged host alerts" }
                (super::alerts::table(&engaged.items, false))
                @if engaged.total > engaged.items.len() { p { a href="/ui/alerts?state=engaged" { "all " (engaged.total) " engaged alerts" } } }
            }
            section.grid2 {
                div {
                    h2 { "Top talkers" }
                    table {
                        thead { tr { th scope="col" { "Host" } th scope="col" { "Sent" } th scope="col" { "Received" } th scope="col" { "Flows" } } }
                        tbody { @for h in &talkers { tr {
                            td { (host_link(&h.key.ip.to_string())) }
                            td.num { (bytes(h.bytes_sent)) } td.num { (bytes(h.bytes_rcvd)) } td.num { (count(h.flows())) }
                        } } }
                    }
                }
                div {
                    h2 { "Top protocols" }
                    table {
                        thead { tr { th scope="col" { "Protocol" } th scope="col" { "Bytes" } th scope="col" { "Flows" } } }
                        tbody { @for p in &protocols { tr {
                            td { a href={ "/ui/flows?l7=" (enc(&p.name)) } { (p.name) } }
                            td.num { (bytes(p.bytes)) } td.num { (count(p.flows)) }
                        } } }
                    }
                }
            }
            section.grid2 {
                div {
                    h2 { "Observation points" }
                    table {
                        thead { tr { th scope="col" { "Point" } th scope="col" { "Hosts" } th scope="col" { "Flows" } th scope="col" { "Bytes" } th scope="col" { "Last seen" } } }
                        tbody { @for p in &points { tr {
                            td { a href={ "/ui/flows?observation_point=" (enc(&p.name)) } { (p.name) } }
                            td.num { (count(p.hosts)) } td.num { (count(p.flows)) } td.num { (bytes(p.bytes)) } td { (time(p.last_seen_ns)) }
                        } } }
                    }
                }
                div {
                    h2 { "Pipeline health" }
                    p.small { "Drops, decode errors, evictions and lag of the sensor and engine (from " code { "/metrics" } "). Non-zero drops mean lost records." }
                    (health_table(&health))
                }
            }
        }
    };
    layout::page("Overview", "/", &s, &body)
}

/// The last samples of the score series as a table (the chart's text equivalent).
fn score_table(series: &[crate::alerts::SeriesSample]) -> Markup {
    let anomalies: Vec<_> = series.iter().filter(|s| s.anomaly).collect();
    html! {
        details {
            summary { (series.len()) " periods, " (anomalies.len()) " outside the band (table of the last 20)" }
            table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Score" } th scope="col" { "Expected" } th scope="col" { "Anomaly" } } }
                tbody { @for s in series.iter().rev().take(20) { tr {
                    td { (time(s.t_ns)) } td.num { (s.value) } td.num { (format!("{:.0}–{:.0}", s.lower, s.upper)) } td { @if s.anomaly { "yes" } }
                } } }
            }
        }
    }
}

fn severity_table(s: &AlertSummary) -> Markup {
    html! {
        table.compact {
            caption { "Alerts by severity" }
            tbody { @for (name, n) in &s.by_severity { tr {
                th scope="row" { a href={ "/ui/alerts?severity=" (enc(name)) } { (name) } } td.num { (count(*n)) }
            } } }
        }
    }
}

fn health_table(rows: &[(String, String)]) -> Markup {
    html! {
        table.compact {
            thead { tr { th scope="col" { "Counter" } th scope="col" { "Value" } } }
            tbody { @for (n, v) in rows {
                tr class=[(v != "0" && v != "0.0" && n.contains("drop")).then_some("warn")] { td { code { (n) } } td.num { (v) } }
            } }
        }
    }
}

/// The overview's chart data.
#[derive(Debug, Default, Serialize)]
pub struct OverviewData {
    /// Score samples: times (s), values, forecasts, band bounds, anomaly flags.
    pub score: ScoreSeries,
    /// Alerts per bucket: times (s) and counts per severity.
    pub alerts: AlertSeries,
}

/// Columns of the score chart.
#[derive(Debug, Default, Serialize)]
pub struct ScoreSeries {
    /// Seconds since the epoch.
    pub t: Vec<u64>,
    /// Score.
    pub value: Vec<f64>,
    /// DES forecast.
    pub forecast: Vec<f64>,
    /// Band low.
    pub lower: Vec<f64>,
    /// Band high.
    pub upper: Vec<f64>,
    /// Value when anomalous, else null.
    pub anomaly: Vec<Option<f64>>,
}

/// Columns of the alerts chart.
#[derive(Debug, Default, Serialize)]
pub struct AlertSeries {
    /// Bucket starts, seconds since the epoch.
    pub t: Vec<u64>,
    /// Counts per severity, one per bucket.
    pub severities: BTreeMap<String, Vec<u64>>,
}

/// `GET /ui/overview.json`.
pub async fn data(State(ui): State<Ui>) -> Response {
    let summary =
        match crate::api::alerts::summary(State(ui.api.clone()), ApiQuery(AlertQuery::default()))
            .await
        {
            Ok(Json(s)) => s,
            Err(p) => return p.into_response(),
        };
    let mut out = OverviewData::default();
    {
        let (_, series) = raised(&ui);
        for s in &series {
            out.score.t.push(s.t_ns / 1_000_000_000);
            out.score.value.push(s.value);
            out.score.forecast.push(s.forecast);
            out.score.lower.push(s.lower);
            out.score.upper.push(s.upper);
            out.score.anomaly.push(s.anomaly.then_some(s.value));
        }
    }
    let names: Vec<String> = summary.by_severity.keys().cloned().collect();
    for b in &summary.over_time {
        out.alerts.t.push(b.start_ns / 1_000_000_000);
        for n in &names {
            out.alerts
                .severities
                .entry(n.clone())
                .or_default()
                .push(b.by_severity.get(n).copied().unwrap_or(0));
        }
    }
    Json(out).into_response()
}

/// The severity badge of a severity name (for tables built from summaries).
pub fn severity_of(name: &str) -> Markup {
    if let Ok(s) = serde_json::from_value(serde_json::Value::String(name.to_owned())) {
        severity(s)
    } else {
        html! { (name) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_raised_sums_per_period_in_time_order() {
        let m = 60 * 1_000_000_000;
        let t0 = 1_764_230_400 * 1_000_000_000;
        // Out of order, a gap of two empty minutes.
        let rows = vec![
            (t0 + 3 * m + 5, 50),
            (t0 + 1, 10),
            (t0 + 2, 20),
            (t0 + 3 * m, 100),
        ];
        let (secs, s) = score_raised(rows.into_iter(), crate::anomaly::DesConfig::default());
        assert_eq!(secs, 60);
        let v: Vec<f64> = s.iter().map(|x| x.value).collect();
        assert_eq!(v, vec![30.0, 0.0, 0.0, 150.0]);
        assert_eq!(s[0].t_ns, t0);
        assert!(!s[0].anomaly, "the first period is warm-up");
        // A steady 10 points a minute, then 500: outside the band.
        let mut rows: Vec<(u64, u32)> = (0..20).map(|i| (t0 + i * m, 10)).collect();
        rows.push((t0 + 20 * m, 500));
        let (_, s) = score_raised(rows.into_iter(), crate::anomaly::DesConfig::default());
        assert!(s[..20].iter().all(|x| !x.anomaly) && s[20].anomaly);
        // A long span widens the period.
        let rows = vec![(t0, 1), (t0 + 3 * 86_400 * 1_000_000_000, 1)];
        let (secs, s) = score_raised(rows.into_iter(), crate::anomaly::DesConfig::default());
        assert!(
            secs > 900 && s.len() as u64 <= MAX_PERIODS,
            "{secs} {}",
            s.len()
        );
        assert!(
            score_raised(std::iter::empty(), crate::anomaly::DesConfig::default())
                .1
                .is_empty()
        );
    }
}
