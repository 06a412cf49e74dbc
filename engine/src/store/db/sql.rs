//! Filters as SQL: a `WHERE` clause with `?` placeholders and its values, never text from a
//! request spliced into SQL. Same meaning as the in-memory `matches` of each filter.

use rusqlite::types::Value;

use crate::alerts::store::filter::{AlertFilter, AlertSortKey, HostRole};
use crate::store::db::schema::{IpColumn, entity_code, int, severity_code, state_code};
use crate::store::history::{HistoryFilter, HistorySortKey};

/// A `WHERE` clause (empty = every row) and its parameters.
#[derive(Debug, Default)]
pub struct Where {
    /// ` WHERE …` or empty.
    pub clause: String,
    /// The placeholders' values, in order.
    pub params: Vec<Value>,
}

struct Builder {
    terms: Vec<String>,
    params: Vec<Value>,
}

impl Builder {
    fn new() -> Self {
        Self {
            terms: Vec::new(),
            params: Vec::new(),
        }
    }

    fn term(&mut self, sql: &str, params: impl IntoIterator<Item = Value>) {
        self.terms.push(sql.to_owned());
        self.params.extend(params);
    }

    fn point(&mut self, p: &str) {
        let v = || Value::Text(p.to_owned());
        self.term(
            "(point = ? OR substr(point, 1, length(?) + 1) = ? || '/')",
            [v(), v(), v()],
        );
    }

    fn finish(self) -> Where {
        Where {
            clause: if self.terms.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", self.terms.join(" AND "))
            },
            params: self.params,
        }
    }
}

/// The `WHERE` of an alert filter.
pub fn alert_where(f: &AlertFilter) -> Where {
    let mut b = Builder::new();
    if let Some(v) = f.from {
        b.term("last_seen >= ?", [Value::Integer(int(v))]);
    }
    if let Some(v) = f.to {
        b.term("first_seen <= ?", [Value::Integer(int(v))]);
    }
    if let Some(s) = f.severity {
        b.term("severity >= ?", [Value::Integer(severity_code(s))]);
    }
    if !f.types.is_empty() {
        let marks = vec!["?"; f.types.len()].join(", ");
        b.term(
            &format!("type IN ({marks})"),
            f.types.iter().map(|t| Value::Text(t.clone())),
        );
    }
    if let Some(e) = f.entity {
        b.term("entity = ?", [Value::Integer(entity_code(e))]);
    }
    if let Some(v) = &f.entity_value {
        b.term("entity_value = ?", [Value::Text(v.clone())]);
    }
    if let Some(s) = f.state {
        b.term("state = ?", [Value::Integer(state_code(s))]);
    }
    if let Some(k) = f.acknowledged {
        b.term("acknowledged = ?", [Value::Integer(i64::from(k))]);
    }
    if let Some(p) = &f.point {
        b.point(p);
    }
    if let Some(h) = f.host {
        let ip = || IpColumn::of(h).value();
        let sql = match f.role {
            HostRole::Any => "(client_ip = ? OR server_ip = ?)",
            HostRole::Attacker => {
                "((client_ip = ? AND roles & 1 != 0) OR (server_ip = ? AND roles & 4 != 0))"
            }
            HostRole::Victim => {
                "((client_ip = ? AND roles & 2 != 0) OR (server_ip = ? AND roles & 8 != 0))"
            }
        };
        b.term(sql, [ip(), ip()]);
    }
    b.finish()
}

/// The `ORDER BY` of an alert sort (ties: newest row first, so pages never overlap).
pub fn alert_order(key: AlertSortKey, descending: bool) -> String {
    let col = match key {
        AlertSortKey::Time => "last_seen",
        AlertSortKey::Score => "score",
        AlertSortKey::Count => "count",
        AlertSortKey::Id => "id",
    };
    let dir = if descending { "DESC" } else { "ASC" };
    format!(" ORDER BY {col} {dir}, id DESC")
}

/// The `WHERE` of a history filter.
pub fn history_where(f: &HistoryFilter) -> Where {
    let mut b = Builder::new();
    if let Some(h) = f.host {
        let ip = || IpColumn::of(h).value();
        b.term("(client_ip = ? OR server_ip = ?)", [ip(), ip()]);
    }
    if let Some(p) = f.port {
        let v = || Value::Integer(i64::from(p));
        b.term("(client_port = ? OR server_port = ?)", [v(), v()]);
    }
    if let Some(p) = f.l4 {
        b.term("l4 = ?", [Value::Integer(i64::from(p))]);
    }
    if let Some(v) = f.vlan {
        b.term("vlan = ?", [Value::Integer(i64::from(v))]);
    }
    if let Some(v) = f.from {
        b.term("last_seen >= ?", [Value::Integer(int(v))]);
    }
    if let Some(v) = f.to {
        b.term("first_seen <= ?", [Value::Integer(int(v))]);
    }
    if let Some(p) = &f.point {
        b.point(p);
    }
    b.finish()
}

/// The `ORDER BY` of a history sort (ties: first seen, then row id).
pub fn history_order(key: HistorySortKey, descending: bool) -> String {
    let col = match key {
        HistorySortKey::LastSeen => "last_seen",
        HistorySortKey::FirstSeen => "first_seen",
        HistorySortKey::Bytes => "bytes",
        HistorySortKey::Packets => "packets",
        HistorySortKey::Duration => "(last_seen - first_seen)",
    };
    let dir = if descending { "DESC" } else { "ASC" };
    format!(" ORDER BY {col} {dir}, first_seen ASC, id ASC")
}
