//! Notifications: alerts to Slack, webhooks, Teams, Discord, Telegram, email and syslog, from
//! `NotificationEndpoint` specs (files in standalone, `nw-config` in a cluster; see
//! docs/notifications.md).
//!
//! Owns, per endpoint: the filters ([`filter`]), the dedup of an alert key within a window
//! ([`dedup`]), a bounded queue and a worker task that batches, rate-limits ([`bucket`]),
//! formats ([`format`]) and delivers ([`deliver`]) with retries (exponential backoff with
//! jitter) and timeouts. Targets come from Secrets ([`secrets`]) and pass the SSRF guard
//! ([`guard`]). [`Notifier::on_alert`] never blocks: a slow or hanging receiver fills its own
//! queue, whose overflow is counted and dropped; the engine never waits for a receiver.
//! Must not: log or return a target, token or password (errors name the endpoint and the
//! Secret reference only).

pub mod bucket;
pub mod cli;
pub mod dedup;
pub mod deliver;
pub mod filter;
pub mod format;
pub mod guard;
pub mod metrics;
pub mod secrets;
pub mod tap;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use netwarden_api::alert::Alert;
use netwarden_api::bus::ConfigSnapshot;
use netwarden_api::crd::ConfigEntry;
use netwarden_api::crd::{EndpointType, NotificationEndpointSpec};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use dedup::Dedup;
use deliver::DeliveryError;
use deliver::smtp::{Smtp, SmtpConfig};
use filter::{NamespaceLookup, NoNamespaces};
use format::{Batch, Context};
use guard::Guard;
use metrics::{DropLabels, EndpointLabels, NotifyMetrics};
use secrets::SecretStore;

/// Default dedup window (ntopng: one notification per alert and recipient per hour).
pub const DEFAULT_DEDUP: Duration = Duration::from_secs(3600);
/// Default queue bound per endpoint.
pub const DEFAULT_QUEUE: usize = 1024;
/// Default timeout of one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default delivery attempts per notification.
pub const DEFAULT_ATTEMPTS: u32 = 5;

/// The engine-wide notification settings (`--secrets-dir`, `--public-url`, …).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Where `secretKeyRef`s are read.
    pub secrets: SecretStore,
    /// Base URL for links back to alerts.
    pub public_url: Option<url::Url>,
    /// The SSRF guard.
    pub guard: Guard,
    /// The SMTP relay for email endpoints.
    pub smtp: Option<SmtpConfig>,
    /// Telegram Bot API base (`https://api.telegram.org`).
    pub telegram_api: url::Url,
    /// Queue bound per endpoint.
    pub queue: usize,
    /// Dedup window (zero: no dedup).
    pub dedup_window: Duration,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// Attempts per notification (1: no retry).
    pub attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// This engine's name in syslog messages.
    pub hostname: String,
    /// CA certificates trusted besides the platform's (`--notify-ca-file`).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            secrets: SecretStore::default(),
            public_url: None,
            guard: Guard::default(),
            smtp: None,
            telegram_api: url::Url::parse("https://api.telegram.org")
                .unwrap_or_else(|_| unreachable!("a valid URL")),
            queue: DEFAULT_QUEUE,
            dedup_window: DEFAULT_DEDUP,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            hostname: default_hostname(),
            extra_roots: Vec::new(),
        }
    }
}

/// The notifier could not be set up (TLS, `--smtp-url`, `--smtp-from`).
#[derive(Debug, thiserror::Error)]
#[error("notifications: {0}")]
pub struct SetupError(pub String);

/// `$POD_NAME`, else `$HOSTNAME`, else `-` (the syslog HOSTNAME field).
pub fn default_hostname() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "-".into())
}

/// What the workers share.
struct Shared {
    config: NotifyConfig,
    guard: Arc<Guard>,
    http: deliver::http::HttpClient,
    smtp: Option<Smtp>,
    metrics: Arc<NotifyMetrics>,
    ctx: Context,
}

/// One endpoint in force.
struct Endpoint {
    entry: ConfigEntry<NotificationEndpointSpec>,
    labels: EndpointLabels,
    tx: mpsc::Sender<Alert>,
    dedup: Dedup,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The notifier: endpoints in force and their workers. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
    namespaces: Arc<RwLock<Arc<dyn NamespaceLookup>>>,
    endpoints: Arc<Mutex<BTreeMap<String, Endpoint>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("endpoints", &self.endpoint_names())
            .finish_non_exhaustive()
    }
}

