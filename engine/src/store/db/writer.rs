//! The writer thread: group commit of queued operations, and retention as it goes.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::metrics::{DeleteLabels, StoreMetrics, TableLabel};
use super::schema::{
    AlertRow, FlowRow, ROWS_PER_STATEMENT, insert_flows, insert_flows_sql, int, uint,
    upsert_alerts, upsert_alerts_sql,
};
use super::{MAX_BATCH, Op, StoreConfig, Target, sql};

/// Retention runs at least this often while writes arrive…
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// …or after this many rows written.
const RETENTION_ROWS: u64 = 65_536;
/// A size pass deletes at least this many of the oldest rows per step.
const SIZE_STEP_MIN: u64 = 1_000;
/// Times further ahead of the wall clock than this do not move retention's "now" (a sensor
/// with a wrong clock must not age everything out).
const FUTURE_SLACK_NS: u64 = 24 * 3600 * 1_000_000_000;

pub(super) struct Writer {
    conn: Connection,
    b: Books,
}

/// The writer's bookkeeping (apart from the connection, so a transaction can borrow it).
struct Books {
    config: StoreConfig,
    metrics: Arc<StoreMetrics>,
    /// Newest flow time written, ns: retention's "now".
    newest_ns: u64,
    /// Rows per table: exact after each retention pass, plus rows written since (an update
    /// counts as a row: an upper bound, so retention runs early rather than late).
    alert_rows: u64,
    flow_rows: u64,
    /// Highest alert id written (persisted so ids are never reused).
    max_alert_id: u64,
    written_since_retention: u64,
    last_retention: Instant,
    /// Live bytes at the last size check plus an estimate of what was written since.
    bytes_estimate: u64,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        config: StoreConfig,
        metrics: Arc<StoreMetrics>,
    ) -> rusqlite::Result<Self> {
        let newest: Option<i64> = conn.query_row(
            "SELECT max(t) FROM (SELECT max(last_seen) AS t FROM alerts \
             UNION ALL SELECT max(last_seen) FROM flows)",
            [],
            |r| r.get(0),
        )?;
        let mut w = Self {
            b: Books {
                config,
                metrics,
                newest_ns: newest.map_or(0, uint),
                alert_rows: 0,
                flow_rows: 0,
                max_alert_id: super::query::max_alert_id(&conn)?,
                written_since_retention: 0,
                last_retention: Instant::now(),
                bytes_estimate: Books::live_bytes(&conn)?,
            },
            conn,
        };
        w.count_rows()?;
        w.update_size();
        Ok(w)
    }

    pub(super) fn alert_rows(&self) -> u64 {
        self.b.alert_rows
    }

    pub(super) fn flow_rows(&self) -> u64 {
        self.b.flow_rows
    }

    fn count_rows(&mut self) -> rusqlite::Result<()> {
        self.b.count_rows(&self.conn)
    }

    fn update_size(&self) {
        self.b.update_size(&self.conn);
    }

    /// Takes operations until the queue closes or a shutdown arrives.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.b.metrics.queue_depth.set(rx.len() as i64);
            if self.write(&mut batch) {
                break;
            }
        }
        rx.close();
        // Answer whatever arrived after the shutdown: the writer is gone.
        while let Ok(op) = rx.try_recv() {
            drop(op);
        }
        if let Err(e) = self
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;")
        {
            warn!(error = %e, "store checkpoint at shutdown failed");
        }
        self.update_size();
        debug!("store writer stopped");
    }

    /// Writes one batch in one transaction; true when a shutdown was in it.
    fn write(&mut self, batch: &mut Vec<Op>) -> bool {
        let started = Instant::now();
        let mut replies = Vec::new();
        let mut syncs = Vec::new();
        let mut stop = false;
        let (mut alerts, mut flows) = (0u64, 0u64);
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            {
                // Rows wait here until a statement's worth is ready (or another kind of
                // operation, which must see them, comes).
                let mut pending_alerts: Vec<AlertRow> = Vec::new();
                let mut pending_flows: Vec<FlowRow> = Vec::new();
                let mut ops = batch.drain(..).peekable();
                while let Some(op) = ops.next() {
                    match op {
                        Op::Alert(row) => {
                            pending_alerts.push(*row);
                            if pending_alerts.len() >= ROWS_PER_STATEMENT
                                || !matches!(ops.peek(), Some(Op::Alert(_)))
                            {
                                alerts += self.b.write_alerts(&tx, &mut pending_alerts)?;
                            }
                        }
                        Op::Flow(row) => {
                            pending_flows.push(*row);
                            if pending_flows.len() >= ROWS_PER_STATEMENT
                                || !matches!(ops.peek(), Some(Op::Flow(_)))
                            {
                                flows += self.b.write_flows(&tx, &mut pending_flows)?;
                            }
                        }
                        Op::Ack(target, reply) => {
                            let n = acknowledge(&tx, &target).map_err(|e| e.to_string());
                            replies.push((reply, n));
                        }
                        Op::Delete(target, reply) => {
                            let n = delete(&tx, &target).map_err(|e| e.to_string());
                            if let Ok(n) = n {
                                self.b
                                    .metrics
                                    .deleted
                                    .get_or_create(&DeleteLabels {
                                        table: "alerts",
                                        reason: "api",
                                    })
                                    .inc_by(n);
                                self.b.alert_rows = self.b.alert_rows.saturating_sub(n);
                            }
                            replies.push((reply, n));
                        }
                        Op::Sync(s) => syncs.push(s),
                        Op::Shutdown => stop = true,
                    }
                }
            }
            if alerts > 0 {
                tx.execute(
                    "INSERT INTO meta_ids (name, value) VALUES ('alert', ?1) \
                     ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
                    [int(self.b.max_alert_id)],
                )?;
            }
            self.b.alert_rows += alerts;
            self.b.flow_rows += flows;
            self.b.written_since_retention += alerts + flows;
            if self.b.retention_due() {
                self.b.retention(&tx)?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                self.b.metrics.batches.inc();
                self.b
                    .metrics
                    .rows_written
                    .get_or_create(&TableLabel { table: "alerts" })
                    .inc_by(alerts);
                self.b
                    .metrics
                    .rows_written
                    .get_or_create(&TableLabel { table: "flows" })
                    .inc_by(flows);
                for (reply, n) in replies {
                    let _ = reply.send(n);
                }
            }
            Err(e) => {
                warn!(error = %e, alerts, flows, "store batch failed; its rows are lost");
                self.b.metrics.write_errors.inc();
                for (reply, _) in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
                // Counts may be off now: recount.
                if let Err(e) = self.count_rows() {
                    warn!(error = %e, "cannot count store rows");
                }
            }
        }
        for s in syncs {
            let _ = s.send(());
        }
        self.b
            .metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        stop
    }
}

