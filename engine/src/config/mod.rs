//! Live configuration: the engine follows `nw-config` (DESIGN.md section 6) and applies it
//! to the running analysis without a restart.
//!
//! Owns: watching the bucket ([`watch_config`] over NATS KV in a cluster, over a `MemoryKv`
//! fed from `--config DIR` in standalone — one code path), compiling `AlertExclusion` entries
//! ([`exclusions::compile`]) and swapping them into the analysis under the state lock (a batch
//! sees the old or the new exclusions, never a mix), writing this replica's `nw-status` reports
//! (`AlertExclusion.<ns>.<name>.<replica>`), and keeping the latest validated snapshot for the
//! consumers still to come (`NotificationEndpoint`, `ServicePolicy`: [`LiveConfig::snapshot`]).
//! Must not: crash or stop on a bad entry (it is left out and reported `applied: false`), or
//! reset scores and alerts (only the exclusions change; alerts raised before stay).

pub mod exclusions;
pub mod files;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{ConfigSnapshot, Kv, NatsBus, NatsKv, StatusReporter, watch_config};
use netwarden_api::names::{CONFIG_BUCKET, STATUS_BUCKET};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Engine;
use exclusions::PodLookup;

/// The kinds this engine reports on in `nw-status`.
pub const REPORTED_KINDS: [&str; 1] = ["AlertExclusion"];

/// `$POD_NAME` (StatefulSet pod, from the downward API), else `$HOSTNAME`, else `engine`.
pub fn default_replica_name() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "engine".into())
}

/// Metrics of the live configuration (`netwarden_engine_config_*`).
#[derive(Debug, Default)]
pub struct ConfigMetrics {
    /// Snapshots applied.
    pub snapshots: Counter,
    /// Entries rejected (malformed or invalid).
    pub rejected: Counter,
    /// Exclusion rules in force.
    pub exclusions: Gauge,
    /// Status reports written.
    pub reports_written: Counter,
    /// Status writes or deletes that failed.
    pub report_errors: Counter,
    /// Times the `nw-config` watch had to be (re)opened after a failure.
    pub watch_restarts: Counter,
}

impl ConfigMetrics {
    /// Registers under `netwarden_engine_config_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine_config");
        r.register(
            "snapshots",
            "nw-config snapshots applied",
            self.snapshots.clone(),
        );
        r.register(
            "rejected",
            "nw-config entries ignored because malformed or invalid",
            self.rejected.clone(),
        );
        r.register(
            "exclusions",
            "AlertExclusion rules in force",
            self.exclusions.clone(),
        );
        r.register(
            "reports_written",
            "nw-status reports written",
            self.reports_written.clone(),
        );
        r.register(
            "report_errors",
            "nw-status writes or deletes that failed",
            self.report_errors.clone(),
        );
        r.register(
            "watch_restarts",
            "Times the nw-config watch was reopened after a failure",
            self.watch_restarts.clone(),
        );
    }
}

/// The running follower.
pub struct LiveConfig {
    /// The latest validated snapshot (empty until the first one arrives).
    pub snapshot: watch::Receiver<Arc<ConfigSnapshot>>,
    /// Snapshots applied so far (standalone waits for the first before replaying).
    pub applied: watch::Receiver<u64>,
    /// The follower task.
    pub task: tokio::task::JoinHandle<()>,
    /// Standalone: the in-process `nw-config` and `nw-status` (the sensor's policy follower
    /// reads the same entries).
    pub buckets: Option<(netwarden_api::bus::MemoryKv, netwarden_api::bus::MemoryKv)>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("applied", &*self.applied.borrow())
            .field("standalone", &self.buckets.is_some())
            .finish_non_exhaustive()
    }
}

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Applies snapshots and reports them.
struct Follower {
    engine: Engine,
    replica: String,
    reporter: Option<StatusReporter>,
    metrics: Arc<ConfigMetrics>,
    pods: Arc<dyn PodLookup + Send + Sync>,
    pods_changed: Option<watch::Receiver<u64>>,
    snapshot: watch::Sender<Arc<ConfigSnapshot>>,
    applied: watch::Sender<u64>,
}