/// `namespace/name` of an entry.
pub fn endpoint_name<S>(entry: &ConfigEntry<S>) -> String {
    format!(
        "{}/{}",
        entry.namespace.as_deref().unwrap_or("-"),
        entry.name
    )
}

/// The lowercase name of a type.
pub const fn type_name(t: EndpointType) -> &'static str {
    match t {
        EndpointType::Slack => "slack",
        EndpointType::Webhook => "webhook",
        EndpointType::Teams => "teams",
        EndpointType::Discord => "discord",
        EndpointType::Telegram => "telegram",
        EndpointType::Email => "email",
        EndpointType::Syslog => "syslog",
    }
}

impl Notifier {
    /// A notifier with no endpoint yet, counting into `metrics`.
    pub fn new(config: NotifyConfig, metrics: Arc<NotifyMetrics>) -> Result<Self, SetupError> {
        let guard = Arc::new(config.guard.clone());
        let http = deliver::http::client(config.timeout, &config.extra_roots)
            .map_err(|e| SetupError(e.reason))?;
        let smtp = config
            .smtp
            .as_ref()
            .map(|s| Smtp::new(s, config.timeout, &config.extra_roots))
            .transpose()
            .map_err(|e| SetupError(e.reason))?;
        let ctx = Context {
            public_url: config.public_url.clone(),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                guard,
                http,
                smtp,
                metrics,
                ctx,
            }),
            namespaces: Arc::new(RwLock::new(Arc::new(NoNamespaces))),
            endpoints: Arc::default(),
        })
    }

    /// Uses `lookup` for the `namespaces` filters from now on (the cluster's directory), in
    /// this notifier and every clone of it.
    pub fn set_namespaces(&self, lookup: Arc<dyn NamespaceLookup>) {
        *self
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner) = lookup;
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<NotifyMetrics> {
        &self.shared.metrics
    }

    /// The endpoints in force (name and spec), each with whether its secret can be read now.
    /// The secret itself is read only to tell, then dropped: it is never returned or logged.
    pub async fn in_force(&self) -> Vec<(String, NotificationEndpointSpec, bool)> {
        let entries: Vec<(String, NotificationEndpointSpec)> = self
            .lock()
            .iter()
            .map(|(name, ep)| (name.clone(), ep.entry.spec.clone()))
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for (name, spec) in entries {
            let r = &spec.secret_key_ref;
            let set = self
                .shared
                .config
                .secrets
                .get(&r.name, &r.key)
                .await
                .is_ok();
            out.push((name, spec, set));
        }
        out
    }

    /// `namespace/name` of the endpoints in force.
    pub fn endpoint_names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Endpoint>> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `entries` in force: new ones start, changed ones restart (their queue is dropped),
    /// gone ones stop, unchanged ones keep their queue and dedup memory. Must run in a tokio
    /// runtime.
    pub fn apply(&self, entries: Vec<ConfigEntry<NotificationEndpointSpec>>) {
        let mut endpoints = self.lock();
        let wanted: BTreeMap<String, ConfigEntry<NotificationEndpointSpec>> = entries
            .into_iter()
            .map(|e| (endpoint_name(&e), e))
            .collect();
        endpoints.retain(|name, ep| wanted.get(name) == Some(&ep.entry));
        for (name, entry) in wanted {
            if endpoints.contains_key(&name) {
                continue;
            }
            let labels = EndpointLabels {
                endpoint: name.clone(),
                kind: type_name(entry.spec.endpoint_type).to_owned(),
            };
            let (tx, rx) = mpsc::channel(self.shared.config.queue.max(1));
            let task = tokio::spawn(worker(
                Arc::clone(&self.shared),
                entry.spec.clone(),
                labels.clone(),
                rx,
            ));
            info!(endpoint = %name, kind = labels.kind, "notification endpoint in force");
            endpoints.insert(
                name,
                Endpoint {
                    entry,
                    labels,
                    tx,
                    dedup: Dedup::new(self.shared.config.dedup_window, dedup::MAX_KEYS),
                    task,
                },
            );
        }
        self.shared
            .metrics
            .endpoints
            .set(i64::try_from(endpoints.len()).unwrap_or(i64::MAX));
    }

    /// Applies the `NotificationEndpoint`s of every snapshot `snapshots` yields, until it
    /// closes or `shutdown` turns true. The current snapshot is applied before this returns, so
    /// alerts raised right after (a pcap replay) are not missed.
    pub fn follow(
        &self,
        mut snapshots: watch::Receiver<Arc<ConfigSnapshot>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        fn endpoints(s: &ConfigSnapshot) -> Vec<ConfigEntry<NotificationEndpointSpec>> {
            s.notification_endpoints.values().cloned().collect()
        }
        let current = Arc::clone(&snapshots.borrow_and_update());
        self.apply(endpoints(&current));
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = snapshots.changed() => if changed.is_err() { break },
                    stop = shutdown.changed() => if stop.is_err() || *shutdown.borrow() { break },
                }
                let current = Arc::clone(&snapshots.borrow_and_update());
                this.apply(endpoints(&current));
            }
            this.apply(Vec::new());
        })
    }

    /// Offers `alert` to every endpoint: filtered, deduplicated, queued. Never waits: a full
    /// queue drops the alert and counts it.
    pub fn on_alert(&self, alert: &Alert) {
        let now = Instant::now();
        let metrics = &self.shared.metrics;
        let namespaces = Arc::clone(
            &self
                .namespaces
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut endpoints = self.lock();
        for ep in endpoints.values_mut() {
            if !filter::matches(&ep.entry.spec.filters, alert, namespaces.as_ref()) {
                continue;
            }
            if !ep.dedup.first(&alert.key, now) {
                metrics.deduplicated.get_or_create(&ep.labels).inc();
                continue;
            }
            if ep.tx.try_send(alert.clone()).is_err() {
                metrics
                    .dropped
                    .get_or_create(&DropLabels {
                        endpoint: ep.labels.endpoint.clone(),
                        reason: "queue_full".into(),
                    })
                    .inc();
                debug!(endpoint = %ep.labels.endpoint, "notification queue full; alert dropped");
            }
            let depth = ep.tx.max_capacity() - ep.tx.capacity();
            metrics
                .queue_depth
                .get_or_create(&ep.labels)
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }
}

/// A uniform random fraction in [0, 1) (jitter).
fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay before retry `attempt` (1-based): `base · 2^(attempt-1)`, capped, with "equal
/// jitter" (half fixed, half random) so receivers recovering are not hit in lockstep.
pub fn backoff(base: Duration, max: Duration, attempt: u32, fraction: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped / 2 + capped.mul_f64(fraction.clamp(0.0, 1.0) / 2.0)
}

async fn worker(
    shared: Arc<Shared>,
    spec: NotificationEndpointSpec,
    labels: EndpointLabels,
    mut rx: mpsc::Receiver<Alert>,
) {
    let (max, linger) = spec.batching.as_ref().map_or((1, Duration::ZERO), |b| {
        (
            b.max_alerts.max(1) as usize,
            Duration::from_secs(u64::from(b.linger_seconds)),
        )
    });
    let mut bucket = spec
        .rate_limit
        .as_ref()
        .map(|r| bucket::TokenBucket::new(r.per_minute, r.burst, Instant::now()));
    let metrics = &shared.metrics;
    let mut suppressed = 0u64;
    while let Some(first) = rx.recv().await {
        let mut alerts = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while alerts.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(a)) => alerts.push(a),
                Ok(None) | Err(_) => break,
            }
        }
        metrics
            .queue_depth
            .get_or_create(&labels)
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        let n = alerts.len() as u64;
        if let Some(b) = &mut bucket
            && !b.take(Instant::now())
        {
            suppressed += n;
            metrics
                .dropped
                .get_or_create(&DropLabels {
                    endpoint: labels.endpoint.clone(),
                    reason: "rate_limited".into(),
                })
                .inc_by(n);
            continue;
        }
        let batch = Batch { alerts, suppressed };
        match deliver_with_retries(&shared, &spec, &labels, &batch).await {
            Ok(()) => {
                suppressed = 0;
                metrics.sent.get_or_create(&labels).inc_by(n);
                metrics.messages.get_or_create(&labels).inc();
                debug!(endpoint = %labels.endpoint, alerts = n, "notification sent");
            }
            Err(e) => {
                metrics.failed.get_or_create(&labels).inc_by(n);
                warn!(endpoint = %labels.endpoint, kind = labels.kind, alerts = n, error = %e, "notification failed");
            }
        }
    }
}

