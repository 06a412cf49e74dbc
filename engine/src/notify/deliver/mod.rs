//! Delivery: the I/O edge of notifications. [`http`] for Slack, Teams, Discord, Telegram and
//! webhooks (to the address the SSRF guard checked, no redirects, no proxy, a timeout), [`smtp`] for
//! email (lettre, STARTTLS or TLS per `--smtp-url`), [`syslog`] for RFC 5424 over UDP or TCP.
//! Errors say whether a retry may help and never carry a secret (URLs are stripped: a Slack or
//! Telegram URL is itself the secret).

pub mod http;
pub mod smtp;
pub mod syslog;

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    /// What went wrong, without secrets.
    pub reason: String,
    /// Whether trying again later may succeed (timeouts, refused connections, 5xx, 429).
    pub retryable: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
        }
    }

    /// A failure a retry cannot fix (bad target, refused by the guard, 4xx).
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
        }
    }
}

impl From<crate::notify::guard::GuardError> for DeliveryError {
    fn from(e: crate::notify::guard::GuardError) -> Self {
        match e {
            crate::notify::guard::GuardError::Refused(r) => Self::permanent(r.to_string()),
            crate::notify::guard::GuardError::Resolve(r) => Self::retry(r),
        }
    }
}

impl From<crate::notify::secrets::SecretError> for DeliveryError {
    fn from(e: crate::notify::secrets::SecretError) -> Self {
        // A Secret may be created or mounted later: retry.
        Self::retry(e.to_string())
    }
}
