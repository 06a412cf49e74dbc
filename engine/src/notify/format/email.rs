//! Email digest: one plain-text message per batch, the subject says how many alerts and the
//! highest severity, the body lists each alert with its attacker, victim, score and link.

use std::fmt::Write as _;

use super::{Batch, Context, bounded, parties, rfc3339, severity_name};

/// The subject line.
pub fn subject(batch: &Batch) -> String {
    bounded(&format!("[Netwarden] {}", batch.headline()), 200).replace(['\r', '\n'], " ")
}

/// The plain-text body.
pub fn body(batch: &Batch, ctx: &Context) -> String {
    let mut out = format!("Netwarden: {}\n", batch.headline());
    for (i, a) in batch.alerts.iter().enumerate() {
        let p = parties(a);
        let _ = write!(
            out,
            "\n{}. {} ({}, score {})\n   {}\n   attacker: {}\n   victim: {}\n   entity: {}\n   observation point: {}\n   last seen: {}\n",
            i + 1,
            a.alert_type,
            severity_name(a.severity),
            a.score,
            bounded(&a.message, 1000),
            p.attacker.as_deref().unwrap_or("-"),
            p.victim.as_deref().unwrap_or("-"),
            bounded(&a.entity_value, 300),
            bounded(&a.observation_point, 300),
            rfc3339(a.last_seen_ns),
        );
        if let Some(link) = ctx.link(a) {
            let _ = writeln!(out, "   {link}");
        }
    }
    if batch.suppressed > 0 {
        let _ = write!(
            out,
            "\n{} alerts were held back by the rate limit.\n",
            batch.suppressed
        );
    }
    out
}
