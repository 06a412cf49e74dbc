//! Email delivery over SMTP with lettre. The relay comes from the engine's configuration
//! (`--smtp-url`, lettre's URL syntax: `smtp://host:587?tls=required` for STARTTLS,
//! `smtps://host:465` for TLS, `smtp://host:25` for plain; user and password in the URL), not
//! from a namespace's Secret, so it is trusted and not passed through the SSRF guard. The
//! recipients come from the Secret (comma-separated addresses).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::DeliveryError;
use crate::notify::secrets::SecretValue;

/// The engine's SMTP settings.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The relay URL (may hold credentials: never logged).
    pub url: SecretValue,
    /// The From address.
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// A ready transport.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// Builds the transport (no connection yet); `extra_roots` (`--notify-ca-file`) are trusted
    /// for STARTTLS and TLS besides the system's roots.
    pub fn new(
        config: &SmtpConfig,
        timeout: Duration,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, DeliveryError> {
        let bad_url = || DeliveryError::permanent("--smtp-url is not a valid SMTP URL");
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose())
            .map_err(|_| bad_url())?
            .timeout(Some(timeout));
        if !extra_roots.is_empty() {
            let url = url::Url::parse(config.url.expose()).map_err(|_| bad_url())?;
            // With a CA file, the relay's certificate must chain to it (the system's roots
            // are not consulted for SMTP then).
            let mut params = TlsParameters::builder(url.host_str().unwrap_or_default().to_owned())
                .certificate_store(CertificateStore::None);
            for root in extra_roots {
                let cert = Certificate::from_der(root.to_vec())
                    .map_err(|e| DeliveryError::permanent(format!("--notify-ca-file: {e}")))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| DeliveryError::permanent(format!("SMTP TLS setup: {e}")))?;
            let mode = url
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            let tls = match (url.scheme(), mode.as_deref()) {
                ("smtps", _) => Some(Tls::Wrapper(params)),
                (_, Some("required")) => Some(Tls::Required(params)),
                (_, Some("opportunistic")) => Some(Tls::Opportunistic(params)),
                _ => None,
            };
            if let Some(tls) = tls {
                builder = builder.tls(tls);
            }
        }
        let transport = builder.build();
        let from = config
            .from
            .parse()
            .map_err(|e| DeliveryError::permanent(format!("--smtp-from: {e}")))?;
        Ok(Self { transport, from })
    }

    /// Sends one plain-text message to the comma-separated `recipients`.
    pub async fn send(
        &self,
        recipients: &SecretValue,
        subject: &str,
        body: String,
    ) -> Result<(), DeliveryError> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        let mut any = false;
        for to in recipients
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let to: Mailbox = to
                .parse()
                .map_err(|_| DeliveryError::permanent("a recipient is not an email address"))?;
            builder = builder.to(to);
            any = true;
        }
        if !any {
            return Err(DeliveryError::permanent("no recipient"));
        }
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| DeliveryError::permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(DeliveryError::permanent(format!("SMTP: {e}"))),
            Err(e) => Err(DeliveryError::retry(format!("SMTP: {e}"))),
        }
    }
}
