//! Syslog messages (RFC 5424 section 6): `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
//! [SD] MSG`, facility 4 (security/authorization), severity from the alert's, MSGID the alert
//! type, one SD element `netwarden@32473` (the example enterprise number of RFC 5612) with the
//! key, score and severity, and MSG either plain text or the ECS JSON document
//! ([`super::ecs`]). Over TCP each message is framed by octet counting (RFC 6587 section 3.4.1).

use netwarden_api::alert::{Alert, Severity};

use super::{Context, bounded, parties, rfc3339, severity_name};

/// Facility of every message (4: security/authorization messages).
pub const FACILITY: u8 = 4;

/// What MSG carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// The ECS JSON document.
    #[default]
    Ecs,
    /// One line of text.
    Plain,
}

/// RFC 5424 severity (0 emergency … 7 debug) of an alert severity.
pub const fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Emergency => 1,
        Severity::Critical => 2,
        Severity::Error => 3,
        Severity::Warning => 4,
        Severity::Notice => 5,
        Severity::Info => 6,
        Severity::None => 7,
    }
}

/// PRINTUSASCII without spaces, at most `max` characters, `-` when empty (RFC 5424 6.2).
fn header_field(s: &str, max: usize) -> String {
    let out: String = s.chars().filter(char::is_ascii_graphic).take(max).collect();
    if out.is_empty() { "-".into() } else { out }
}

/// Escapes `"`, `\` and `]` in a PARAM-VALUE (RFC 5424 6.3.3).
fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One message. `hostname` is the engine's (`-` when unknown); `now_ns` the send time.
pub fn message(
    alert: &Alert,
    ctx: &Context,
    payload: Payload,
    hostname: &str,
    now_ns: u64,
) -> String {
    let pri = u16::from(FACILITY) * 8 + u16::from(syslog_severity(alert.severity));
    let sd = format!(
        "[netwarden@32473 key=\"{}\" type=\"{}\" score=\"{}\" severity=\"{}\"]",
        param_value(&bounded(&alert.key, 512)),
        param_value(&bounded(&alert.alert_type, 128)),
        alert.score,
        severity_name(alert.severity),
    );
    let msg = match payload {
        Payload::Ecs => super::ecs::document(alert, ctx).to_string(),
        Payload::Plain => {
            let p = parties(alert);
            format!(
                "{} {} score={} attacker={} victim={} {}",
                severity_name(alert.severity),
                alert.alert_type,
                alert.score,
                p.attacker.as_deref().unwrap_or("-"),
                p.victim.as_deref().unwrap_or("-"),
                bounded(&alert.message, 1000).replace(['\r', '\n'], " "),
            )
        }
    };
    format!(
        "<{pri}>1 {} {} netwarden {} {} {sd} {msg}",
        rfc3339(now_ns),
        header_field(hostname, 255),
        std::process::id(),
        header_field(&alert.alert_type, 32),
    )
}

/// Octet-counting frame (RFC 6587 3.4.1): `MSG-LEN SP SYSLOG-MSG`.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::format::tests::flow_alert;

    #[test]
    fn rfc5424_shape() {
        let a = flow_alert();
        let m = message(&a, &Context::default(), Payload::Plain, "engine-0", 0);
        assert!(
            m.starts_with("<35>1 1970-01-01T00:00:00.000000Z engine-0 netwarden "),
            "{m}"
        );
        assert!(m.contains(
            " tls_selfsigned_certificate [netwarden@32473 key=\"flow:1:tls_selfsigned_certificate\""
        ));
        let ecs = message(&a, &Context::default(), Payload::Ecs, "", 0);
        let json = &ecs[ecs.find("] {").unwrap() + 2..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["source"]["ip"], "10.0.0.5");
        assert_eq!(v["event"]["kind"], "alert");
        assert!(frame("abc").starts_with(b"3 abc"));
        assert_eq!(param_value("a\"b]c\\"), "a\\\"b\\]c\\\\");
    }
}
