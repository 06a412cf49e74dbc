//! Interface policies: the sensor follows `nw-config` (DESIGN.md section 6) and starts or
//! stops live captures at runtime as `InterfacePolicy` entries for its node come and go.
//!
//! Owns: watching the bucket ([`netwarden_api::bus::watch_config`]), planning what this node
//! captures ([`plan::plan`]: node selector, interface names and globs, exclusions, maximum,
//! BPF compiled by libpcap, snaplen, promiscuous mode), running those captures
//! ([`captures::Captures`], the pipeline's capture loop per interface into one exporter), and
//! this node's `nw-status` reports (`InterfacePolicy._cluster.<name>.<node>`: applied, with what
//! it captures, or why not). Re-plans on every change and every [`REPLAN_EVERY`] (interfaces
//! appear and disappear, node labels change).
//! Must not: stop the sensor on a bad entry (it is reported `applied: false`), touch the
//! inputs given on the command line (`--interface`, `--netflow` run beside, unchanged).

pub mod captures;
pub mod node;
pub mod plan;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::bus::{Bus, Kv, NatsBus, NatsKv, StatusReporter, watch_config};
use netwarden_api::crd::{ConfigEntry, InterfacePolicySpec};
use netwarden_api::names::{CONFIG_BUCKET, DIRECTORY_BUCKET, STATUS_BUCKET};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::export::{self, ExportConfig, OverflowPolicy};
use crate::metrics::SensorMetrics;
use crate::pipeline::SensorConfig;
use captures::Captures;
use plan::NodeInfo;

/// How often the plan is recomputed without a configuration change.
pub const REPLAN_EVERY: Duration = Duration::from_secs(2);

/// Who this sensor is.
#[derive(Debug, Clone, Default)]
pub struct PolicyOptions {
    /// The node name: matched by nothing, but the reporter in `nw-status`.
    pub node: String,
    /// Node labels given inline (`k=v,k2=v2`).
    pub labels: Option<String>,
    /// A file of node labels, one `key=value` per line, read again at every re-plan.
    pub labels_file: Option<PathBuf>,
    /// The node's address (`status.hostIP`): its labels are read from the `nw-directory`
    /// entry the operator writes for the Node (at every re-plan, so relabelling a node takes
    /// effect without a restart). `labels` and `labels_file` override them key by key.
    pub host_ip: Option<IpAddr>,
}

/// Where `nw-config` and `nw-status` live.
pub enum Buckets {
    /// On the NATS server of this connection (opened, and reopened, with backoff).
    Nats(NatsBus),
    /// Given buckets (in-process in standalone mode and tests).
    Given {
        /// `nw-config`.
        config: Arc<dyn Kv>,
        /// `nw-status`.
        status: Arc<dyn Kv>,
    },
}

/// Metrics of the policy follower (`netwarden_sensor_policy_*`).
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    /// Interfaces captured for policies now.
    pub captures: Gauge,
    /// `nw-config` snapshots applied.
    pub snapshots: Counter,
    /// Entries ignored (malformed or invalid).
    pub rejected: Counter,
    /// Status reports written.
    pub reports_written: Counter,
    /// Status writes or deletes that failed.
    pub report_errors: Counter,
    /// Times the `nw-config` watch had to be reopened.
    pub watch_restarts: Counter,
}

impl PolicyMetrics {
    /// Registers under `netwarden_sensor_policy_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_sensor_policy");
        r.register(
            "captures",
            "Interfaces captured for InterfacePolicy entries",
            self.captures.clone(),
        );
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

struct Follower {
    options: PolicyOptions,
    captures: Captures,
    metrics: Arc<PolicyMetrics>,
    policies: BTreeMap<String, ConfigEntry<InterfacePolicySpec>>,
    /// `nw-directory`, when the node's labels come from it (`host_ip`).
    directory: Option<Arc<dyn Kv>>,
    /// What the last directory lookup found (logged when it changes, not every re-plan).
    directory_state: Option<Result<usize, String>>,
}

impl Follower {
    /// The node's labels in `nw-directory` (empty when unknown; why is logged on change).
    async fn directory_labels(&mut self) -> BTreeMap<String, String> {
        let (Some(ip), Some(directory)) = (self.options.host_ip, self.directory.as_ref()) else {
            return BTreeMap::new();
        };
        let key = netwarden_api::directory::directory_key(ip);
        let found = match directory.get(&key).await {
            Ok(Some(value)) => match netwarden_api::directory::parse_entry(&value) {
                Ok(entry) if entry.kind == netwarden_api::directory::EndpointKind::Node => {
                    Ok(entry.labels)
                }
                Ok(entry) => Err(format!("{key} is a {}, not a Node", entry.kind.as_str())),
                Err(e) => Err(format!("{key} does not parse: {e}")),
            },
            Ok(None) => Err(format!("no entry {key} (yet)")),
            Err(e) => Err(e.to_string()),
        };
        let state = found.as_ref().map(BTreeMap::len).map_err(Clone::clone);
        if self.directory_state.as_ref() != Some(&state) {
            match &state {
                Ok(n) => tracing::info!(%ip, labels = n, "node labels from nw-directory"),
                Err(why) => tracing::warn!(%ip, %why, "no node labels from nw-directory"),
            }
            self.directory_state = Some(state);
        }
        found.unwrap_or_default()
    }

