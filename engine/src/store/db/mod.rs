//! The persistent store: alerts and a bounded history of ended flows in an embedded SQLite
//! database (`--data DIR`), written by one thread, read by the API.
//!
//! Why SQLite (docs/design-notes.md): the alert API is a query language — ranges, `IN` lists,
//! severity thresholds, host-as-attacker, totals, `GROUP BY` over time buckets — over a few
//! indexes; SQLite gives that with WAL (readers never block the writer), one file per engine
//! replica, and a format every operator can open with `sqlite3`.
//!
//! The write path never blocks ingest: the state (under its lock) hands rows to a
//! [`StoreSink`], which `try_send`s them into a bounded queue (full: dropped and counted in
//! `netwarden_engine_store_dropped_total`). The writer thread takes everything queued (up to
//! [`MAX_BATCH`]) into one transaction — group commit: small batches when idle, large ones
//! under load — and enforces retention (age, rows, bytes) as it goes. API requests first pass a
//! barrier ([`Db::sync`]) so they see every write queued before them, then read on their own
//! connection. Acknowledgements and deletions go through the writer too, in order with the
//! rows they touch.
//!
//! Must not: decide what an alert is (that is `alerts`), or run a query built from request text
//! (filters are bound parameters, see [`sql`]).

pub mod config;
pub mod metrics;
pub mod query;
pub mod schema;
pub mod sql;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use netwarden_api::flow::FlowRecord;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::alerts::StoredAlert;
use crate::alerts::store::filter::AlertFilter;
pub use config::StoreConfig;
pub use metrics::StoreMetrics;

/// Most operations written in one transaction.
pub const MAX_BATCH: usize = 8192;
/// Read connections kept open for reuse.
const READ_POOL: usize = 4;

/// Errors of the persistent store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or prepared.
    #[error("cannot open the database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer engine.
    #[error("cannot open the database {path}")]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Which version it has.
        #[source]
        source: schema::SchemaError,
    },
    /// A query failed.
    #[error("store query failed")]
    Sql(#[from] rusqlite::Error),
    /// The writer thread has stopped (shutdown, or it failed).
    #[error("the store's writer has stopped")]
    Stopped,
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread")]
    Thread(#[source] std::io::Error),
}

/// Which alerts an acknowledgement or a deletion is about.
#[derive(Clone, Debug)]
pub enum Target {
    /// One row.
    Id(u64),
    /// Every row matching.
    Filter(AlertFilter),
}

type Reply = oneshot::Sender<Result<u64, String>>;

/// One unit of work for the writer.
pub(crate) enum Op {
    /// Insert or update an alert row.
    Alert(Box<schema::AlertRow>),
    /// Append an ended flow.
    Flow(Box<schema::FlowRow>),
    /// Acknowledge rows; replies with the number of rows changed.
    Ack(Target, Reply),
    /// Delete rows; replies with the number of rows deleted.
    Delete(Target, Reply),
    /// Replies once every earlier operation is committed.
    Sync(oneshot::Sender<()>),
    /// Commit and stop.
    Shutdown,
}

/// Where the state hands rows to the store: never blocks, drops (and counts) when full.
#[derive(Clone)]
pub struct StoreSink {
    tx: mpsc::Sender<Op>,
    metrics: Arc<StoreMetrics>,
}

impl std::fmt::Debug for StoreSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSink")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish_non_exhaustive()
    }
}

impl StoreSink {
    /// Queues the current state of an alert row (encoded for the database here, not cloned).
    pub fn alert(&self, row: &StoredAlert) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(Op::Alert(Box::new(schema::AlertRow::new(row)))),
            Err(_) => self.metrics.drop_one("alerts"),
        }
    }

    /// Queues an ended flow (encoded for the database here, not cloned).
    pub fn flow(&self, record: &FlowRecord) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(Op::Flow(Box::new(schema::FlowRow::new(record)))),
            Err(_) => self.metrics.drop_one("flows"),
        }
    }
}

/// What [`Db::open`] found on disk.
pub struct Opened {
    /// The store.
    pub db: Arc<Db>,
    /// The newest alert rows (at most the number asked), oldest first, to warm the in-memory
    /// store (dedup, report).
    pub recent_alerts: Vec<StoredAlert>,
    /// The next alert row id (ids are never reused, even after deletions).
    pub next_alert_id: u64,
}

impl Opened {
    /// A sink of the opened store.
    pub fn db_sink(&self) -> StoreSink {
        self.db.sink()
    }
}