impl Follower {
    /// Applies `snapshot` now: compile, swap, report. Returns when to apply again (an
    /// exclusion's expiry, wall clock ns).
    async fn apply(&mut self, config: &dyn Kv, snapshot: &ConfigSnapshot) -> Option<u64> {
        let compiled =
            exclusions::compile(&snapshot.alert_exclusions, self.pods.as_ref(), wall_ns());
        let rules = compiled.exclusions.rules.len();
        self.engine
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .analysis
            .exclusions = compiled.exclusions;
        let policies = crate::servicemap::policy::compile(&snapshot.service_policies);
        self.engine
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .servicemap
            .set_policies(policies);
        self.metrics
            .exclusions
            .set(i64::try_from(rules).unwrap_or(i64::MAX));
        self.metrics.snapshots.inc();
        info!(
            exclusions = rules,
            notification_endpoints = snapshot.notification_endpoints.len(),
            service_policies = snapshot.service_policies.len(),
            "live configuration applied"
        );
        if let Some(reporter) = &mut self.reporter {
            let valid = |k: &str| snapshot.alert_exclusions.contains_key(k);
            let outcome = reporter.sync(config, compiled.reports, valid).await;
            self.metrics.reports_written.inc_by(outcome.written as u64);
            self.metrics.report_errors.inc_by(outcome.failed as u64);
        }
        self.snapshot.send_replace(Arc::new(snapshot.clone()));
        self.applied.send_modify(|n| *n += 1);
        compiled.next_expiry_ns
    }

    /// Follows `config`, reporting to `status`, until `shutdown` or the end of the watch (an
    /// error: the caller reopens; a fresh reporter rewrites every report then).
    async fn follow(
        &mut self,
        config: &dyn Kv,
        status: Arc<dyn Kv>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> netwarden_api::Result<()> {
        self.reporter = Some(StatusReporter::new(status, &self.replica, &REPORTED_KINDS));
        let updates = watch_config(config).await?;
        let mut updates = std::pin::pin!(updates);
        let mut current = ConfigSnapshot::default();
        let mut wake: Option<u64> = None;
        let mut pods_changed = self.pods_changed.clone();
        loop {
            let sleep = wake.map_or(Duration::from_secs(3600), |at| {
                Duration::from_nanos(at.saturating_sub(wall_ns())).max(Duration::from_millis(10))
            });
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                }
                update = updates.next() => {
                    let Some((snapshot, rejected)) = update else {
                        return Err(netwarden_api::Error::Kv {
                            bucket: CONFIG_BUCKET.into(),
                            reason: "the watch ended".into(),
                        });
                    };
                    self.metrics.rejected.inc_by(rejected.len() as u64);
                    if let Some(reporter) = &mut self.reporter {
                        reporter.note_rejected(&rejected);
                    }
                    current = snapshot;
                    wake = self.apply(config, &current).await;
                }
                () = tokio::time::sleep(sleep), if wake.is_some() => {
                    wake = self.apply(config, &current).await;
                }
                () = next_change(&mut pods_changed) => {
                    // Pods came or went: selectors resolve to other addresses. Bursts of
                    // directory changes are folded by a short pause.
                    if current.alert_exclusions.values().any(|e| e.spec.pod_selector.is_some()) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        wake = self.apply(config, &current).await;
                    }
                }
            }
        }
    }
}

/// Follows `config` (reports to `status` as `replica`) until `shutdown`. Used as is in
/// standalone (in-process buckets) and by [`spawn_nats`] in a cluster.
pub fn spawn(
    engine: Engine,
    config: Arc<dyn Kv>,
    status: Arc<dyn Kv>,
    replica: &str,
    metrics: Arc<ConfigMetrics>,
    pods: Arc<dyn PodLookup + Send + Sync>,
    shutdown: watch::Receiver<bool>,
) -> LiveConfig {
    let (mut follower, snapshot, applied) = follower(engine, replica, metrics, pods, None);
    let mut shutdown = shutdown;
    let task = tokio::spawn(async move {
        if let Err(e) = follower
            .follow(config.as_ref(), status, &mut shutdown)
            .await
        {
            warn!(error = %e, "live configuration stopped");
        }
    });
    LiveConfig {
        snapshot,
        applied,
        task,
        buckets: None,
    }
}

