//! Netwarden engine: turns the flow records that sensors publish into hosts, flows and
//! reports, and serves them over the REST API.
//!
//! The way of the data (STYLE.md):
//! * [`ingest`]: subscribes to `nw.flows.>` on a bus, decodes batches, applies them to the state.
//! * [`state`]: the pure core — what a record does to hosts, flows and totals (DESIGN.md §5).
//! * [`hosts`]: the host table, cumulative-to-delta snapshots, observation-point totals.
//! * [`store`]: active flows, a bounded history of ended flows, protocol totals.
//! * [`api`]: the REST API v2, health, readiness and Prometheus metrics.
//! * [`metrics`]: the engine's own metrics.
//! * [`report`]: the end-of-run report (text or JSON).
//! * [`standalone`]: sensor and engine in one process over the in-process bus.

pub mod api;
mod bounded;
pub mod error;
pub mod hosts;
pub mod ingest;
pub mod metrics;
pub mod report;
pub mod standalone;
pub mod state;
pub mod store;

use std::sync::{Arc, RwLock};

pub use error::{Error, Result};

use crate::ingest::IngestStatus;
use crate::metrics::EngineMetrics;
use crate::state::{SharedState, State, StateConfig};

/// The engine's shared parts: state, metrics and ingest status. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// Hosts, flows and totals.
    pub state: SharedState,
    /// The engine's metrics.
    pub metrics: Arc<EngineMetrics>,
    /// Whether ingest runs and what it consumed.
    pub status: Arc<IngestStatus>,
}

impl Engine {
    /// An empty engine sized by `config`, counting into `metrics`.
    pub fn new(config: &StateConfig, metrics: Arc<EngineMetrics>) -> Self {
        Self {
            state: Arc::new(RwLock::new(State::new(config))),
            metrics,
            status: Arc::new(IngestStatus::default()),
        }
    }

    /// Batches applied so far (standalone mode waits for it to reach what the sensor published).
    pub fn batches_ingested(&self) -> u64 {
        self.status.batches_ingested()
    }

    /// Reads the state (a poisoned lock is still read: the state stays consistent per batch).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
