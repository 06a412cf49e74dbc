//! Publishes the flow collectors' per-observation-point statistics (lost datagrams and
//! records, late and reset sequences, templates) as `nw.stats.<sensor>`
//! ([`netwarden_api::stats`]) so the engine can show them on its observation points.
//!
//! Owns: the cadence (a check every [`PUBLISH_EVERY`], a message only when the board changed,
//! one at stop) and the publish timeout. Must not: block the collectors (they only touch the
//! [`PointBoard`]), or fail the run when the bus is down (a failed publish is logged and the
//! next change publishes the totals again: they are totals, not deltas).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netwarden_api::bus::Bus;
use netwarden_api::stats::{PointStatsMessage, stats_subject};
use tokio::sync::watch;

use crate::collect::PointBoard;

/// How often the board is checked for changes.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one publish.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the publisher did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointStatsSummary {
    /// Messages published.
    pub published: u64,
    /// Messages that failed or timed out.
    pub failed: u64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Publishes every point of `board` (in messages of at most
/// [`netwarden_api::stats::MAX_POINTS_PER_MESSAGE`] points).
pub async fn publish_once(
    board: &PointBoard,
    sensor: &str,
    bus: &dyn Bus,
    summary: &mut PointStatsSummary,
) {
    let points = board.snapshot();
    let subject = stats_subject(sensor);
    for msg in PointStatsMessage::chunks(sensor, now_ns(), &points) {
        let payload = Bytes::from(msg.encode());
        match tokio::time::timeout(PUBLISH_TIMEOUT, bus.publish(subject.clone(), payload)).await {
            Ok(Ok(())) => summary.published += 1,
            Ok(Err(error)) => {
                summary.failed += 1;
                tracing::debug!(%error, "point statistics not published");
            }
            Err(_) => {
                summary.failed += 1;
                tracing::debug!("point statistics publish timed out");
            }
        }
    }
}

/// A running publisher ([`start`]); [`PointStatsTask::finish`] stops it after one last
/// message (call it once the collectors have stopped, so their last counts are in).
#[derive(Debug)]
pub struct PointStatsTask {
    stop: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<PointStatsSummary>>,
}

/// Starts publishing `board` for `sensor` when `active` (the run has flow listeners);
/// otherwise a task that does nothing.
pub fn start(active: bool, board: &PointBoard, sensor: &str, bus: Arc<dyn Bus>) -> PointStatsTask {
    if !active {
        return PointStatsTask {
            stop: None,
            task: None,
        };
    }
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(board.clone(), sensor.to_owned(), bus, stopped));
    PointStatsTask {
        stop: Some(stop),
        task: Some(task),
    }
}

impl PointStatsTask {
    /// Publishes the last totals (if they changed) and stops.
    pub async fn finish(mut self) -> PointStatsSummary {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => PointStatsSummary::default(),
        }
    }
}

/// Runs until `shutdown` turns true (or its sender goes): every [`PUBLISH_EVERY`], publishes
/// the board if it changed since the last message; at the end, once more if it changed.
pub async fn run(
    board: PointBoard,
    sensor: String,
    bus: Arc<dyn Bus>,
    mut shutdown: watch::Receiver<bool>,
) -> PointStatsSummary {
    let mut summary = PointStatsSummary::default();
    let mut sent_version = 0;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = *shutdown.borrow_and_update();
        let version = board.version();
        if version != sent_version {
            publish_once(&board, &sensor, bus.as_ref(), &mut summary).await;
            sent_version = version;
        }
        if stop {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    if board.version() != sent_version {
                        publish_once(&board, &sensor, bus.as_ref(), &mut summary).await;
                    }
                    break;
                }
            }
        }
    }
    summary
}
