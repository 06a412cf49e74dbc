//! The SQLite schema and how alerts and flows become rows and back.
//!
//! Filterable fields are columns (indexed where queries need them); the triggering flow is a
//! protobuf blob (the bus's own encoding, `api/proto/netwarden.proto`), so a row is compact and
//! decodes to exactly the record that was stored. Enums are small integers in their `Ord` order,
//! so `severity >= ?` is a range.

use netwarden_api::alert::{Alert, AlertState, AnomalyBand, Entity, Roles, Severity};
use netwarden_api::flow::{FlowRecord, ip_to_bytes};
use prost::Message as _;
use rusqlite::{Connection, Row};

use crate::alerts::StoredAlert;
use crate::alerts::store::filter::alert_hosts;

/// Schema version written in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

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
    anomaly TEXT
);
CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts(last_seen);
CREATE INDEX IF NOT EXISTS alerts_key ON alerts(key);
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

/// Creates the schema (and sets incremental auto-vacuum on a new file, so retention can give
/// pages back to the file system).
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        // Must precede the first table of a new database.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    }
    conn.execute_batch(PRAGMAS)?;
    conn.execute_batch(DDL)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    Ok(())
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

/// The upsert of one alert row: a repeat updates what changes, and an acknowledgement sticks.
pub const UPSERT_ALERT: &str = "
INSERT INTO alerts (id, key, type, entity, entity_value, severity, score, client_score,
    server_score, roles, point, first_seen, last_seen, count, state, acknowledged, message,
    client_ip, server_ip, flow, anomaly)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21)
ON CONFLICT(id) DO UPDATE SET
    severity = excluded.severity, score = excluded.score, client_score = excluded.client_score,
    server_score = excluded.server_score, roles = excluded.roles,
    last_seen = excluded.last_seen, count = excluded.count, state = excluded.state,
    acknowledged = max(acknowledged, excluded.acknowledged), message = excluded.message,
    anomaly = excluded.anomaly";

/// Binds and runs [`UPSERT_ALERT`] for `row`; about how many bytes the row takes.
pub fn upsert_alert(
    stmt: &mut rusqlite::Statement<'_>,
    row: &StoredAlert,
) -> rusqlite::Result<u64> {
    let a = &row.alert;
    let (client, server) = alert_hosts(a);
    let flow = a
        .flow
        .as_ref()
        .map(|f| prost::Message::encode_to_vec(f.as_ref()));
    let anomaly = a
        .anomaly
        .as_ref()
        .and_then(|b| serde_json::to_string(b).ok());
    stmt.execute(rusqlite::params![
        int(row.id),
        a.key,
        a.alert_type,
        entity_code(a.entity),
        a.entity_value,
        severity_code(a.severity),
        a.score,
        a.client_score,
        a.server_score,
        roles_code(a.roles),
        a.observation_point,
        int(a.first_seen_ns),
        int(a.last_seen_ns),
        int(a.count),
        state_code(a.state),
        row.acknowledged,
        a.message,
        client.map(ip_to_bytes),
        server.map(ip_to_bytes),
        flow,
        anomaly,
    ])?;
    Ok(ROW_OVERHEAD
        + (a.key.len() + a.alert_type.len() + a.entity_value.len() + a.message.len()) as u64
        + a.flow.as_ref().map_or(0, |f| f.encoded_len() as u64))
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

/// The insert of one ended flow.
pub const INSERT_FLOW: &str = "
INSERT INTO flows (first_seen, last_seen, client_ip, server_ip, client_port, server_port, l4,
    vlan, point, bytes, packets, record)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Binds and runs [`INSERT_FLOW`] for `r`; about how many bytes the row takes.
pub fn insert_flow(stmt: &mut rusqlite::Statement<'_>, r: &FlowRecord) -> rusqlite::Result<u64> {
    let point = r
        .observation_point
        .as_ref()
        .map(crate::hosts::point_label)
        .unwrap_or_default();
    let blob = r.encode_to_vec();
    let size = (blob.len() + point.len() + 2 * r.client_ip.len()) as u64;
    stmt.execute(rusqlite::params![
        int(r.first_seen_ns),
        int(r.last_seen_ns),
        r.client_ip,
        r.server_ip,
        r.client_port,
        r.server_port,
        r.l4_proto,
        r.vlan,
        point,
        int(r.total_bytes()),
        int(r.total_packets()),
        blob,
    ])?;
    Ok(ROW_OVERHEAD + size)
}

/// A flow from its `record` column (`None` when the blob does not decode).
pub fn flow_from_blob(blob: &[u8]) -> Option<FlowRecord> {
    FlowRecord::decode(blob).ok()
}
