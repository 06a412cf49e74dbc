//! Microsoft Teams workflow webhook ("Post to a channel when a webhook request is received"):
//! a `message` with one Adaptive Card (schema 1.4) per batch: a title coloured by the highest
//! severity, a fact set per alert, an "Open alert" action per alert when `--public-url` is set.

use serde_json::{Value, json};

use super::{Batch, Context, bounded, parties, severity_name};
use netwarden_api::alert::Severity;

/// Alerts shown per card.
pub const MAX_ALERTS: usize = 20;

/// Adaptive Card text colour of a severity.
const fn colour(s: Severity) -> &'static str {
    match s {
        Severity::None | Severity::Info => "Accent",
        Severity::Notice => "Good",
        Severity::Warning => "Warning",
        Severity::Error | Severity::Critical | Severity::Emergency => "Attention",
    }
}

/// The webhook body.
pub fn payload(batch: &Batch, ctx: &Context) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
        "color": colour(batch.highest()),
        "text": bounded(&format!("Netwarden: {}", batch.headline()), 300),
    })];
    let mut actions = Vec::new();
    for a in batch.alerts.iter().take(MAX_ALERTS) {
        let p = parties(a);
        body.push(json!({"type": "TextBlock", "wrap": true, "weight": "Bolder", "color": colour(a.severity), "separator": true,
            "text": bounded(&format!("{} ({}, score {})", a.alert_type, severity_name(a.severity), a.score), 300)}));
        body.push(json!({"type": "TextBlock", "wrap": true, "text": bounded(&a.message, 1000)}));
        body.push(json!({"type": "FactSet", "facts": [
            {"title": "Attacker", "value": p.attacker.unwrap_or_else(|| "-".into())},
            {"title": "Victim", "value": p.victim.unwrap_or_else(|| "-".into())},
            {"title": "Entity", "value": bounded(&a.entity_value, 300)},
            {"title": "Observation point", "value": bounded(&a.observation_point, 300)},
        ]}));
        if let Some(link) = ctx.link(a) {
            actions.push(json!({"type": "Action.OpenUrl", "title": bounded(&format!("Open {}", a.alert_type), 100), "url": link}));
        }
    }
    if batch.suppressed > 0 {
        body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true,
            "text": format!("{} alerts held back by the rate limit", batch.suppressed)}));
    }
    actions.truncate(5);
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            }
        }]
    })
}