/// Completes on the next change of `rx`; never when there is none (or it closed).
async fn next_change(rx: &mut Option<watch::Receiver<u64>>) {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
}

fn follower(
    engine: Engine,
    replica: &str,
    metrics: Arc<ConfigMetrics>,
    pods: Arc<dyn PodLookup + Send + Sync>,
    pods_changed: Option<watch::Receiver<u64>>,
) -> (
    Follower,
    watch::Receiver<Arc<ConfigSnapshot>>,
    watch::Receiver<u64>,
) {
    let (snapshot, snapshot_rx) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let (applied, applied_rx) = watch::channel(0);
    let follower = Follower {
        engine,
        replica: replica.to_owned(),
        reporter: None,
        metrics,
        pods,
        pods_changed,
        snapshot,
        applied,
    };
    (follower, snapshot_rx, applied_rx)
}

/// Standalone mode: mirrors `dir` into an in-process `nw-config` ([`files::ConfigDir`]),
/// applies what it holds before returning (a replay starts with its exclusions in force), then
/// follows it (the directory is polled every [`files::POLL_EVERY`]) until `shutdown`.
/// Reports go to an in-process `nw-status` and the log.
pub async fn start_dir(
    engine: Engine,
    dir: &std::path::Path,
    metrics: Arc<ConfigMetrics>,
    shutdown: watch::Receiver<bool>,
) -> LiveConfig {
    let config = netwarden_api::bus::MemoryKv::default();
    let mut source = files::ConfigDir::new(dir, config.clone());
    source.sync().await;
    let has_entries = !config.entries(">").await.unwrap_or_default().is_empty();
    let status = netwarden_api::bus::MemoryKv::default();
    let mut live = spawn(
        engine,
        Arc::new(config.clone()),
        Arc::new(status.clone()),
        &default_replica_name(),
        metrics,
        Arc::new(exclusions::NoDirectory),
        shutdown.clone(),
    );
    if has_entries {
        let mut applied = live.applied.clone();
        if tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|n| *n >= 1))
            .await
            .is_err()
        {
            warn!("the configuration directory was not applied within 10 s");
        }
    }
    tokio::spawn(source.watch(shutdown));
    live.buckets = Some((config, status));
    live
}

/// Cluster mode: opens `nw-config` and `nw-status` on the NATS connection of `bus` and follows them until
/// `shutdown`, reopening with backoff (1 s doubling to 30 s) when NATS is not there yet or the
/// watch breaks. The exclusions in force stay while it retries. Pod selectors resolve through
/// `pods`; exclusions that have one are recompiled when `pods_changed` ticks.
pub fn spawn_nats(
    engine: Engine,
    bus: &NatsBus,
    replica: &str,
    metrics: Arc<ConfigMetrics>,
    pods: Arc<dyn PodLookup + Send + Sync>,
    pods_changed: Option<watch::Receiver<u64>>,
    shutdown: watch::Receiver<bool>,
) -> LiveConfig {
    let (mut follower, snapshot, applied) =
        follower(engine, replica, metrics.clone(), pods, pods_changed);
    let mut shutdown = shutdown;
    let client = bus.client().clone();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let opened = async {
                let config = NatsKv::open(client.clone(), CONFIG_BUCKET).await?;
                let status = NatsKv::open(client.clone(), STATUS_BUCKET).await?;
                netwarden_api::Result::Ok((config, status))
            };
            let result = match opened.await {
                Ok((config, status)) => {
                    backoff = Duration::from_secs(1);
                    follower
                        .follow(&config, Arc::new(status), &mut shutdown)
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) => {
                    metrics.watch_restarts.inc();
                    warn!(error = %e, retry_in = ?backoff, "nw-config unavailable; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
    LiveConfig {
        snapshot,
        applied,
        task,
        buckets: None,
    }
}
