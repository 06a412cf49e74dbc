//! The SQLite schema and how alerts and flows become rows and back.
//!
//! Filterable fields are columns (indexed where queries need them); the triggering flow is a
//! protobuf blob (the bus's own encoding, `api/proto/netwarden.proto`), so a row is compact and
//! decodes to exactly the record that was stored. Enums are small integers in their `Ord` order,
//! so `severity >= ?` is a range.

use std::net::IpAddr;

use netwarden_api::alert::{Alert, AlertState, AnomalyBand, Entity, Roles, Severity};
use netwarden_api::flow::{FlowRecord, ip_from_bytes};
use prost::Message as _;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, Row, ToSql};

use crate::alerts::StoredAlert;
use crate::alerts::store::filter::alert_hosts;

/// Schema version written in `PRAGMA user_version`. 2: alerts are found by key through an
/// integer hash of the key (`key_id`, indexed) instead of an index on the key text, and IPv4
/// addresses are stored as integers (IPv6 stays a 16-byte blob). A version-1 file is migrated
/// when opened; a newer one is refused.
pub const SCHEMA_VERSION: i64 = 2;

/// Connection settings of every connection (writer and readers).
pub const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA temp_store = MEMORY;
PRAGMA busy_timeout = 5000;
PRAGMA journal_size_limit = 67108864;
PRAGMA cache_size = -65536;
PRAGMA wal_autocheckpoint = 8192;
";

/// Tables and indexes.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    entity INTEGER NOT NULL,
    entity_value TEXT NOT NULL,
    severity INTEGER NOT NULL,
    score INTEGER NOT NULL,
    client_score INTEGER NOT NULL,
    server_score INTEGER NOT NULL,
    roles INTEGER NOT NULL,
    point TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL,
    state INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL,
    client_ip BLOB,
    server_ip BLOB,
    flow BLOB,
    anomaly TEXT,
    key_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts(last_seen);
CREATE INDEX IF NOT EXISTS alerts_key_id ON alerts(key_id);
CREATE INDEX IF NOT EXISTS alerts_client_ip ON alerts(client_ip) WHERE client_ip IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_server_ip ON alerts(server_ip) WHERE server_ip IS NOT NULL;
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    client_ip BLOB NOT NULL,
    server_ip BLOB NOT NULL,
    client_port INTEGER NOT NULL,
    server_port INTEGER NOT NULL,
    l4 INTEGER NOT NULL,
    vlan INTEGER NOT NULL,
    point TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    packets INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_last_seen ON flows(last_seen);
CREATE INDEX IF NOT EXISTS flows_client_ip ON flows(client_ip, last_seen);
CREATE INDEX IF NOT EXISTS flows_server_ip ON flows(server_ip, last_seen);
CREATE TABLE IF NOT EXISTS meta_ids (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Why a database cannot be opened as it is.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Written by a newer engine: refused rather than misread.
    #[error(
        "the database has schema version {found}, newer than this engine's {SCHEMA_VERSION}: \
         run the newer engine, or move the file away to start an empty store"
    )]
    Newer {
        /// The file's version.
        found: i64,
    },
    /// SQLite failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Creates the schema (and sets incremental auto-vacuum on a new file, so retention can give
/// pages back to the file system), migrating a version-1 file; refuses a newer one.
pub fn create(conn: &Connection) -> Result<(), SchemaError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(SchemaError::Newer { found: version });
    }
    if version == 0 {
        // Must precede the first table of a new database.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    }
    conn.execute_batch(PRAGMAS)?;
    if version == 1 {
        migrate_1_to_2(conn)?;
    }
    conn.execute_batch(DDL)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    Ok(())
}

/// Version 1 → 2, in one transaction: the `key_id` column and its index replace the index on
/// the key text, IPv4 addresses become integers.
fn migrate_1_to_2(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "ALTER TABLE alerts ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0;
         DROP INDEX IF EXISTS alerts_key;",
    )?;
    {
        let mut read = tx.prepare("SELECT id, key, client_ip, server_ip FROM alerts")?;
        let mut write = tx.prepare(
            "UPDATE alerts SET key_id = ?2, client_ip = ?3, server_ip = ?4 WHERE id = ?1",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let key: String = r.get(1)?;
            let c: Option<Vec<u8>> = r.get(2)?;
            let s: Option<Vec<u8>> = r.get(3)?;
            write.execute(rusqlite::params![
                id,
                key_id(&key),
                c.as_deref().map(IpColumn::from_bytes),
                s.as_deref().map(IpColumn::from_bytes),
            ])?;
        }
        let mut read =
            tx.prepare("SELECT id, client_ip, server_ip FROM flows WHERE length(client_ip) = 4 OR length(server_ip) = 4")?;
        let mut write =
            tx.prepare("UPDATE flows SET client_ip = ?2, server_ip = ?3 WHERE id = ?1")?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let c: Vec<u8> = r.get(1)?;
            let s: Vec<u8> = r.get(2)?;
            write.execute(rusqlite::params![
                id,
                IpColumn::from_bytes(&c),
                IpColumn::from_bytes(&s)
            ])?;
        }
    }
    tx.commit()
}

