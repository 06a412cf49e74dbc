//! Message formats, one file per destination. Pure: a [`Batch`] of alerts in, a payload out
//! (JSON built from typed `serde_json` values, never by pasting strings; text escaped for the
//! markup of its destination). Alert text comes from traffic (host names, SNI…) and is treated
//! as untrusted: it is escaped and bounded here.

pub mod discord;
pub mod ecs;
pub mod email;
pub mod slack;
pub mod syslog;
pub mod teams;
pub mod telegram;
pub mod webhook;

use netwarden_api::alert::{Alert, Severity};

/// What one notification carries.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The alerts, oldest first.
    pub alerts: Vec<Alert>,
    /// Alerts left out by the rate limit since the last notification sent.
    pub suppressed: u64,
}

impl Batch {
    /// The highest severity in the batch.
    pub fn highest(&self) -> Severity {
        self.alerts
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or(Severity::None)
    }

    /// A one-line summary (`3 alerts, highest: critical`).
    pub fn headline(&self) -> String {
        match self.alerts.as_slice() {
            [one] => format!(
                "{} {} alert: {}",
                severity_name(one.severity),
                one.alert_type,
                one.entity_value
            ),
            many => format!(
                "{} alerts, highest: {}",
                many.len(),
                severity_name(self.highest())
            ),
        }
    }
}

/// What formats share: where the API is reachable from the reader (`--public-url`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Base URL of the engine's API as the people notified reach it.
    pub public_url: Option<url::Url>,
}

impl Context {
    /// A link to the alert (`<public-url>/api/v2/alerts/<key>`), when a public URL is set.
    pub fn link(&self, alert: &Alert) -> Option<String> {
        let mut url = self.public_url.clone()?;
        {
            let mut segments = url.path_segments_mut().ok()?;
            segments.pop_if_empty().extend(["api", "v2", "alerts"]);
            segments.push(&alert.key);
        }
        Some(url.into())
    }
}

/// The lowercase name of a severity.
pub const fn severity_name(s: Severity) -> &'static str {
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

/// The colour of a severity, as 0xRRGGBB.
pub const fn severity_rgb(s: Severity) -> u32 {
    match s {
        Severity::None | Severity::Info => 0x0043_9FE0,
        Severity::Notice => 0x002E_B886,
        Severity::Warning => 0x00EC_B22E,
        Severity::Error => 0x00E0_1E5A,
        Severity::Critical | Severity::Emergency => 0x0080_0000,
    }
}

/// `#rrggbb`.
pub fn severity_hex(s: Severity) -> String {
    format!("#{:06x}", severity_rgb(s))
}

/// Who attacked and who was hit, as text (`10.0.0.1:4444`, or the host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parties {
    /// The attacker, if the alert names one.
    pub attacker: Option<String>,
    /// The victim, if the alert names one.
    pub victim: Option<String>,
}

/// The attacker and victim of an alert.
pub fn parties(alert: &Alert) -> Parties {
    let r = alert.roles;
    let (client, server) = match &alert.flow {
        Some(f) => (
            f.client_addr().map(|a| format!("{a}:{}", f.client_port)),
            f.server_addr().map(|a| format!("{a}:{}", f.server_port)),
        ),
        None => (Some(alert.entity_value.clone()), None),
    };
    let pick = |c: bool, s: bool| {
        if c {
            client.clone()
        } else if s {
            server.clone()
        } else {
            None
        }
    };
    Parties {
        attacker: pick(r.client_attacker, r.server_attacker).map(|s| bounded(&s, 256)),
        victim: pick(r.client_victim, r.server_victim).map(|s| bounded(&s, 256)),
    }
}

/// `text` cut to at most `max` characters (with `…` when cut).
pub fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Nanoseconds since the epoch as RFC 3339 UTC with microseconds (`2026-11-27T16:00:00.000000Z`).
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Now, in ns since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netwarden_api::alert::{AlertState, Entity, Roles};
    use netwarden_api::flow::{FlowRecord, ip_to_bytes};

    /// A flow alert: 10.0.0.5:40000 attacks 192.168.1.9:443.
    pub(crate) fn flow_alert() -> Alert {
        Alert {
            key: "flow:1:tls_selfsigned_certificate".into(),
            alert_type: "tls_selfsigned_certificate".into(),
            entity: Entity::Flow,
            entity_value: "10.0.0.5:40000 -> 192.168.1.9:443 tcp".into(),
            severity: Severity::from_score(120),
            score: 120,
            client_score: 100,
            server_score: 20,
            roles: Roles {
                client_attacker: true,
                server_victim: true,
                ..Roles::default()
            },
            observation_point: "node-a/eth0".into(),
            first_seen_ns: 1_764_259_200_000_000_000,
            last_seen_ns: 1_764_259_201_500_000_000,
            count: 1,
            state: AlertState::Past,
            message: "self-signed <certificate> & \"friends\"".into(),
            flow: Some(Box::new(FlowRecord {
                client_ip: ip_to_bytes("10.0.0.5".parse().unwrap()),
                server_ip: ip_to_bytes("192.168.1.9".parse().unwrap()),
                client_port: 40000,
                server_port: 443,
                l4_proto: 6,
                ..FlowRecord::default()
            })),
            anomaly: None,
        }
    }

    #[test]
    fn time_and_parties() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_764_259_201_500_000_000),
            "2025-11-27T16:00:01.500000Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        let p = parties(&flow_alert());
        assert_eq!(p.attacker.as_deref(), Some("10.0.0.5:40000"));
        assert_eq!(p.victim.as_deref(), Some("192.168.1.9:443"));
        let ctx = Context {
            public_url: Some("https://nw.example/base/".parse().unwrap()),
        };
        assert_eq!(
            ctx.link(&flow_alert()).unwrap(),
            "https://nw.example/base/api/v2/alerts/flow:1:tls_selfsigned_certificate"
        );
        assert_eq!(bounded("abcdef", 4), "abc…");
    }
}
