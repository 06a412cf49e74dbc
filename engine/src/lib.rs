//! Netwarden engine: turns the flow records that sensors publish into hosts, flows and
//! reports, and serves them over the REST API.
//!
//! The way of the data (STYLE.md):
//! * [`ingest`]: subscribes to `nw.flows.>` on a bus, decodes batches, applies them to the state.
//! * [`state`]: the pure core — what a record does to hosts, flows and totals (DESIGN.md §5).
//! * [`hosts`]: the host table, cumulative-to-delta snapshots, observation-point totals.
//! * [`store`]: active flows, a bounded history of ended flows, protocol totals.
//! * [`checks`]: flow and host checks (what is wrong), [`exclusions`]: what not to report.
//! * [`score`]: the live score per host, point and network, every point explained.
//! * [`anomaly`]: Double Exponential Smoothing baselines.
//! * [`alerts`]: the analysis core joining the above, and the bounded alert store.
//! * [`config`]: live configuration from `nw-config` (exclusions swapped in, `nw-status` reports);
//!   [`directory`]: who an address is in Kubernetes (`nw-directory`), roll-ups by namespace and workload.
//! * [`api`]: the REST API v2, health, readiness and Prometheus metrics; [`auth`]: its tokens.
//! * [`notify`]: notifications of alerts (Slack, webhooks, Teams, Discord, Telegram, email, syslog).
//! * [`metrics`]: the engine's own metrics.
//! * [`report`]: the end-of-run report (text or JSON).
//! * [`standalone`]: sensor and engine in one process over the in-process bus.
//! * [`ui`]: the web UI (server-rendered pages, session login, live updates).

pub mod alerts;
pub mod anomaly;
pub mod api;
pub mod auth;
mod bounded;
pub mod checks;
pub mod config;
pub mod devices;
pub mod directory;
pub mod error;
pub mod exclusions;
pub mod hosts;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod periodicity;
pub mod report;
pub mod score;
pub mod servicemap;
pub mod shard;
pub mod standalone;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ui;

use std::sync::{Arc, RwLock};

pub use error::{Error, Result};

use crate::ingest::IngestStatus;
use crate::metrics::EngineMetrics;
use crate::state::{SharedState, State, StateConfig};

/// The engine's shared parts: state, metrics and ingest status. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// The persistent store (`--data DIR`), when there is one: the API reads alerts and flow
    /// history from it.
    pub db: Option<Arc<store::db::Db>>,
    /// Hosts, flows and totals.
    pub state: SharedState,
    /// The engine's metrics.
    pub metrics: Arc<EngineMetrics>,
    /// Whether ingest runs and what it consumed.
    pub status: Arc<IngestStatus>,
    /// Who addresses are in Kubernetes (empty outside a cluster).
    pub directory: directory::SharedDirectory,
    /// The notifier, once the mode started one (`GET /api/v2/config/endpoints`).
    pub notifier: Arc<std::sync::OnceLock<notify::Notifier>>,
    /// The cluster view, once the shard runtime started (the API forwards and gathers with it).
    pub cluster: Arc<std::sync::OnceLock<Arc<api::cluster::Cluster>>>,
}

impl Engine {
    /// Commits and closes the persistent store, if any (call at shutdown).
    pub async fn close(&self) {
        if let Some(db) = &self.db {
            db.close().await;
        }
    }

    /// An empty engine sized by `config`, counting into `metrics`.
    pub fn new(config: &StateConfig, metrics: Arc<EngineMetrics>) -> Self {
        let directory = directory::SharedDirectory::default();
        let mut state = State::new(config);
        // The service map names workloads through the directory at ingest.
        state.servicemap.attach_directory(directory.clone());
        Self {
            db: None,
            state: Arc::new(RwLock::new(state)),
            metrics,
            status: Arc::new(IngestStatus::default()),
            directory,
            notifier: Arc::default(),
            cluster: Arc::default(),
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

/// A running engine: ingest on a bus and the API on a socket.
pub struct Launched {
    /// The engine's shared parts.
    pub engine: Engine,
    /// Where the API listens (the real port when `:0` was asked).
    pub addr: std::net::SocketAddr,
    /// The ingest task.
    pub ingest: tokio::task::JoinHandle<()>,
    /// The HTTP server task.
    pub server: tokio::task::JoinHandle<Result<()>>,
    /// The web UI's settings (standalone names its `--config` directory here).
    pub ui: ui::UiHandle,
}

/// Starts ingest on `bus` and the API on `listen`, both stopping when `shutdown` turns true.
///
/// `register` adds further metrics (the sensor's, in standalone mode) to the registry served
/// at `/metrics`.
pub async fn launch(
    bus: Arc<dyn netwarden_api::bus::Bus>,
    config: &StateConfig,
    listen: std::net::SocketAddr,
    register: impl FnOnce(&mut prometheus_client::registry::Registry),
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Launched> {
    launch_with_store(bus, config, None, listen, register, shutdown).await
}

/// [`launch`] with the persistent store of `store` (`--data DIR`): alerts and ended flows are
/// written there, the API reads them from there, and what an earlier run stored is loaded.
pub async fn launch_with_store(
    bus: Arc<dyn netwarden_api::bus::Bus>,
    config: &StateConfig,
    store: Option<&store::db::StoreConfig>,
    listen: std::net::SocketAddr,
    register: impl FnOnce(&mut prometheus_client::registry::Registry),
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Launched> {
    launch_secured(
        bus,
        config,
        store,
        listen,
        register,
        Arc::new(auth::Auth::open()),
        shutdown,
    )
    .await
}

/// Every route the engine serves: the API behind `auth`, and the web UI. The UI is merged
/// after the token middleware: it authenticates with its session cookie.
pub fn app(api_state: api::ApiState, auth: Arc<auth::Auth>, ui: ui::UiHandle) -> axum::Router {
    auth::secure(api::router(api_state.clone()), Arc::clone(&auth))
        .merge(ui::routes(api_state, auth, ui))
}

/// [`launch_with_store`] with the API behind `auth`: API tokens (`--tokens`), or open.
pub async fn launch_secured(
    bus: Arc<dyn netwarden_api::bus::Bus>,
    config: &StateConfig,
    store: Option<&store::db::StoreConfig>,
    listen: std::net::SocketAddr,
    register: impl FnOnce(&mut prometheus_client::registry::Registry),
    auth: Arc<auth::Auth>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Launched> {
    let metrics = Arc::new(EngineMetrics::default());
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    register(&mut registry);
    let mut engine = Engine::new(config, metrics);
    if let Some(store) = store {
        let store_metrics = Arc::new(store::db::StoreMetrics::new());
        store_metrics.register(&mut registry);
        engine.db = Some(store::db::attach(&engine, store, store_metrics).map_err(Error::Store)?);
        devices::persist::attach_engine(&engine, &store.dir);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })?;
    let ingest = ingest::start(engine.clone(), Arc::clone(&bus), shutdown.clone()).await;
    // Sensors' per-observation-point loss and templates (nw.stats.<sensor>).
    let _point_stats =
        hosts::follow_point_stats(engine.clone(), Arc::clone(&bus), shutdown.clone()).await;
    let api_state = api::ApiState {
        engine: engine.clone(),
        bus,
        registry: Arc::new(registry),
    };
    let ui_handle = ui::UiHandle::default();
    let router = app(api_state, auth, ui_handle.clone());
    let server = tokio::spawn(api::serve(listener, router, shutdown));
    tracing::info!(%addr, "API listening");
    Ok(Launched {
        engine,
        addr,
        ingest,
        server,
        ui: ui_handle,
    })
}
