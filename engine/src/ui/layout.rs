//! The page shell (header, navigation, live status) and the small formatting helpers every
//! page uses. Every value goes through maud, which escapes it; URLs built here
//! percent-encode their parameters.

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use netwarden_api::alert::Severity;

use super::assets;
use super::session::Session;

/// Navigation entries: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/ui/alerts", "Alerts"),
    ("/ui/hosts", "Hosts"),
    ("/ui/flows", "Flows"),
    ("/ui/servicemap", "Service map"),
    ("/ui/points", "Observation points"),
];

/// Percent-encodes a URL query value or path segment (RFC 3986 unreserved characters pass).
pub fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&enc(v));
    }
    out
}

/// Bytes in B, KB, MB, GB (powers of 1000).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// An integer with thousands separators (`1,024`).
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A flow-time instant (ns) as `YYYY-MM-DD HH:MM:SS` UTC; `—` for 0.
pub fn time(ns: u64) -> String {
    if ns == 0 {
        return "—".to_owned();
    }
    let t = crate::notify::format::rfc3339(ns);
    // 2026-11-27T16:00:00.000000Z → 2026-11-27 16:00:00
    t.get(..19).map_or(t.clone(), |s| s.replace('T', " "))
}

/// A duration in ns as `1 h 2 min`, `3.2 s`.
pub fn duration(ns: u64) -> String {
    let s = ns as f64 / 1e9;
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// The lower-case name of a severity.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        Severity::Info => "info",
        Severity::Notice => "notice",
        Severity::Warning => "warning",
        Severity::Error => "error",
        Severity::Critical => "critical",
        Severity::Emergency => "emergency",
    }
}

/// A severity badge.
pub fn severity(s: Severity) -> Markup {
    let name = severity_name(s);
    html! { span class={ "badge sev-" (name) } { (name) } }
}

/// The alert-type name as words (`tls_selfsigned_certificate` → `tls selfsigned certificate`),
/// or the risk catalogue's name when it has one.
pub fn type_label(t: &str) -> String {
    netwarden_api::risk::by_key(t).map_or_else(|| t.replace('_', " "), |r| r.name.to_owned())
}

/// A link to a host's page.
pub fn host_link(ip: &str) -> Markup {
    html! { a href={ "/ui/hosts/" (enc(ip)) } { (ip) } }
}

/// Previous/next links of a paged table.
pub fn pager(
    base: &str,
    params: &[(&str, &str)],
    offset: usize,
    limit: usize,
    total: usize,
) -> Markup {
    let with = |o: usize| {
        let o = o.to_string();
        let mut p: Vec<(&str, &str)> = params
            .iter()
            .filter(|(k, _)| *k != "offset")
            .copied()
            .collect();
        p.push(("offset", &o));
        format!("{base}{}", query(&p))
    };
    let end = (offset + limit).min(total);
    html! {
        nav.pager aria-label="Pages" {
            span { (count(if total == 0 { 0 } else { offset as u64 + 1 })) "–" (count(end as u64)) " of " (count(total as u64)) }
            @if offset > 0 { a href=(with(offset.saturating_sub(limit))) rel="prev" { "← previous" } }
            @if end < total { a href=(with(end)) rel="next" { "next →" } }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="dark light";
            title { (title) " · Netwarden" }
            link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
            link rel="stylesheet" href=(assets::url("uplot.css"));
            link rel="stylesheet" href=(assets::url("app.css"));
            script src=(assets::url("uplot.js")) defer {}
            script type="module" src=(assets::url("app.js")) {}
        }
    }
}

/// A full page: header, navigation (with `active` marked), the session's logout form, `body`.
pub fn page(title: &str, active: &str, session: &Session, body: &Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Netwarden" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in NAV {
                                li { a href=(href) aria-current=[(*href == active).then_some("page")] { (label) } }
                            }
                        }
                    }
                    span.live #live role="status" aria-live="polite" { "live: connecting…" }
                    form.logout method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        span.who { (session.who) }
                        button type="submit" { "Log out" }
                    }
                }
                main #main data-csrf=(session.csrf) { (body) }
            }
        }
    };
    markup.into_response()
}

/// A page without navigation (login).
pub fn bare(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main #main { (body) } }
        }
    }
}

/// An error page with `status`.
pub fn error_page(status: StatusCode, detail: &str) -> Response {
    let body = html! {
        section {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
            p.error role="alert" { (detail) }
            p { a href="/" { "Back to the overview" } }
        }
    };
    let mut r = bare("Error", &body).into_response();
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(1024), "1,024");
        assert_eq!(count(7), "7");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(time(1_764_230_400_000_000_000), "2025-11-27 08:00:00");
        assert_eq!(enc("a b&c=<d>"), "a%20b%26c%3D%3Cd%3E");
        assert_eq!(
            query(&[("a", "1"), ("b", ""), ("c", "x y")]),
            "?a=1&c=x%20y"
        );
    }

    #[test]
    fn markup_escapes_network_strings() {
        let evil = "\"><img src=x onerror=alert(1)><script>window.__xss=1</script>";
        let m = host_link(evil).into_string();
        assert!(!m.contains("<script>") && !m.contains("<img"), "{m}");
        assert!(m.contains("&lt;script&gt;"));
    }
}
