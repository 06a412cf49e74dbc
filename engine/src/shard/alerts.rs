//! Alerts cluster-wide: the JetStream stream `NW_ALERTS` over `nw.alerts.>` keeps every alert
//! any replica publishes, and every API-serving replica indexes it into its own alert store, so
//! `GET /api/v2/alerts` (summary, detail) on any replica answers for the whole cluster.
//!
//! * The stream: limits retention, file storage, bounded by age and bytes, created (or its
//!   bounds updated) idempotently at start, as `NW_FLOWS` is.
//! * The indexer: one ordered consumer from the last stream sequence indexed + 1. With `--data`
//!   that sequence is kept in `alerts-index.json` next to the database, written only after the
//!   database committed every row indexed up to it (so a crash re-indexes, never skips).
//! * Idempotent by alert key ([`index`]): an alert whose key is stored with the same state and
//!   a last-seen time at least as recent is already known (this replica raised it, or the stream
//!   is replayed after a restart): it is skipped, so nothing is counted twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use netwarden_api::alert::Alert;
use netwarden_api::names::{ALERTS_ALL, ALERTS_STREAM};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::metrics::ShardMetrics;
use crate::Engine;
use crate::state::State;

/// Largest alert message indexed (bigger ones are skipped and counted).
pub const MAX_ALERT_BYTES: usize = 64 * 1024;
/// Longest alert key indexed.
pub const MAX_KEY_BYTES: usize = 1024;
/// How often the indexed sequence is persisted (with `--data`).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// The file, next to the database, holding the last stream sequence indexed.
pub const SEQ_FILE: &str = "alerts-index.json";

/// Bounds of `NW_ALERTS`.
#[derive(Debug, Clone, Copy)]
pub struct AlertStreamLimits {
    /// Oldest alert kept.
    pub max_age: Duration,
    /// Bytes kept.
    pub max_bytes: i64,
    /// Stream replicas on a NATS cluster.
    pub replicas: usize,
}

impl Default for AlertStreamLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 256 << 20,
            replicas: 1,
        }
    }
}

/// The stream configuration of `NW_ALERTS`.
pub fn stream_config(limits: AlertStreamLimits) -> stream::Config {
    stream::Config {
        name: ALERTS_STREAM.to_owned(),
        description: Some("Netwarden alerts of every replica".to_owned()),
        subjects: vec![ALERTS_ALL.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: limits.max_age,
        max_bytes: limits.max_bytes,
        max_message_size: i32::try_from(MAX_ALERT_BYTES).unwrap_or(i32::MAX),
        num_replicas: limits.replicas.max(1),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Creates `NW_ALERTS` or updates its bounds (idempotent).
pub async fn ensure_stream(
    client: &async_nats::Client,
    limits: AlertStreamLimits,
) -> Result<stream::Stream, String> {
    let js = jetstream::new(client.clone());
    js.create_or_update_stream(stream_config(limits))
        .await
        .map_err(|e| format!("create or update {ALERTS_STREAM}: {e}"))?;
    js.get_stream(ALERTS_STREAM)
        .await
        .map_err(|e| format!("get {ALERTS_STREAM}: {e}"))
}

/// What [`index`] did with one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Stored (a new row, or an update of its key's row).
    Stored,
    /// Already known (same key, same state, not newer): skipped.
    Known,
    /// Refused (key too long or empty).
    Refused,
}

/// Indexes one alert from the stream into `state`'s alert store, idempotently by key.
pub fn index(state: &mut State, alert: Alert) -> Indexed {
    if alert.key.is_empty() || alert.key.len() > MAX_KEY_BYTES {
        return Indexed::Refused;
    }
    let store = &mut state.analysis.store;
    if let Some(row) = store.by_key(&alert.key)
        && (row.alert.last_seen_ns > alert.last_seen_ns
            || (row.alert.last_seen_ns == alert.last_seen_ns && row.alert.state == alert.state))
    {
        return Indexed::Known;
    }
    store.upsert(alert);
    Indexed::Stored
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedSeq {
    stream_seq: u64,
}

fn read_seq(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SavedSeq>(&b).ok())
        .map_or(0, |s| s.stream_seq)
}

fn write_seq(path: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(&SavedSeq { stream_seq: seq }).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// Where the indexed sequence is kept for `engine` (with `--data` only).
fn seq_path(engine: &Engine) -> Option<PathBuf> {
    engine
        .db
        .as_ref()
        .and_then(|db| db.path().parent().map(|d| d.join(SEQ_FILE)))
}

/// Starts the indexer: creates the stream (retrying) and indexes it until `shutdown`.
pub fn spawn(
    engine: Engine,
    client: async_nats::Client,
    limits: AlertStreamLimits,
    metrics: Arc<ShardMetrics>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(engine, client, limits, metrics, shutdown))
}

async fn run(
    engine: Engine,
    client: async_nats::Client,
    limits: AlertStreamLimits,
    metrics: Arc<ShardMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = seq_path(&engine);
    let mut seq = path.as_deref().map_or(0, read_seq);
    let mut saved = seq;
    info!(
        from = seq + 1,
        persisted = path.is_some(),
        "indexing NW_ALERTS"
    );
    let mut save = tokio::time::interval(SAVE_INTERVAL);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'outer: loop {
        let mut stream = match ensure_stream(&client, limits).await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "cannot open NW_ALERTS yet; retrying");
                if super::runtime::wait(&mut shutdown, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        // A stream recreated behind our back restarts at 1: index it from its start.
        if let Ok(info) = stream.info().await
            && info.state.last_sequence < seq
        {
            warn!(
                indexed = seq,
                last = info.state.last_sequence,
                "NW_ALERTS is behind what was indexed (recreated?); indexing it from its start"
            );
            seq = 0;
        }
        let deliver_policy = if seq == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            }
        };
        let messages = match stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: ALERTS_ALL.to_owned(),
                deliver_policy,
                ..Default::default()
            })
            .await
        {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                debug!(error = %e, "cannot consume NW_ALERTS yet; retrying");
                if super::runtime::wait(&mut shutdown, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break 'outer;
                    }
                }
                _ = save.tick() => {
                    if seq != saved && let Some(p) = &path {
                        saved = persist(&engine, p, seq, saved).await;
                    }
                }
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        if let Ok(info) = msg.info() {
                            seq = seq.max(info.stream_sequence);
                        }
                        index_message(&engine, &metrics, &msg.payload);
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "NW_ALERTS consumer failed; recreating it");
                        metrics.consumer_restarts.inc();
                        break;
                    }
                    None => break,
                }
            }
        }
        if super::runtime::wait(&mut shutdown, Duration::from_millis(200)).await {
            break;
        }
    }
    if seq != saved
        && let Some(p) = &path
    {
        persist(&engine, p, seq, saved).await;
    }
    debug!(seq, "NW_ALERTS indexer stopped");
}

