//! Generic webhook: a JSON batch, POSTed. When the Secret holds a signing secret (key
//! `<key>.signing-secret` next to the target), the body is signed like GitHub's webhooks:
//! `X-Netwarden-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`; a receiver
//! recomputes it over the raw body and compares in constant time.

use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

use super::{Batch, Context, now_ns, rfc3339, severity_name};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-netwarden-signature";

/// The body.
pub fn payload(batch: &Batch, ctx: &Context) -> Value {
    let alerts: Vec<Value> = batch
        .alerts
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
            if let Some(map) = v.as_object_mut() {
                map.insert("severity_name".into(), severity_name(a.severity).into());
                if let Some(link) = ctx.link(a) {
                    map.insert("link".into(), link.into());
                }
            }
            v
        })
        .collect();
    json!({
        "source": "netwarden",
        "version": 1,
        "sent_at": rfc3339(now_ns()),
        "suppressed": batch.suppressed,
        "alerts": alerts,
    })
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