/// The statements of a full chunk of rows and of one row (built once).
static ALERTS_FULL: LazyLock<String> = LazyLock::new(|| upsert_alerts_sql(ROWS_PER_STATEMENT));
static ALERTS_ONE: LazyLock<String> = LazyLock::new(|| upsert_alerts_sql(1));
static FLOWS_FULL: LazyLock<String> = LazyLock::new(|| insert_flows_sql(ROWS_PER_STATEMENT));
static FLOWS_ONE: LazyLock<String> = LazyLock::new(|| insert_flows_sql(1));

impl Books {
    /// Writes the pending alert rows (a full chunk in one statement, fewer one by one);
    /// the number written. A statement that fails loses its rows (logged and counted).
    fn write_alerts(
        &mut self,
        tx: &Transaction<'_>,
        rows: &mut Vec<AlertRow>,
    ) -> rusqlite::Result<u64> {
        let chunks: Vec<&[AlertRow]> = if rows.len() == ROWS_PER_STATEMENT {
            vec![rows.as_slice()]
        } else {
            rows.chunks(1).collect()
        };
        let mut written = 0;
        for chunk in chunks {
            let sql = if chunk.len() == 1 {
                &ALERTS_ONE
            } else {
                &ALERTS_FULL
            };
            let mut stmt = tx.prepare_cached(sql)?;
            if let Err(e) = upsert_alerts(&mut stmt, chunk) {
                warn!(error = %e, rows = chunk.len(), "cannot store alerts");
                self.metrics.write_errors.inc();
                continue;
            }
            for row in chunk {
                self.bytes_estimate += row.size();
                self.max_alert_id = self.max_alert_id.max(row.id);
                if row.last_seen_ns > self.newest_ns {
                    self.see_time(row.last_seen_ns);
                }
            }
            written += chunk.len() as u64;
        }
        rows.clear();
        Ok(written)
    }

    /// [`Books::write_alerts`] for ended flows.
    fn write_flows(
        &mut self,
        tx: &Transaction<'_>,
        rows: &mut Vec<FlowRow>,
    ) -> rusqlite::Result<u64> {
        let chunks: Vec<&[FlowRow]> = if rows.len() == ROWS_PER_STATEMENT {
            vec![rows.as_slice()]
        } else {
            rows.chunks(1).collect()
        };
        let mut written = 0;
        for chunk in chunks {
            let sql = if chunk.len() == 1 {
                &FLOWS_ONE
            } else {
                &FLOWS_FULL
            };
            let mut stmt = tx.prepare_cached(sql)?;
            if let Err(e) = insert_flows(&mut stmt, chunk) {
                warn!(error = %e, rows = chunk.len(), "cannot store flows");
                self.metrics.write_errors.inc();
                continue;
            }
            for row in chunk {
                self.bytes_estimate += row.size();
                if row.last_seen_ns > self.newest_ns {
                    self.see_time(row.last_seen_ns);
                }
            }
            written += chunk.len() as u64;
        }
        rows.clear();
        Ok(written)
    }

