//! The live captures a policy asked for, started and stopped at runtime.
//!
//! Each capture is the pipeline's live capture loop (its own thread, flow table and
//! stop signal) feeding one shared export queue. Reconciling against a [`Plan`] stops the
//! captures that are no longer wanted or whose settings changed (their flow tables are flushed
//! on the way out, as at shutdown), and opens the new ones; an interface that cannot be opened,
//! or whose capture stopped on its own (the interface went away), is handed back so its
//! policy's report can say why.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::plan::{CaptureSpec, Plan};
use crate::capture::live::{LiveCapture, LiveOptions};
use crate::collect::listener::{Listener, ListenerConfig};
use crate::export::RecordSender;
use crate::metrics::SensorMetrics;
use crate::pipeline::SensorConfig;

struct Running {
    spec: CaptureSpec,
    stop: watch::Sender<bool>,
    job: tokio::task::JoinHandle<()>,
}

/// The captures this sensor runs for its policies.
pub struct Captures {
    config: Arc<SensorConfig>,
    metrics: Arc<SensorMetrics>,
    sender: RecordSender,
    running: BTreeMap<String, Running>,
    /// Interfaces that failed, with why, until the plan changes for them.
    failed: BTreeMap<String, (CaptureSpec, String)>,
    /// Flow listeners open for policies.
    listening: BTreeMap<SocketAddr, RunningListener>,
    /// Listener addresses that could not be bound, with why, until they leave the plan.
    listen_failed: BTreeMap<SocketAddr, String>,
    /// Listeners opened so far (each gets its own range of flow ids).
    listeners_opened: u64,
}

struct RunningListener {
    stop: watch::Sender<bool>,
    job: tokio::task::JoinHandle<crate::collect::listener::ListenerStats>,
}

impl std::fmt::Debug for Captures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captures")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .field("failed", &self.failed.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Captures {
    /// No capture yet; records go to `sender`.
    pub fn new(
        config: Arc<SensorConfig>,
        metrics: Arc<SensorMetrics>,
        sender: RecordSender,
    ) -> Self {
        Self {
            config,
            metrics,
            sender,
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
            listening: BTreeMap::new(),
            listen_failed: BTreeMap::new(),
            listeners_opened: 0,
        }
    }

    /// The flow listeners open.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listening.keys().copied().collect()
    }

    /// Opens the flow listeners of `plan` and closes the others; marks in `plan` the ones
    /// that could not be bound (retried when they leave the plan and come back).
    async fn reconcile_listeners(&mut self, plan: &mut Plan) {
        let stale: Vec<SocketAddr> = self
            .listening
            .keys()
            .filter(|a| !plan.listeners.contains_key(*a))
            .copied()
            .collect();
        for address in stale {
            if let Some(l) = self.listening.remove(&address) {
                let _ = l.stop.send(true);
                let _ = l.job.await;
                tracing::info!(%address, "policy flow listener closed");
            }
        }
        self.listen_failed
            .retain(|a, _| plan.listeners.contains_key(a));
        let wanted: Vec<SocketAddr> = plan
            .listeners
            .keys()
            .filter(|a| !self.listening.contains_key(*a) && !self.listen_failed.contains_key(*a))
            .copied()
            .collect();
        for address in wanted {
            let config = ListenerConfig {
                address,
                collector: crate::collect::CollectorConfig {
                    sensor: self.config.sensor_name.clone(),
                    // Disjoint flow ids per listener (the high bits), away from `run --netflow`'s.
                    flow_id_base: (0x8000 + self.listeners_opened) << 48,
                    ..self.config.listener.collector.clone()
                },
                ..self.config.listener.clone()
            };
            match Listener::bind(config) {
                Ok(listener) => {
                    self.listeners_opened += 1;
                    let (stop, stopped) = watch::channel(false);
                    let (_, job) = crate::pipeline::spawn_listener(
                        listener,
                        self.sender.clone(),
                        Arc::clone(&self.metrics),
                        stopped,
                    );
                    tracing::info!(%address, "policy flow listener open");
                    self.listening
                        .insert(address, RunningListener { stop, job });
                }
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot open a policy flow listener");
                    self.listen_failed.insert(address, e.to_string());
                }
            }
        }
        for (address, reason) in &self.listen_failed {
            plan.listener_failed(*address, reason);
        }
    }

    /// The interfaces being captured.
    pub fn running(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Makes the running captures those of `plan`; marks in `plan` the captures that could
    /// not open or stopped on their own. A failed interface is retried only when its planned
    /// settings change (or it leaves the plan and comes back).
    pub async fn reconcile(&mut self, plan: &mut Plan) {
        // Captures that ended on their own (interface gone, read error).
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.job.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            if let Some(r) = self.running.remove(&name) {
                let _ = r.job.await;
                tracing::warn!(interface = %name, "capture stopped on its own");
                self.failed.insert(
                    name,
                    (r.spec, "the capture stopped (interface gone?)".into()),
                );
            }
        }
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(n, r)| plan.captures.get(*n) != Some(&r.spec))
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            self.stop(&name).await;
        }
        self.failed
            .retain(|n, (spec, _)| plan.captures.get(n) == Some(&*spec));
        let wanted: Vec<(String, CaptureSpec)> = plan
            .captures
            .iter()
            .filter(|(n, _)| !self.running.contains_key(*n) && !self.failed.contains_key(*n))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (name, spec) in wanted {
            if let Err(reason) = self.start(&name, &spec) {
                tracing::warn!(interface = %name, %reason, "cannot capture");
                self.failed.insert(name, (spec, reason));
            }
        }
        for (name, (_, reason)) in &self.failed {
            plan.capture_failed(name, reason);
        }
        self.reconcile_listeners(plan).await;
    }

    fn start(&mut self, name: &str, spec: &CaptureSpec) -> Result<(), String> {
        let options = LiveOptions {
            snaplen: i32::try_from(spec.snaplen).unwrap_or(i32::MAX),
            promiscuous: spec.promiscuous,
            bpf_filter: spec.bpf_filter.clone(),
            ..LiveOptions::default()
        };
        let cap = LiveCapture::open(name, &options).map_err(|e| {
            // The error chain's last word is libpcap's.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        })?;
        let (stop, stopped) = watch::channel(false);
        let (config, metrics, sender) = (
            Arc::clone(&self.config),
            Arc::clone(&self.metrics),
            self.sender.clone(),
        );
        let job = tokio::task::spawn_blocking(move || {
            let _ = crate::pipeline::capture_live(cap, &config, &metrics, &stopped, &sender);
        });
        tracing::info!(interface = %name, policy = %spec.policy, snaplen = spec.snaplen,
            promiscuous = spec.promiscuous, filter = spec.bpf_filter.as_deref().unwrap_or(""),
            "policy capture started");
        self.running.insert(
            name.to_owned(),
            Running {
                spec: spec.clone(),
                stop,
                job,
            },
        );
        Ok(())
    }

    async fn stop(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            let _ = r.stop.send(true);
            let _ = r.job.await;
            tracing::info!(interface = %name, "policy capture stopped");
        }
    }

    /// Stops every capture (flushing their flow tables) and closes every listener.
    pub async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
        for (address, l) in std::mem::take(&mut self.listening) {
            let _ = l.stop.send(true);
            let _ = l.job.await;
            tracing::info!(%address, "policy flow listener closed");
        }
    }
}
