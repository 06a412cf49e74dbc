//! Slack incoming webhook: Block Kit blocks inside a coloured attachment per alert (the colour
//! bar is the severity), `text` as the notification fallback. Limits from Slack's Block Kit
//! reference: header text 150 characters, section text 3000, 10 fields.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Batch, Context, bounded, parties, severity_hex, severity_name};

/// Alerts shown per message; the rest are counted in the text.
pub const MAX_ALERTS: usize = 20;

/// Escapes `&`, `<` and `>` (Slack's mrkdwn control characters).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook body.
pub fn payload(batch: &Batch, ctx: &Context) -> Value {
    let mut text = escape(&batch.headline());
    let hidden = batch.alerts.len().saturating_sub(MAX_ALERTS);
    if hidden > 0 {
        let _ = write!(text, " ({hidden} more not shown)");
    }
    if batch.suppressed > 0 {
        let _ = write!(
            text,
            " ({} alerts held back by the rate limit)",
            batch.suppressed
        );
    }
    let attachments: Vec<Value> = batch
        .alerts
        .iter()
        .take(MAX_ALERTS)
        .map(|a| {
            let p = parties(a);
            let field = |name: &str, value: &str| {
                json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(&bounded(value, 500)))})
            };
            let mut fields = vec![
                field("Severity", severity_name(a.severity)),
                field("Score", &a.score.to_string()),
                field("Attacker", p.attacker.as_deref().unwrap_or("-")),
                field("Victim", p.victim.as_deref().unwrap_or("-")),
                field("Entity", &a.entity_value),
                field("Observation point", &a.observation_point),
            ];
            fields.truncate(10);
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": bounded(&format!("{}: {}", severity_name(a.severity), a.alert_type), 150)}}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&bounded(&a.message, 2900))}, "fields": fields}),
            ];
            if let Some(link) = ctx.link(a) {
                blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open alert"}, "url": link}]}));
            }
            json!({"color": severity_hex(a.severity), "fallback": escape(&bounded(&a.message, 300)), "blocks": blocks})
        })
        .collect();
    json!({"text": text, "attachments": attachments})
}
