//! Read queries of the store (run on a read connection, see [`super::Db::read`]).

use netwarden_api::alert::{AlertState, Entity, Severity};
use netwarden_api::flow::FlowRecord;
use rusqlite::{Connection, OptionalExtension as _, params_from_iter};

use super::schema::{ALERT_COLUMNS, alert_from_row, flow_from_blob, int, key_id, uint};
use super::sql::{self, Where};
use crate::alerts::StoredAlert;
use crate::alerts::store::filter::{AlertFilter, AlertSortKey};
use crate::store::history::{HistoryFilter, HistorySortKey};

/// The highest alert id ever written (0 when none).
pub fn max_alert_id(conn: &Connection) -> rusqlite::Result<u64> {
    let meta: Option<i64> = conn
        .query_row("SELECT value FROM meta_ids WHERE name = 'alert'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let rows: Option<i64> = conn.query_row("SELECT max(id) FROM alerts", [], |r| r.get(0))?;
    Ok(uint(meta.unwrap_or(0).max(rows.unwrap_or(0))))
}

/// The newest `n` alert rows, newest first.
pub fn newest_alerts(conn: &Connection, n: usize) -> rusqlite::Result<Vec<StoredAlert>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?1"
    ))?;
    stmt.query_map([int(n as u64)], alert_from_row)?.collect()
}

fn count(conn: &Connection, table: &str, w: &Where) -> rusqlite::Result<u64> {
    conn.query_row(
        &format!("SELECT count(*) FROM {table}{}", w.clause),
        params_from_iter(w.params.iter()),
        |r| r.get(0),
    )
    .map(uint)
}

/// One page of alerts matching `filter`, with the total.
pub fn alerts_page(
    conn: &Connection,
    filter: &AlertFilter,
    sort: AlertSortKey,
    descending: bool,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(u64, Vec<StoredAlert>)> {
    let w = sql::alert_where(filter);
    let total = count(conn, "alerts", &w)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts{}{} LIMIT {} OFFSET {}",
        w.clause,
        sql::alert_order(sort, descending),
        limit,
        offset
    ))?;
    let rows = stmt
        .query_map(params_from_iter(w.params.iter()), alert_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((total, rows))
}

/// Row `id`.
pub fn alert_by_id(conn: &Connection, id: u64) -> rusqlite::Result<Option<StoredAlert>> {
    conn.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
        [int(id)],
        alert_from_row,
    )
    .optional()
}

/// The newest row of alert key `key` (found through the index of the key's hash, `key_id`).
pub fn alert_by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<StoredAlert>> {
    conn.query_row(
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE key_id = ?1 AND key = ?2 \
             ORDER BY id DESC LIMIT 1"
        ),
        rusqlite::params![key_id(key), key],
        alert_from_row,
    )
    .optional()
}

/// Alerts grouped by type, severity, entity, state and time bucket of first seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertGroup {
    /// Alert type.
    pub alert_type: String,
    /// Severity.
    pub severity: Severity,
    /// Entity.
    pub entity: Entity,
    /// State.
    pub state: AlertState,
    /// Bucket start, ns.
    pub bucket_ns: u64,
    /// Rows in the group.
    pub rows: u64,
}

/// The groups of the alerts matching `filter`, buckets `bucket_ns` wide.
pub fn alert_groups(
    conn: &Connection,
    filter: &AlertFilter,
    bucket_ns: u64,
) -> rusqlite::Result<Vec<AlertGroup>> {
    let w = sql::alert_where(filter);
    let width = int(bucket_ns.max(1));
    let mut stmt = conn.prepare(&format!(
        "SELECT type, severity, entity, state, (first_seen / {width}) * {width}, count(*) \
         FROM alerts{} GROUP BY 1, 2, 3, 4, 5",
        w.clause
    ))?;
    stmt.query_map(params_from_iter(w.params.iter()), |r| {
        // Decode the small enums through a row of the full shape's helpers.
        Ok(AlertGroup {
            alert_type: r.get(0)?,
            severity: super::schema::severity_of(r.get(1)?),
            entity: super::schema::entity_of(r.get(2)?),
            state: super::schema::state_of(r.get(3)?),
            bucket_ns: uint(r.get(4)?),
            rows: uint(r.get(5)?),
        })
    })?
    .collect()
}

/// One page of ended flows matching `filter`, with the total.
pub fn history_page(
    conn: &Connection,
    filter: &HistoryFilter,
    sort: HistorySortKey,
    descending: bool,
    offset: usize,
    limit: usize,
) -> rusqlite::Result<(u64, Vec<FlowRecord>)> {
    let w = sql::history_where(filter);
    let total = count(conn, "flows", &w)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT record FROM flows{}{} LIMIT {} OFFSET {}",
        w.clause,
        sql::history_order(sort, descending),
        limit,
        offset
    ))?;
    let rows = stmt
        .query_map(params_from_iter(w.params.iter()), |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .filter_map(|b| b.map(|b| flow_from_blob(&b)).transpose())
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((total, rows))
}

/// Rows per table: (alerts, flows).
pub fn row_counts(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    let a: i64 = conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))?;
    let f: i64 = conn.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))?;
    Ok((uint(a), uint(f)))
}
