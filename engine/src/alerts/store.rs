//! The alert store: embedded, bounded by count and by age, indexed by key for updates and
//! scanned for queries.
//!
//! In memory for now (the path forward is a redb/SQLite table with the same `upsert` and
//! `query` surface, written in batches from the outbox). Rows are kept in arrival order; an
//! alert whose key repeats within the dedup window updates its row (count, last seen, state)
//! instead of adding one.

use std::collections::{BTreeMap, HashMap};

use netwarden_api::alert::Alert;
use serde::Serialize;

/// Rows kept by default.
pub const DEFAULT_MAX_ALERTS: usize = 100_000;
/// Age kept by default (7 days), ns.
pub const DEFAULT_MAX_AGE_NS: u64 = 7 * 24 * 3600 * 1_000_000_000;
/// Repeats of one key closer than this (ns) update the row instead of adding one (5 min).
pub const DEFAULT_DEDUP_NS: u64 = 300 * 1_000_000_000;

/// A stored alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredAlert {
    /// Row id (increasing).
    pub id: u64,
    /// Whether someone acknowledged it.
    pub acknowledged: bool,
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    /// A new row.
    Inserted(u64),
    /// An existing row was updated.
    Updated(u64),
}

/// The bounded store.
pub struct AlertStore {
    rows: BTreeMap<u64, StoredAlert>,
    by_key: HashMap<String, u64>,
    next: u64,
    max_rows: usize,
    max_age_ns: u64,
    dedup_ns: u64,
    /// Rows dropped for size or age.
    pub evicted: u64,
}

impl Default for AlertStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ALERTS, DEFAULT_MAX_AGE_NS, DEFAULT_DEDUP_NS)
    }
}

impl AlertStore {
    /// A store of at most `max_rows` rows younger than `max_age_ns`.
    pub fn new(max_rows: usize, max_age_ns: u64, dedup_ns: u64) -> Self {
        Self {
            rows: BTreeMap::new(),
            by_key: HashMap::new(),
            next: 1,
            max_rows: max_rows.max(1),
            max_age_ns,
            dedup_ns,
            evicted: 0,
        }
    }

    /// Stores `alert`, or updates the row of its key if it was seen within the dedup window
    /// (or is still engaged). Returns the row id.
    pub fn upsert(&mut self, alert: Alert) -> Upsert {
        if let Some(row) = self
            .by_key
            .get(&alert.key)
            .and_then(|id| self.rows.get_mut(id))
        {
            let a = &mut row.alert;
            let engaged = a.state == netwarden_api::alert::AlertState::Engaged;
            if engaged || alert.first_seen_ns <= a.last_seen_ns.saturating_add(self.dedup_ns) {
                let is_release = alert.state == netwarden_api::alert::AlertState::Released;
                if !is_release || !engaged {
                    a.count += alert.count;
                }
                a.last_seen_ns = a.last_seen_ns.max(alert.last_seen_ns);
                a.state = alert.state;
                a.message = alert.message;
                return Upsert::Updated(row.id);
            }
        }
        let id = self.next;
        self.next += 1;
        let newest = alert.last_seen_ns;
        self.by_key.insert(alert.key.clone(), id);
        self.rows.insert(
            id,
            StoredAlert {
                id,
                acknowledged: false,
                alert,
            },
        );
        self.trim(newest);
        Upsert::Inserted(id)
    }

    fn trim(&mut self, newest_ns: u64) {
        let cutoff = newest_ns.saturating_sub(self.max_age_ns);
        while let Some((&id, row)) = self.rows.first_key_value() {
            let too_many = self.rows.len() > self.max_rows;
            let too_old = row.alert.last_seen_ns < cutoff
                && row.alert.state != netwarden_api::alert::AlertState::Engaged;
            if !(too_many || too_old) {
                break;
            }
            self.remove(id);
            self.evicted += 1;
        }
    }

    /// Removes row `id`; returns it.
    pub fn remove(&mut self, id: u64) -> Option<StoredAlert> {
        let row = self.rows.remove(&id)?;
        if self.by_key.get(&row.alert.key) == Some(&id) {
            self.by_key.remove(&row.alert.key);
        }
        Some(row)
    }

    /// Marks row `id` acknowledged.
    pub fn acknowledge(&mut self, id: u64) -> bool {
        self.rows
            .get_mut(&id)
            .map(|r| r.acknowledged = true)
            .is_some()
    }

    /// Row `id`.
    pub fn get(&self, id: u64) -> Option<&StoredAlert> {
        self.rows.get(&id)
    }

    /// The latest row of `key`.
    pub fn by_key(&self, key: &str) -> Option<&StoredAlert> {
        self.by_key.get(key).and_then(|id| self.rows.get(id))
    }

    /// Every row, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &StoredAlert> {
        self.rows.values()
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use netwarden_api::alert::{AlertState, Entity, Roles, Severity};

    use super::*;

    pub(crate) fn alert(key: &str, t: u64, state: AlertState) -> Alert {
        Alert {
            key: key.into(),
            alert_type: "x".into(),
            entity: Entity::Host,
            entity_value: "10.0.0.1".into(),
            severity: Severity::Warning,
            score: 50,
            client_score: 50,
            server_score: 0,
            roles: Roles::default(),
            observation_point: String::new(),
            first_seen_ns: t,
            last_seen_ns: t,
            count: 1,
            state,
            message: String::new(),
            flow: None,
            anomaly: None,
        }
    }

    #[test]
    fn dedups_within_the_window_and_stays_bounded() {
        let s60 = 60 * 1_000_000_000;
        let mut st = AlertStore::new(3, 1000 * s60, 5 * s60);
        assert_eq!(
            st.upsert(alert("a", 0, AlertState::Past)),
            Upsert::Inserted(1)
        );
        assert_eq!(
            st.upsert(alert("a", s60, AlertState::Past)),
            Upsert::Updated(1)
        );
        assert_eq!(st.by_key("a").unwrap().alert.count, 2);
        assert_eq!(
            st.upsert(alert("a", 10 * s60, AlertState::Past)),
            Upsert::Inserted(2)
        );
        for k in ["b", "c", "d"] {
            st.upsert(alert(k, 11 * s60, AlertState::Past));
        }
        assert_eq!(st.len(), 3);
        assert_eq!(st.evicted, 2);
        assert!(st.get(1).is_none() && st.by_key("a").is_none());
    }

    #[test]
    fn engaged_then_released_is_one_row_and_old_rows_age_out() {
        let s = 1_000_000_000;
        let mut st = AlertStore::new(100, 3600 * s, 300 * s);
        st.upsert(alert("h", 0, AlertState::Engaged));
        st.upsert(alert("h", 4000 * s, AlertState::Released));
        let row = st.by_key("h").unwrap();
        assert_eq!(
            (row.alert.state, row.alert.count, row.id),
            (AlertState::Released, 1, 1)
        );
        st.upsert(alert("z", 9000 * s, AlertState::Past));
        assert!(st.by_key("h").is_none(), "older than an hour");
        assert!(st.acknowledge(2) && st.get(2).unwrap().acknowledged);
    }
}
