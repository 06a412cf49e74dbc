//! Ingest: flow batches from the bus into the state.
//!
//! Subscribes to every flow subject (`nw.flows.>`) on a `dyn Bus`, decodes each payload as a
//! `FlowBatch` (garbage is counted, never a panic), and applies the whole batch under one write
//! lock. It re-subscribes when the bus stream ends and stops on the shutdown signal. What a
//! record does to the state is [`crate::state`]'s business, not this module's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use netwarden_api::bus::{Bus, Message, MessageStream};
use netwarden_api::flow::FlowBatch;
use netwarden_api::names;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::Engine;
use crate::metrics::Table;

/// How long to wait before subscribing again after the bus refused or closed a subscription.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// Whether ingest runs, and how much it did. Shared with the API (readiness) and standalone mode.
#[derive(Debug, Default)]
pub struct IngestStatus {
    running: AtomicBool,
    batches: AtomicU64,
    records: AtomicU64,
    decode_errors: AtomicU64,
}

impl IngestStatus {
    /// Whether ingest holds a subscription to the flow subjects.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Batches decoded and applied (a batch counts once its records are in the state).
    pub fn batches_ingested(&self) -> u64 {
        self.batches.load(Ordering::Acquire)
    }

    /// Records applied.
    pub fn records_ingested(&self) -> u64 {
        self.records.load(Ordering::Acquire)
    }

    /// Payloads that did not decode.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Acquire)
    }

    fn set_running(&self, engine: &Engine, running: bool) {
        self.running.store(running, Ordering::Release);
        engine.metrics.ingest_running.set(i64::from(running));
    }
}

/// Subscribes to the flow subjects and spawns the ingest loop.
///
/// The first subscription is made before this returns, so nothing published afterwards on an
/// in-process bus is missed; if it fails, the loop keeps trying in the background.
pub async fn start(
    engine: Engine,
    bus: Arc<dyn Bus>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let first = match bus.subscribe(names::FLOWS_ALL.to_owned()).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            warn!(error = %e, "cannot subscribe to flows yet; retrying");
            None
        }
    };
    tokio::spawn(run(engine, bus, first, shutdown))
}

async fn run(
    engine: Engine,
    bus: Arc<dyn Bus>,
    mut stream: Option<MessageStream>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        let current = match stream.take() {
            Some(s) => s,
            None => match bus.subscribe(names::FLOWS_ALL.to_owned()).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "cannot subscribe to flows; retrying");
                    if wait_or_shutdown(&mut shutdown, RESUBSCRIBE_DELAY).await {
                        break;
                    }
                    continue;
                }
            },
        };
        info!(
            bus = bus.kind(),
            subject = names::FLOWS_ALL,
            "ingesting flows"
        );
        engine.status.set_running(&engine, true);
        let stopped = consume(&engine, bus.as_ref(), current, &mut shutdown).await;
        engine.status.set_running(&engine, false);
        if stopped {
            break;
        }
        warn!("flow subscription ended; subscribing again");
        if wait_or_shutdown(&mut shutdown, RESUBSCRIBE_DELAY).await {
            break;
        }
    }
    debug!("ingest stopped");
}

/// Consumes `stream` until it ends (false) or shutdown is asked (true).
async fn consume(
    engine: &Engine,
    bus: &dyn Bus,
    mut stream: MessageStream,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut reload = tokio::time::interval(BLOCKLIST_RELOAD);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return true;
                }
            }
            _ = reload.tick() => {
                let mut state = engine.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if state.analysis.config.checks.blocklist.reload_if_changed() {
                    info!(entries = state.analysis.config.checks.blocklist.len(), "blocklists reloaded");
                }
            }
            msg = stream.next() => match msg {
                Some(msg) => {
                    ingest_message(engine, &msg);
                    publish_alerts(engine, bus).await;
                }
                None => return false,
            },
        }
    }
}

/// Waits `delay`; true when shutdown was asked meanwhile.
async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
        () = tokio::time::sleep(delay) => false,
    }
}

/// Publishes the alerts raised or changed since the last call on `nw.alerts.<entity>.<type>`
/// (JSON; a core publish: the JetStream stream `NW_ALERTS` comes with the scale-out work).
pub async fn publish_alerts(engine: &Engine, bus: &dyn Bus) {
    let alerts = engine
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .analysis
        .drain_outbox();
    for a in alerts {
        let subject = names::alerts_subject(a.entity.as_str(), &a.alert_type);
        match serde_json::to_vec(&a) {
            Ok(body) => {
                if let Err(e) = bus.publish(subject, body.into()).await {
                    debug!(error = %e, "cannot publish an alert");
                    engine.metrics.alerts_publish_errors.inc();
                } else {
                    engine.metrics.alerts_published.inc();
                }
            }
            Err(e) => debug!(error = %e, "cannot encode an alert"),
        }
    }
}

/// How often the blocklist files are checked for changes.
pub const BLOCKLIST_RELOAD: Duration = Duration::from_secs(10);

/// Decodes and applies one bus message. Public so tests and benchmarks can drive the core
/// without a bus.
pub fn ingest_message(engine: &Engine, msg: &Message) {
    let batch = match FlowBatch::from_bytes(&msg.subject, &msg.payload) {
        Ok(batch) => batch,
        Err(e) => {
            engine.metrics.decode_errors.inc();
            engine.status.decode_errors.fetch_add(1, Ordering::AcqRel);
            debug!(error = %e, "dropping undecodable payload");
            return;
        }
    };
    ingest_batch(engine, batch);
}

