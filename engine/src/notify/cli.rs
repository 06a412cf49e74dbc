//! The notification flags shared by `run` and `standalone`.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::deliver::smtp::SmtpConfig;
use super::guard::Guard;
use super::secrets::{SecretStore, SecretValue};
use super::{NotifyConfig, SetupError};

impl std::str::FromStr for SecretValue {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// Notification settings (docs/notifications.md).
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Directory of mounted Secrets: a `secretKeyRef {name, key}` is read from
    /// `DIR/<name>/<key>` (the layout of a Secret volume mounted at `DIR/<name>`).
    #[arg(long, env = "NETWARDEN_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Base URL of this engine's API as people reach it, for links back to alerts.
    #[arg(long, env = "NETWARDEN_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// Let notification targets resolve to loopback, link-local (cloud metadata) and cluster
    /// addresses (the SSRF guard refuses them otherwise).
    #[arg(long, env = "NETWARDEN_NOTIFY_ALLOW_PRIVATE")]
    pub notify_allow_private: bool,
    /// Ranges allowed as notification targets despite the SSRF guard (comma-separated CIDRs).
    #[arg(long, value_delimiter = ',')]
    pub notify_allow_cidr: Vec<IpNet>,
    /// The cluster's own ranges (Pod and Service CIDRs), refused as notification targets.
    #[arg(long, value_delimiter = ',', env = "NETWARDEN_CLUSTER_CIDRS")]
    pub cluster_cidr: Vec<IpNet>,
    /// SMTP relay for email endpoints, lettre URL syntax (`smtp://user:pass@host:587?tls=required`).
    #[arg(long, env = "NETWARDEN_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretValue>,
    /// From address of notification emails.
    #[arg(long, env = "NETWARDEN_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// PEM file of CA certificates trusted besides the system's (HTTPS and syslog over TLS).
    #[arg(long, env = "NETWARDEN_NOTIFY_CA_FILE")]
    pub notify_ca_file: Option<PathBuf>,
    /// Telegram Bot API base URL.
    #[arg(long, default_value = "https://api.telegram.org")]
    pub telegram_api_url: url::Url,
    /// The same alert key is notified at most once per this many seconds (0: every time).
    #[arg(long, default_value_t = 3600)]
    pub notify_dedup_secs: u64,
    /// Alerts queued per endpoint at most (more are dropped and counted).
    #[arg(long, default_value_t = super::DEFAULT_QUEUE)]
    pub notify_queue: usize,
    /// Timeout of one delivery attempt, seconds.
    #[arg(long, default_value_t = 10)]
    pub notify_timeout_secs: u64,
    /// Delivery attempts per notification (exponential backoff with jitter between them).
    #[arg(long, default_value_t = super::DEFAULT_ATTEMPTS)]
    pub notify_attempts: u32,
}

impl NotifyArgs {
    /// The notifier configuration these flags ask for.
    pub fn config(&self) -> Result<NotifyConfig, SetupError> {
        let smtp = match (&self.smtp_url, &self.smtp_from) {
            (Some(url), Some(from)) => Some(SmtpConfig {
                url: url.clone(),
                from: from.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(SetupError("--smtp-url and --smtp-from go together".into()));
            }
        };
        let extra_roots = match &self.notify_ca_file {
            None => Vec::new(),
            Some(path) => {
                use rustls::pki_types::pem::PemObject as _;
                let bad = |e: &dyn std::fmt::Display| {
                    SetupError(format!("--notify-ca-file {}: {e}", path.display()))
                };
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| bad(&e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(&e))?;
                if certs.is_empty() {
                    return Err(bad(&"no certificate"));
                }
                certs
            }
        };
        Ok(NotifyConfig {
            extra_roots,
            secrets: SecretStore::new(self.secrets_dir.clone()),
            public_url: self.public_url.clone(),
            guard: Guard {
                allow_private: self.notify_allow_private,
                allow: self.notify_allow_cidr.clone(),
                cluster: self.cluster_cidr.clone(),
            },
            smtp,
            telegram_api: self.telegram_api_url.clone(),
            queue: self.notify_queue.max(1),
            dedup_window: Duration::from_secs(self.notify_dedup_secs),
            timeout: Duration::from_secs(self.notify_timeout_secs.max(1)),
            attempts: self.notify_attempts.max(1),
            ..NotifyConfig::default()
        })
    }
}