    fn count_rows(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.alert_rows = uint(conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))?);
        self.flow_rows = uint(conn.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))?);
        self.metrics
            .rows
            .get_or_create(&TableLabel { table: "alerts" })
            .set(int(self.alert_rows));
        self.metrics
            .rows
            .get_or_create(&TableLabel { table: "flows" })
            .set(int(self.flow_rows));
        Ok(())
    }

    /// Live database bytes: pages in use × page size (free pages are reused before the file
    /// grows).
    fn live_bytes(conn: &Connection) -> rusqlite::Result<u64> {
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(uint((pages - free).max(0) * size))
    }

    fn update_size(&self, conn: &Connection) {
        let live = Self::live_bytes(conn).unwrap_or(0);
        let wal = conn.path().map_or(0, |p| {
            std::fs::metadata(format!("{p}-wal")).map_or(0, |m| m.len())
        });
        self.metrics.db_bytes.set(int(live + wal));
    }

    fn see_time(&mut self, t: u64) {
        if t > self.newest_ns && t <= wall_ns().saturating_add(FUTURE_SLACK_NS) {
            self.newest_ns = t;
        }
    }

    fn retention_due(&self) -> bool {
        self.alert_rows > self.config.max_alerts
            || self.flow_rows > self.config.max_flows
            || self.bytes_estimate > self.config.max_bytes
            || self.written_since_retention >= RETENTION_ROWS
            || (self.written_since_retention > 0
                && self.last_retention.elapsed() >= RETENTION_EVERY)
    }

    fn deleted(&self, table: &'static str, reason: &'static str, n: usize) {
        if n > 0 {
            self.metrics
                .deleted
                .get_or_create(&DeleteLabels { table, reason })
                .inc_by(n as u64);
        }
    }

    /// Enforces age, row and size bounds inside `tx`.
    fn retention(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        self.written_since_retention = 0;
        self.last_retention = Instant::now();
        let cutoff = int(self
            .newest_ns
            .saturating_sub(self.config.max_age_secs.saturating_mul(1_000_000_000)));
        // Engaged host alerts stay whatever their age: their condition still holds.
        let n = tx.execute(
            "DELETE FROM alerts WHERE last_seen < ?1 AND state != 1",
            [cutoff],
        )?;
        self.deleted("alerts", "age", n);
        let n = tx.execute("DELETE FROM flows WHERE last_seen < ?1", [cutoff])?;
        self.deleted("flows", "age", n);
        for (table, max) in [
            ("alerts", self.config.max_alerts),
            ("flows", self.config.max_flows),
        ] {
            let rows: u64 =
                uint(tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?);
            if rows > max {
                let n = tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE id IN \
                         (SELECT id FROM {table} ORDER BY id LIMIT ?1)"
                    ),
                    [int(rows - max)],
                )?;
                self.deleted(table, "rows", n);
            }
        }
        // Size: the oldest tenth of the bigger table at a time, a few steps per pass.
        for _ in 0..8 {
            if Self::live_bytes(tx)? <= self.config.max_bytes {
                break;
            }
            let flows: u64 = uint(tx.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))?);
            let alerts: u64 = uint(tx.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))?);
            let (table, rows) = if flows >= alerts {
                ("flows", flows)
            } else {
                ("alerts", alerts)
            };
            if rows == 0 {
                break;
            }
            let step = (rows / 10).max(SIZE_STEP_MIN);
            let n = tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE id IN \
                     (SELECT id FROM {table} ORDER BY id LIMIT ?1)"
                ),
                [int(step)],
            )?;
            self.deleted(table, "size", n);
            // Give the freed pages back so the file shrinks too.
            // Each step of the pragma frees pages: run it to the end.
            let mut vacuum = tx.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = vacuum.query([])?;
            while rows.next()?.is_some() {}
        }
        self.count_rows(tx)?;
        self.update_size(tx);
        self.bytes_estimate = Self::live_bytes(tx)?;
        Ok(())
    }
}

fn acknowledge(tx: &Transaction<'_>, target: &Target) -> rusqlite::Result<u64> {
    let n = match target {
        Target::Id(id) => tx.execute(
            "UPDATE alerts SET acknowledged = 1 WHERE id = ?1 AND acknowledged = 0",
            [int(*id)],
        )?,
        Target::Filter(f) => {
            let w = sql::alert_where(f);
            let clause = if w.clause.is_empty() {
                " WHERE acknowledged = 0".to_owned()
            } else {
                format!("{} AND acknowledged = 0", w.clause)
            };
            tx.execute(
                &format!("UPDATE alerts SET acknowledged = 1{clause}"),
                rusqlite::params_from_iter(w.params),
            )?
        }
    };
    Ok(n as u64)
}

fn delete(tx: &Transaction<'_>, target: &Target) -> rusqlite::Result<u64> {
    let n = match target {
        Target::Id(id) => tx.execute("DELETE FROM alerts WHERE id = ?1", [int(*id)])?,
        Target::Filter(f) => {
            let w = sql::alert_where(f);
            tx.execute(
                &format!("DELETE FROM alerts{}", w.clause),
                rusqlite::params_from_iter(w.params),
            )?
        }
    };
    Ok(n as u64)
}