/// Applies one decoded batch under one write lock and updates the metrics.
pub fn ingest_batch(engine: &Engine, batch: FlowBatch) {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let m = &engine.metrics;
    let mut last_lag = None;
    for r in &batch.records {
        let lag = now_ns.saturating_sub(r.last_seen_ns) as f64 / 1e9;
        m.ingest_lag_seconds.observe(lag);
        last_lag = Some(lag);
    }
    if let Some(lag) = last_lag {
        m.last_ingest_lag_seconds.set(lag);
    }
    let n = batch.records.len() as u64;
    let (ev, hosts, active, ended, invalid_before, invalid_after) = {
        let mut state = engine
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let invalid_before = state.totals.invalid_records;
        let flow_alerts_before = state.analysis.counters.flow_alerts;
        let clamped_before = state.totals.clamped_times;
        state.set_wall_clock(now_ns);
        let ev = state.apply_batch(batch.records);
        m.records_time_clamped
            .inc_by(state.totals.clamped_times - clamped_before);
        m.flow_alerts
            .inc_by(state.analysis.counters.flow_alerts - flow_alerts_before);
        m.alerts_stored.set(state.analysis.store.len() as i64);
        (
            ev,
            state.hosts.len(),
            state.flows.active_len(),
            state.flows.ended_len(),
            invalid_before,
            state.totals.invalid_records,
        )
    };
    m.records_ingested.inc_by(n);
    m.records_invalid.inc_by(invalid_after - invalid_before);
    m.hosts.set(hosts as i64);
    m.active_flows.set(active as i64);
    m.ended_flows.set(ended as i64);
    m.evicted(Table::Hosts, ev.hosts);
    m.evicted(Table::ActiveFlows, ev.active_flows);
    m.evicted(Table::History, ev.history);
    m.evicted(Table::Deltas, ev.deltas);
    m.evicted(Table::ObservationPoints, ev.points);
    m.batches_ingested.inc();
    engine.status.records.fetch_add(n, Ordering::AcqRel);
    engine.status.batches.fetch_add(1, Ordering::AcqRel);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;
    use netwarden_api::bus::MemoryBus;
    use netwarden_api::bus::Publisher as _;
    use netwarden_api::flow::{FlowRecord, FlowUpdate, ip_to_bytes};

    use super::*;
    use crate::metrics::EngineMetrics;
    use crate::state::StateConfig;

    fn engine() -> Engine {
        Engine::new(&StateConfig::default(), Arc::new(EngineMetrics::default()))
    }

    fn batch() -> FlowBatch {
        let record = FlowRecord {
            flow_id: 1,
            client_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
            server_ip: ip_to_bytes("10.0.0.2".parse().unwrap()),
            update: FlowUpdate::Final as i32,
            ..Default::default()
        };
        FlowBatch {
            records: vec![
                record.clone(),
                FlowRecord {
                    flow_id: 2,
                    ..record
                },
            ],
            sensor: "n".into(),
            seq: 1,
        }
    }

    #[test]
    fn garbage_is_counted_and_never_applied() {
        let e = engine();
        let valid = batch().to_bytes();
        let payloads: Vec<Bytes> = vec![
            Bytes::from_static(&[0xff; 16]),
            Bytes::from_static(b"{\"records\": []}"),
            valid.slice(..valid.len() - 3), // truncated inside a record
            Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length beyond the end
        ];
        for p in payloads {
            ingest_message(
                &e,
                &Message {
                    subject: "nw.flows.1".into(),
                    payload: p,
                },
            );
        }
        assert_eq!(e.status.decode_errors(), 4);
        assert_eq!(e.metrics.decode_errors.get(), 4);
        assert_eq!(e.batches_ingested(), 0);
        assert!(e.read().hosts.is_empty());
        // An empty payload is a valid, empty batch.
        ingest_message(
            &e,
            &Message {
                subject: "nw.flows.1".into(),
                payload: Bytes::new(),
            },
        );
        assert_eq!((e.batches_ingested(), e.status.records_ingested()), (1, 0));
    }

    #[tokio::test]
    async fn ingests_from_the_bus_until_shutdown() {
        let e = engine();
        let bus = Arc::new(MemoryBus::default());
        let (tx, rx) = watch::channel(false);
        let task = start(e.clone(), bus.clone(), rx).await;
        bus.publish("nw.flows.7".into(), batch().to_bytes())
            .await
            .unwrap();
        bus.publish("nw.flows.7".into(), Bytes::from_static(&[0xff]))
            .await
            .unwrap();
        bus.publish("nw.alerts.x".into(), batch().to_bytes())
            .await
            .unwrap(); // not a flow subject
        while e.batches_ingested() < 1 || e.status.decode_errors() < 1 {
            tokio::task::yield_now().await;
        }
        assert!(e.status.is_running());
        assert_eq!(e.status.records_ingested(), 2);
        assert_eq!(e.read().hosts.len(), 2);
        tx.send(true).unwrap();
        task.await.unwrap();
        assert!(!e.status.is_running());
        assert_eq!(e.batches_ingested(), 1);
    }
}