/// The integer a key is found by: FNV-1a 64 of its text, as SQLite's `i64` (a look-up also
/// compares the text, so a collision costs a row read, never a wrong answer).
pub fn key_id(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// An address as stored: IPv4 as its 32-bit integer (a cheaper index entry and comparison),
/// IPv6 as its 16 bytes; anything else (a malformed record) as the bytes it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpColumn {
    /// An IPv4 address.
    V4(u32),
    /// Any other bytes.
    Bytes(Vec<u8>),
}

impl IpColumn {
    /// The column of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::Bytes(v6.octets().to_vec()),
        }
    }

    /// The column of a record's address bytes.
    pub fn from_bytes(b: &[u8]) -> Self {
        match ip_from_bytes(b) {
            Some(ip) => Self::of(ip),
            None => Self::Bytes(b.to_vec()),
        }
    }

    /// As a bound parameter.
    pub fn value(self) -> Value {
        match self {
            Self::V4(v) => Value::Integer(i64::from(v)),
            Self::Bytes(b) => Value::Blob(b),
        }
    }
}

impl ToSql for IpColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::V4(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
            Self::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// `u64` → SQLite's `i64` (saturating: times are ns until 2262, counters clamp).
pub fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// SQLite's `i64` → `u64` (negatives, impossible from this schema, read as 0).
pub fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Severity as stored.
pub const fn severity_code(s: Severity) -> i64 {
    match s {
        Severity::None => 0,
        Severity::Info => 1,
        Severity::Notice => 2,
        Severity::Warning => 3,
        Severity::Error => 4,
        Severity::Critical => 5,
        Severity::Emergency => 6,
    }
}

pub(super) fn severity_of(code: i64) -> Severity {
    match code {
        1 => Severity::Info,
        2 => Severity::Notice,
        3 => Severity::Warning,
        4 => Severity::Error,
        5 => Severity::Critical,
        6 => Severity::Emergency,
        _ => Severity::None,
    }
}

/// Entity as stored.
pub const fn entity_code(e: Entity) -> i64 {
    match e {
        Entity::Flow => 0,
        Entity::Host => 1,
        Entity::Interface => 2,
        Entity::Network => 3,
        Entity::ObservationPoint => 4,
        Entity::ServiceMap => 5,
    }
}

pub(super) fn entity_of(code: i64) -> Entity {
    match code {
        1 => Entity::Host,
        2 => Entity::Interface,
        3 => Entity::Network,
        4 => Entity::ObservationPoint,
        5 => Entity::ServiceMap,
        _ => Entity::Flow,
    }
}

/// State as stored.
pub const fn state_code(s: AlertState) -> i64 {
    match s {
        AlertState::Past => 0,
        AlertState::Engaged => 1,
        AlertState::Released => 2,
    }
}

pub(super) fn state_of(code: i64) -> AlertState {
    match code {
        1 => AlertState::Engaged,
        2 => AlertState::Released,
        _ => AlertState::Past,
    }
}

/// Role bits: client attacker 1, client victim 2, server attacker 4, server victim 8.
pub const fn roles_code(r: Roles) -> i64 {
    (r.client_attacker as i64)
        | ((r.client_victim as i64) << 1)
        | ((r.server_attacker as i64) << 2)
        | ((r.server_victim as i64) << 3)
}

fn roles_of(code: i64) -> Roles {
    Roles {
        client_attacker: code & 1 != 0,
        client_victim: code & 2 != 0,
        server_attacker: code & 4 != 0,
        server_victim: code & 8 != 0,
    }
}

/// Rows per multi-row statement (one `INSERT … VALUES (…), (…), …`): fewer statement
/// executions per row, and well under SQLite's limit of bound parameters.
pub const ROWS_PER_STATEMENT: usize = 32;

/// The upsert of `n` alert rows: a repeat updates what changes, and an acknowledgement sticks.
pub fn upsert_alerts_sql(n: usize) -> String {
    let tuple = format!("({})", ["?"; ALERT_PARAMS].join(", "));
    format!(
        "INSERT INTO alerts (id, key, type, entity, entity_value, severity, score, client_score, \
         server_score, roles, point, first_seen, last_seen, count, state, acknowledged, message, \
         client_ip, server_ip, flow, anomaly, key_id) VALUES {} \
         ON CONFLICT(id) DO UPDATE SET \
         severity = excluded.severity, score = excluded.score, \
         client_score = excluded.client_score, server_score = excluded.server_score, \
         roles = excluded.roles, last_seen = excluded.last_seen, count = excluded.count, \
         state = excluded.state, acknowledged = max(acknowledged, excluded.acknowledged), \
         message = excluded.message, anomaly = excluded.anomaly",
        vec![tuple.as_str(); n.max(1)].join(", ")
    )
}

/// Parameters per alert row.
const ALERT_PARAMS: usize = 22;

/// An alert row ready to bind, built on the producer's side: its text fields in one buffer, its
/// flow already protobuf-encoded, so the queue holds neither a deep clone of the alert nor of
/// its flow, and the writer thread only binds.
#[derive(Debug)]
pub struct AlertRow {
    /// Row id.
    pub id: u64,
    /// Last seen, ns (retention's clock).
    pub last_seen_ns: u64,
    ints: [i64; 12],
    acknowledged: bool,
    /// key, type, entity value, point, message, one after the other…
    text: String,
    /// …ending at these offsets.
    ends: [usize; 5],
    client: Option<IpColumn>,
    server: Option<IpColumn>,
    flow: Option<Vec<u8>>,
    anomaly: Option<String>,
}

impl AlertRow {
    /// The row of `row`.
    pub fn new(row: &StoredAlert) -> Self {
        let a = &row.alert;
        let (client, server) = alert_hosts(a);
        let mut text = String::with_capacity(
            a.key.len()
                + a.alert_type.len()
                + a.entity_value.len()
                + a.observation_point.len()
                + a.message.len(),
        );
        let mut ends = [0; 5];
        for (i, s) in [
            &a.key,
            &a.alert_type,
            &a.entity_value,
            &a.observation_point,
            &a.message,
        ]
        .into_iter()
        .enumerate()
        {
            text.push_str(s);
            ends[i] = text.len();
        }
        Self {
            id: row.id,
            last_seen_ns: a.last_seen_ns,
            ints: [
                int(row.id),
                entity_code(a.entity),
                severity_code(a.severity),
                i64::from(a.score),
                i64::from(a.client_score),
                i64::from(a.server_score),
                roles_code(a.roles),
                int(a.first_seen_ns),
                int(a.last_seen_ns),
                int(a.count),
                state_code(a.state),
                key_id(&a.key),
            ],
            acknowledged: row.acknowledged,
            text,
            ends,
            client: client.map(IpColumn::of),
            server: server.map(IpColumn::of),
            flow: a
                .flow
                .as_ref()
                .map(|f| prost::Message::encode_to_vec(f.as_ref())),
            anomaly: a
                .anomaly
                .as_ref()
                .and_then(|b| serde_json::to_string(b).ok()),
        }
    }

    fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i]).unwrap_or_default()
    }

    /// About how many bytes the row takes in the file.
    pub fn size(&self) -> u64 {
        ROW_OVERHEAD + (self.text.len() + self.flow.as_ref().map_or(0, Vec::len)) as u64
    }
}

