//! An alert as an Elastic Common Schema (ECS 8.x) document, for SIEMs that read ECS JSON from
//! syslog: `event.kind: alert`, `source`/`destination` for the flow's client and server,
//! `rule.name` the alert type, `netwarden.*` for what ECS has no field for.

use serde_json::{Value, json};

use super::{Context, parties, rfc3339, severity_name};
use netwarden_api::alert::Alert;
use netwarden_api::flow::proto;

/// ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// The ECS document of `alert`.
pub fn document(alert: &Alert, ctx: &Context) -> Value {
    let p = parties(alert);
    let mut doc = json!({
        "@timestamp": rfc3339(alert.last_seen_ns),
        "ecs": {"version": ECS_VERSION},
        "message": alert.message,
        "event": {
            "kind": "alert",
            "category": ["network", "intrusion_detection"],
            "type": ["info"],
            "id": alert.key,
            "code": alert.alert_type,
            "severity": alert.score,
            "start": rfc3339(alert.first_seen_ns),
            "end": rfc3339(alert.last_seen_ns),
            "dataset": "netwarden.alert",
            "module": "netwarden",
        },
        "rule": {"name": alert.alert_type},
        "observer": {"name": alert.observation_point, "product": "Netwarden", "type": "ids"},
        "netwarden": {
            "severity": severity_name(alert.severity),
            "score": alert.score,
            "client_score": alert.client_score,
            "server_score": alert.server_score,
            "entity": alert.entity.as_str(),
            "entity_value": alert.entity_value,
            "state": alert.state,
            "count": alert.count,
            "attacker": p.attacker,
            "victim": p.victim,
        },
    });
    if let Some(f) = &alert.flow {
        if let Some(ip) = f.client_addr() {
            doc["source"] = json!({"ip": ip.to_string(), "port": f.client_port});
        }
        if let Some(ip) = f.server_addr() {
            doc["destination"] = json!({"ip": ip.to_string(), "port": f.server_port});
        }
        doc["network"] = json!({"transport": proto::name(u8::try_from(f.l4_proto).unwrap_or(0)).to_ascii_lowercase()});
    } else if alert.entity == netwarden_api::alert::Entity::Host {
        doc["host"] = json!({"ip": [alert.entity_value]});
    }
    if let Some(link) = ctx.link(alert) {
        doc["event"]["url"] = link.into();
    }
    doc
}
