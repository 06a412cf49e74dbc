//! Discord webhook: one embed per alert (at most 10 per message, Discord's limit), coloured by
//! severity. Limits from Discord's embed reference: title 256, description 4096, field value
//! 1024 characters. `allowed_mentions` is empty so text from traffic cannot ping anyone.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Batch, Context, bounded, parties, rfc3339, severity_name, severity_rgb};

/// Embeds per message (Discord's limit).
pub const MAX_EMBEDS: usize = 10;

/// The webhook body.
pub fn payload(batch: &Batch, ctx: &Context) -> Value {
    let embeds: Vec<Value> = batch
        .alerts
        .iter()
        .take(MAX_EMBEDS)
        .map(|a| {
            let p = parties(a);
            let mut e = json!({
                "title": bounded(&format!("{}: {}", severity_name(a.severity), a.alert_type), 256),
                "description": bounded(&a.message, 4000),
                "color": severity_rgb(a.severity),
                "timestamp": rfc3339(a.last_seen_ns),
                "fields": [
                    {"name": "Score", "value": a.score.to_string(), "inline": true},
                    {"name": "Attacker", "value": p.attacker.unwrap_or_else(|| "-".into()), "inline": true},
                    {"name": "Victim", "value": p.victim.unwrap_or_else(|| "-".into()), "inline": true},
                    {"name": "Entity", "value": bounded(&a.entity_value, 1000)},
                    {"name": "Observation point", "value": bounded(&a.observation_point, 1000)},
                ],
            });
            if let Some(link) = ctx.link(a) {
                e["url"] = link.into();
            }
            e
        })
        .collect();
    let mut content = bounded(&batch.headline(), 1800);
    let hidden = batch.alerts.len().saturating_sub(MAX_EMBEDS);
    if hidden > 0 {
        let _ = write!(content, " ({hidden} more not shown)");
    }
    if batch.suppressed > 0 {
        let _ = write!(
            content,
            " ({} alerts held back by the rate limit)",
            batch.suppressed
        );
    }
    json!({
        "username": "Netwarden",
        "content": content,
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}