/// Persists `seq` once the database has committed every row queued so far; returns the
/// sequence now on disk.
async fn persist(engine: &Engine, path: &Path, seq: u64, saved: u64) -> u64 {
    let Some(db) = &engine.db else {
        return saved;
    };
    if let Err(e) = db.sync().await {
        debug!(error = %e, "the store did not commit; the indexed sequence is not saved");
        return saved;
    }
    match write_seq(path, seq) {
        Ok(()) => seq,
        Err(e) => {
            debug!(error = %e, "cannot save the indexed NW_ALERTS sequence");
            saved
        }
    }
}

fn index_message(engine: &Engine, metrics: &ShardMetrics, payload: &[u8]) {
    if payload.len() > MAX_ALERT_BYTES {
        metrics.alerts_refused.inc();
        return;
    }
    let Ok(alert) = serde_json::from_slice::<Alert>(payload) else {
        metrics.alerts_refused.inc();
        return;
    };
    let done = {
        let mut state = engine
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = index(&mut state, alert);
        engine
            .metrics
            .alerts_stored
            .set(i64::try_from(state.analysis.store.len()).unwrap_or(i64::MAX));
        done
    };
    match done {
        Indexed::Stored => metrics.alerts_indexed.inc(),
        Indexed::Known => metrics.alerts_known.inc(),
        Indexed::Refused => metrics.alerts_refused.inc(),
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use netwarden_api::alert::{AlertState, Entity, Roles, Severity};

    use super::*;
    use crate::state::StateConfig;

    fn alert(key: &str, state: AlertState, last: u64) -> Alert {
        Alert {
            key: key.to_owned(),
            alert_type: "syn_scan".to_owned(),
            entity: Entity::Host,
            entity_value: "10.0.0.1".to_owned(),
            severity: Severity::Warning,
            score: 50,
            client_score: 50,
            server_score: 0,
            roles: Roles::default(),
            observation_point: String::new(),
            first_seen_ns: 1_000,
            last_seen_ns: last,
            count: 1,
            state,
            message: "m".to_owned(),
            flow: None,
            anomaly: None,
        }
    }

    #[test]
    fn indexing_is_idempotent_by_key() {
        let mut s = State::new(&StateConfig::default());
        let a = alert("k1", AlertState::Engaged, 2_000);
        assert_eq!(index(&mut s, a.clone()), Indexed::Stored);
        // The same alert again (own alert, or a replay): nothing changes.
        assert_eq!(index(&mut s, a.clone()), Indexed::Known);
        assert_eq!(s.analysis.store.len(), 1);
        assert_eq!(s.analysis.store.by_key("k1").unwrap().alert.count, 1);
        // Newer news of the key updates its row.
        assert_eq!(
            index(&mut s, alert("k1", AlertState::Released, 3_000)),
            Indexed::Stored
        );
        let row = s.analysis.store.by_key("k1").unwrap();
        assert_eq!(
            (row.alert.state, row.alert.last_seen_ns),
            (AlertState::Released, 3_000)
        );
        assert_eq!(s.analysis.store.len(), 1);
        // Replaying the older message after it changes nothing (not even its state).
        assert_eq!(index(&mut s, a), Indexed::Known);
        assert_eq!(
            s.analysis.store.by_key("k1").unwrap().alert.state,
            AlertState::Released
        );
        assert_eq!(
            index(&mut s, alert("", AlertState::Past, 1)),
            Indexed::Refused
        );
        assert_eq!(
            index(&mut s, alert(&"x".repeat(2000), AlertState::Past, 1)),
            Indexed::Refused
        );
    }

    #[test]
    fn the_indexed_sequence_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(SEQ_FILE);
        assert_eq!(read_seq(&p), 0);
        write_seq(&p, 42).unwrap();
        assert_eq!(read_seq(&p), 42);
        std::fs::write(&p, b"garbage").unwrap();
        assert_eq!(read_seq(&p), 0);
    }
}
