//! The persistent store's metrics (`netwarden_engine_store_*`), registered beside the engine's.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A table of the store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// `alerts` or `flows`.
    pub table: &'static str,
}

/// Why rows were deleted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeleteLabels {
    /// `alerts` or `flows`.
    pub table: &'static str,
    /// `age`, `rows`, `size` (retention) or `api` (a DELETE request).
    pub reason: &'static str,
}

/// The store's metrics.
pub struct StoreMetrics {
    /// Rows written (inserted or updated) per table.
    pub rows_written: Family<TableLabel, Counter>,
    /// Writes dropped because the queue was full (or the writer had stopped), per table.
    pub dropped: Family<TableLabel, Counter>,
    /// Rows deleted, per table and reason.
    pub deleted: Family<DeleteLabels, Counter>,
    /// Rows held, per table (exact after each retention pass).
    pub rows: Family<TableLabel, Gauge>,
    /// Transactions committed.
    pub batches: Counter,
    /// Writes waiting for the writer thread.
    pub queue_depth: Gauge,
    /// Live database bytes (pages in use × page size) plus the WAL file.
    pub db_bytes: Gauge,
    /// Failed transactions (the batch is lost and counted here; the writer keeps going).
    pub write_errors: Counter,
    /// Time to write and commit one batch, seconds.
    pub batch_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self {
            rows_written: Family::default(),
            dropped: Family::default(),
            deleted: Family::default(),
            rows: Family::default(),
            batches: Counter::default(),
            queue_depth: Gauge::default(),
            db_bytes: Gauge::default(),
            write_errors: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
        }
    }

    /// Registers every metric under `netwarden_engine_store_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine_store");
        r.register(
            "rows_written",
            "Rows written (inserted or updated) into the persistent store",
            self.rows_written.clone(),
        );
        r.register(
            "dropped",
            "Writes dropped because the store's queue was full",
            self.dropped.clone(),
        );
        r.register(
            "deleted",
            "Rows deleted from the store, by retention (age, rows, size) or the API",
            self.deleted.clone(),
        );
        r.register("rows", "Rows held in the store", self.rows.clone());
        r.register(
            "batches",
            "Write transactions committed",
            self.batches.clone(),
        );
        r.register(
            "queue_depth",
            "Writes waiting for the store's writer thread",
            self.queue_depth.clone(),
        );
        r.register(
            "db_bytes",
            "Bytes of live database pages plus the write-ahead log",
            self.db_bytes.clone(),
        );
        r.register(
            "write_errors",
            "Store transactions that failed",
            self.write_errors.clone(),
        );
        r.register(
            "batch_seconds",
            "Time to write and commit one batch",
            self.batch_seconds.clone(),
        );
    }

    /// Counts one dropped write into `table`.
    pub fn drop_one(&self, table: &'static str) {
        self.dropped.get_or_create(&TableLabel { table }).inc();
    }
}