    async fn replan(&mut self, config: &dyn Kv, reporter: &mut StatusReporter) {
        let mut labels = self.directory_labels().await;
        labels.extend(node::labels(
            self.options.labels.as_deref(),
            self.options.labels_file.as_deref(),
        ));
        let node = NodeInfo {
            name: self.options.node.clone(),
            labels,
        };
        let interfaces = node::interfaces();
        let available: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let mut plan = plan::plan(&self.policies, &node, &available, &node::compile_filter);
        self.captures.reconcile(&mut plan).await;
        self.metrics
            .captures
            .set(i64::try_from(self.captures.running().len()).unwrap_or(i64::MAX));
        let policies = &self.policies;
        let outcome = reporter
            .sync(config, plan.reports, |k| policies.contains_key(k))
            .await;
        self.metrics.reports_written.inc_by(outcome.written as u64);
        self.metrics.report_errors.inc_by(outcome.failed as u64);
    }

    async fn follow(
        &mut self,
        config: &dyn Kv,
        status: Arc<dyn Kv>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> netwarden_api::Result<()> {
        let mut reporter = StatusReporter::new(status, &self.options.node, &["InterfacePolicy"]);
        let updates = watch_config(config).await?;
        let mut updates = std::pin::pin!(updates);
        let mut tick = tokio::time::interval(REPLAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
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
                    self.metrics.snapshots.inc();
                    self.metrics.rejected.inc_by(rejected.len() as u64);
                    reporter.note_rejected(&rejected);
                    self.policies = snapshot.interface_policies;
                    tracing::info!(policies = self.policies.len(), "interface policies changed");
                    self.replan(config, &mut reporter).await;
                }
                _ = tick.tick() => self.replan(config, &mut reporter).await,
            }
        }
    }
}

/// Follows `InterfacePolicy` entries for this node until `shutdown`: captures start and stop
/// as they ask, records go to `bus` through an exporter of their own (the same sensor name,
/// shards and drop-when-full policy as a live `--interface`), and this node reports to
/// `nw-status`. With [`Buckets::Nats`] a missing server or a broken watch is retried with
/// backoff (1 s doubling to 30 s); the captures keep running meanwhile. Returns the records
/// exported once every capture has stopped and flushed.
pub async fn run(
    buckets: Buckets,
    options: PolicyOptions,
    sensor: SensorConfig,
    bus: Arc<dyn Bus>,
    metrics: Arc<SensorMetrics>,
    policy_metrics: Arc<PolicyMetrics>,
    shutdown: watch::Receiver<bool>,
) -> u64 {
    let export_config = ExportConfig {
        sensor_name: sensor.sensor_name.clone(),
        shards: sensor.shards,
        overflow: OverflowPolicy::Drop,
        queue_capacity: sensor.queue_capacity,
        outage_buffer_bytes: sensor.outage_buffer_bytes,
        ..ExportConfig::default()
    };
    let (sender, receiver) = export::queue(&export_config, Arc::clone(&metrics));
    let publisher = tokio::spawn(export::publish(receiver, bus, export_config));
    let mut follower = Follower {
        options,
        captures: Captures::new(Arc::new(sensor), metrics, sender),
        metrics: Arc::clone(&policy_metrics),
        policies: BTreeMap::new(),
        directory: None,
        directory_state: None,
    };
    let mut shutdown = shutdown;
    match buckets {
        Buckets::Given { config, status } => {
            if let Err(e) = follower
                .follow(config.as_ref(), status, &mut shutdown)
                .await
            {
                tracing::warn!(error = %e, "interface policies stopped");
            }
        }
        Buckets::Nats(nats) => {
            let mut backoff = Duration::from_secs(1);
            loop {
                let opened = async {
                    let config = NatsKv::open(nats.client().clone(), CONFIG_BUCKET).await?;
                    let status = NatsKv::open(nats.client().clone(), STATUS_BUCKET).await?;
                    let directory = match follower.options.host_ip {
                        Some(_) => Some(Arc::new(
                            NatsKv::open(nats.client().clone(), DIRECTORY_BUCKET).await?,
                        ) as Arc<dyn Kv>),
                        None => None,
                    };
                    netwarden_api::Result::Ok((config, status, directory))
                };
                let result = match opened.await {
                    Ok((config, status, directory)) => {
                        backoff = Duration::from_secs(1);
                        follower.directory = directory;
                        follower
                            .follow(&config, Arc::new(status), &mut shutdown)
                            .await
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        policy_metrics.watch_restarts.inc();
                        tracing::warn!(error = %e, retry_in = ?backoff, "nw-config unavailable; retrying");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    follower.captures.stop_all().await;
    policy_metrics.captures.set(0);
    drop(follower);
    match publisher.await {
        Ok(counters) => export::ExportCounters::get(&counters.records_exported),
        Err(e) => {
            tracing::warn!(error = %e, "policy exporter failed");
            0
        }
    }
}