/// Binds and runs a statement of [`upsert_alerts_sql`]`(rows.len())`.
pub fn upsert_alerts(
    stmt: &mut rusqlite::Statement<'_>,
    rows: &[AlertRow],
) -> rusqlite::Result<()> {
    for (i, row) in rows.iter().enumerate() {
        let at = i * ALERT_PARAMS;
        let n = &row.ints;
        let ints = [
            (1, n[0]),
            (4, n[1]),
            (6, n[2]),
            (7, n[3]),
            (8, n[4]),
            (9, n[5]),
            (10, n[6]),
            (12, n[7]),
            (13, n[8]),
            (14, n[9]),
            (15, n[10]),
            (22, n[11]),
        ];
        for (p, v) in ints {
            stmt.raw_bind_parameter(at + p, v)?;
        }
        for (p, t) in [(2, 0), (3, 1), (5, 2), (11, 3), (17, 4)] {
            stmt.raw_bind_parameter(at + p, row.text(t))?;
        }
        stmt.raw_bind_parameter(at + 16, row.acknowledged)?;
        stmt.raw_bind_parameter(at + 18, &row.client)?;
        stmt.raw_bind_parameter(at + 19, &row.server)?;
        stmt.raw_bind_parameter(at + 20, &row.flow)?;
        stmt.raw_bind_parameter(at + 21, &row.anomaly)?;
    }
    stmt.raw_execute().map(drop)
}

/// Bytes a row costs beyond its variable fields (columns, index entries, page slack): an
/// estimate that makes the size check run early rather than late.
pub const ROW_OVERHEAD: u64 = 160;