async fn deliver_with_retries(
    shared: &Shared,
    spec: &NotificationEndpointSpec,
    labels: &EndpointLabels,
    batch: &Batch,
) -> Result<(), DeliveryError> {
    let attempts = shared.config.attempts.max(1);
    let mut attempt = 1;
    loop {
        match deliver(shared, spec, batch).await {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable && attempt < attempts => {
                let delay = backoff(
                    shared.config.backoff,
                    shared.config.max_backoff,
                    attempt,
                    random_fraction(),
                );
                debug!(endpoint = %labels.endpoint, attempt, error = %e, retry_in = ?delay, "notification attempt failed");
                shared.metrics.retries.get_or_create(labels).inc();
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One delivery attempt of `batch` to the endpoint of `spec`.
async fn deliver(
    shared: &Shared,
    spec: &NotificationEndpointSpec,
    batch: &Batch,
) -> Result<(), DeliveryError> {
    let reference = &spec.secret_key_ref;
    let target = shared
        .config
        .secrets
        .get(&reference.name, &reference.key)
        .await?;
    let ctx = &shared.ctx;
    let json = |v: serde_json::Value| {
        serde_json::to_vec(&v).map_err(|e| DeliveryError::permanent(format!("encode: {e}")))
    };
    let post = |url, body, headers: Vec<(&'static str, String)>| async move {
        deliver::http::post_json(&shared.http, &shared.guard, &url, body, &headers).await
    };
    match spec.endpoint_type {
        EndpointType::Slack => {
            let url = deliver::http::parse_target(&target)?;
            post(url, json(format::slack::payload(batch, ctx))?, vec![]).await
        }
        EndpointType::Teams => {
            let url = deliver::http::parse_target(&target)?;
            post(url, json(format::teams::payload(batch, ctx))?, vec![]).await
        }
        EndpointType::Discord => {
            let url = deliver::http::parse_target(&target)?;
            post(url, json(format::discord::payload(batch, ctx))?, vec![]).await
        }
        EndpointType::Webhook => {
            let url = deliver::http::parse_target(&target)?;
            let body = json(format::webhook::payload(batch, ctx))?;
            let signing = shared
                .config
                .secrets
                .get_optional(
                    &reference.name,
                    &format!("{}.signing-secret", reference.key),
                )
                .await?;
            let headers = signing
                .map(|s| {
                    (
                        format::webhook::SIGNATURE_HEADER,
                        format::webhook::signature(s.expose().as_bytes(), &body),
                    )
                })
                .into_iter()
                .collect();
            post(url, body, headers).await
        }
        EndpointType::Telegram => {
            let t = format::telegram::parse_target(&target).ok_or_else(|| {
                DeliveryError::permanent("the telegram target is not <bot token>:<chat id>")
            })?;
            let mut url = shared.config.telegram_api.clone();
            url.path_segments_mut()
                .map_err(|()| DeliveryError::permanent("bad --telegram-api-url"))?
                .pop_if_empty()
                .push(&format!("bot{}", t.token.expose()))
                .push("sendMessage");
            post(
                url,
                json(format::telegram::payload(batch, ctx, &t.chat_id))?,
                vec![],
            )
            .await
        }
        EndpointType::Email => {
            let smtp = shared.smtp.as_ref().ok_or_else(|| {
                DeliveryError::permanent("email endpoints need --smtp-url and --smtp-from")
            })?;
            smtp.send(
                &target,
                &format::email::subject(batch),
                format::email::body(batch, ctx),
            )
            .await
        }
        EndpointType::Syslog => {
            let t = deliver::syslog::parse_target(&target)?;
            let now = format::now_ns();
            let messages: Vec<String> = batch
                .alerts
                .iter()
                .map(|a| format::syslog::message(a, ctx, t.payload, &shared.config.hostname, now))
                .collect();
            deliver::syslog::send(
                &shared.guard,
                shared.http.tls(),
                &t,
                &messages,
                shared.config.timeout,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(b, m, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(b, m, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(b, m, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(b, m, 30, 1.0), Duration::from_secs(60));
        let f = random_fraction();
        assert!((0.0..1.0).contains(&f));
    }
}