/// The persistent store.
pub struct Db {
    path: PathBuf,
    tx: mpsc::Sender<Op>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<StoreMetrics>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (or creates) the store of `config`, loads its newest `recent` alert rows and
    /// starts the writer thread.
    pub fn open(
        config: &StoreConfig,
        recent: usize,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Opened, StoreError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StoreError::Dir {
            path: config.dir.clone(),
            source,
        })?;
        let path = config.db_path();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        schema::create(&conn).map_err(|e| match e {
            schema::SchemaError::Sql(source) => open_err(source),
            newer @ schema::SchemaError::Newer { .. } => StoreError::Schema {
                path: path.clone(),
                source: newer,
            },
        })?;
        let next_alert_id = query::max_alert_id(&conn).map_err(open_err)? + 1;
        let mut recent_alerts = query::newest_alerts(&conn, recent).map_err(open_err)?;
        recent_alerts.reverse();
        let writer =
            writer::Writer::new(conn, config.clone(), Arc::clone(&metrics)).map_err(open_err)?;
        info!(
            path = %path.display(),
            alerts = writer.alert_rows(),
            flows = writer.flow_rows(),
            next_alert_id,
            "store opened"
        );
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let handle = std::thread::Builder::new()
            .name("nw-store".into())
            .spawn(move || writer.run(rx))
            .map_err(StoreError::Thread)?;
        Ok(Opened {
            db: Arc::new(Self {
                path,
                tx,
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(handle)),
                metrics,
            }),
            recent_alerts,
            next_alert_id,
        })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The store's metrics.
    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }

    /// A sink for the state's writes.
    pub fn sink(&self) -> StoreSink {
        StoreSink {
            tx: self.tx.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// Waits until every write queued before this call is committed.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Sync(tx))
            .await
            .map_err(|_| StoreError::Stopped)?;
        rx.await.map_err(|_| StoreError::Stopped)
    }

    /// Acknowledges `target`; the number of rows that changed.
    pub async fn acknowledge(&self, target: Target) -> Result<u64, StoreError> {
        self.ask(|r| Op::Ack(target, r)).await
    }

    /// Deletes `target`; the number of rows deleted.
    pub async fn delete(&self, target: Target) -> Result<u64, StoreError> {
        self.ask(|r| Op::Delete(target, r)).await
    }

    async fn ask(&self, op: impl FnOnce(Reply) -> Op) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(op(tx))
            .await
            .map_err(|_| StoreError::Stopped)?;
        match rx.await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                warn!(error = %e, "store operation failed");
                Err(StoreError::Stopped)
            }
            Err(_) => Err(StoreError::Stopped),
        }
    }

    /// Runs `f` on a read connection, on a blocking thread, after a [`Db::sync`].
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.sync().await?;
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.read_now(f))
            .await
            .map_err(|_| StoreError::Stopped)?
    }

    /// Runs `f` on a read connection now, on this thread (no barrier).
    pub fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = if let Some(c) = pooled {
            c
        } else {
            let c = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY;")?;
            c
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < READ_POOL {
            pool.push(conn);
        }
        Ok(out?)
    }

    /// Commits what is queued, stops the writer and waits for it (call once, at shutdown).
    pub async fn close(&self) {
        if self.tx.send(Op::Shutdown).await.is_err() {
            return;
        }
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        info!(path = %self.path.display(), "store closed");
    }

    /// [`Db::close`] for synchronous callers (benchmarks, tests): must not run on an async
    /// runtime thread.
    pub fn close_blocking(&self) {
        if self.tx.blocking_send(Op::Shutdown).is_err() {
            return;
        }
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Opens the store of `config` and connects `engine`'s state to it: the newest alert rows are
/// loaded into the in-memory store (as many as it keeps), ids continue where they stopped, and
/// later alert changes and ended flows are written through.
pub fn attach(
    engine: &crate::Engine,
    config: &StoreConfig,
    metrics: Arc<StoreMetrics>,
) -> Result<Arc<Db>, StoreError> {
    let mut state = engine.state.write().unwrap_or_else(PoisonError::into_inner);
    let opened = Db::open(config, state.analysis.config.max_alerts, metrics)?;
    let sink = opened.db.sink();
    state
        .analysis
        .store
        .attach(sink.clone(), opened.recent_alerts, opened.next_alert_id);
    state.flows.attach(sink);
    Ok(opened.db)
}