/// The columns [`alert_from_row`] reads, in order.
pub const ALERT_COLUMNS: &str = "id, key, type, entity, entity_value, severity, score, \
    client_score, server_score, roles, point, first_seen, last_seen, count, state, \
    acknowledged, message, flow, anomaly";

/// A stored alert from a row of [`ALERT_COLUMNS`]. A flow blob that does not decode (a damaged
/// file) leaves `flow` empty rather than failing the query.
pub fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<StoredAlert> {
    let flow: Option<Vec<u8>> = r.get(17)?;
    let anomaly: Option<String> = r.get(18)?;
    Ok(StoredAlert {
        id: uint(r.get(0)?),
        acknowledged: r.get(15)?,
        alert: Alert {
            key: r.get(1)?,
            alert_type: r.get(2)?,
            entity: entity_of(r.get(3)?),
            entity_value: r.get(4)?,
            severity: severity_of(r.get(5)?),
            score: r.get(6)?,
            client_score: r.get(7)?,
            server_score: r.get(8)?,
            roles: roles_of(r.get(9)?),
            observation_point: r.get(10)?,
            first_seen_ns: uint(r.get(11)?),
            last_seen_ns: uint(r.get(12)?),
            count: uint(r.get(13)?),
            state: state_of(r.get(14)?),
            message: r.get(16)?,
            flow: flow
                .and_then(|b| FlowRecord::decode(b.as_slice()).ok())
                .map(Box::new),
            anomaly: anomaly.and_then(|s| serde_json::from_str::<AnomalyBand>(&s).ok()),
        },
    })
}

/// The insert of `n` ended flows.
pub fn insert_flows_sql(n: usize) -> String {
    let tuple = format!("({})", ["?"; FLOW_PARAMS].join(", "));
    format!(
        "INSERT INTO flows (first_seen, last_seen, client_ip, server_ip, client_port, \
         server_port, l4, vlan, point, bytes, packets, record) VALUES {}",
        vec![tuple.as_str(); n.max(1)].join(", ")
    )
}

/// Parameters per flow row.
const FLOW_PARAMS: usize = 12;

/// An ended flow ready to bind, built on the producer's side (the record encoded once, no
/// clone of it queued).
#[derive(Debug)]
pub struct FlowRow {
    /// Last seen, ns (retention's clock).
    pub last_seen_ns: u64,
    ints: [i64; 8],
    client: IpColumn,
    server: IpColumn,
    point: String,
    record: Vec<u8>,
}

impl FlowRow {
    /// The row of `r`.
    pub fn new(r: &FlowRecord) -> Self {
        Self {
            last_seen_ns: r.last_seen_ns,
            ints: [
                int(r.first_seen_ns),
                int(r.last_seen_ns),
                i64::from(r.client_port),
                i64::from(r.server_port),
                i64::from(r.l4_proto),
                i64::from(r.vlan),
                int(r.total_bytes()),
                int(r.total_packets()),
            ],
            client: IpColumn::from_bytes(&r.client_ip),
            server: IpColumn::from_bytes(&r.server_ip),
            point: r
                .observation_point
                .as_ref()
                .map(crate::hosts::point_label)
                .unwrap_or_default(),
            record: r.encode_to_vec(),
        }
    }
}

impl FlowRow {
    /// About how many bytes the row takes in the file.
    pub fn size(&self) -> u64 {
        ROW_OVERHEAD + (self.record.len() + self.point.len() + 16) as u64
    }
}

/// Binds and runs a statement of [`insert_flows_sql`]`(rows.len())`.
pub fn insert_flows(stmt: &mut rusqlite::Statement<'_>, rows: &[FlowRow]) -> rusqlite::Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let at = i * FLOW_PARAMS;
        let n = &r.ints;
        for (p, v) in [
            (1, n[0]),
            (2, n[1]),
            (5, n[2]),
            (6, n[3]),
            (7, n[4]),
            (8, n[5]),
            (10, n[6]),
            (11, n[7]),
        ] {
            stmt.raw_bind_parameter(at + p, v)?;
        }
        stmt.raw_bind_parameter(at + 3, &r.client)?;
        stmt.raw_bind_parameter(at + 4, &r.server)?;
        stmt.raw_bind_parameter(at + 9, r.point.as_str())?;
        stmt.raw_bind_parameter(at + 12, r.record.as_slice())?;
    }
    stmt.raw_execute().map(drop)
}

/// A flow from its `record` column (`None` when the blob does not decode).
pub fn flow_from_blob(blob: &[u8]) -> Option<FlowRecord> {
    FlowRecord::decode(blob).ok()
}
