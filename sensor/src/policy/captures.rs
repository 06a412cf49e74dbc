//! The live captures a policy asked for, started and stopped at runtime.
//!
//! Each capture is the pipeline's live capture loop (its own thread, flow table and
//! stop signal) feeding one shared export queue. Reconciling against a [`Plan`] stops the
//! captures that are no longer wanted or whose settings changed (their flow tables are flushed
//! on the way out, as at shutdown), and opens the new ones; an interface that cannot be opened,
//! or whose capture stopped on its own (the interface went away), is handed back so its
//! policy's report can say why.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::plan::{CaptureSpec, Plan};
use crate::capture::live::{LiveCapture, LiveOptions};
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

    /// Stops every capture (flushing their flow tables).
    pub async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
    }
}
