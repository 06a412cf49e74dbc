//! The in-memory alert store: bounded by count and by age, indexed by key for updates and
//! scanned for queries.
//!
//! Rows are kept in arrival order; an alert whose key repeats within the dedup window updates
//! its row (count, last seen, state) instead of adding one. It decides row ids and dedup. With
//! `--data DIR` every row it inserts or updates is also handed to the persistent store
//! ([`crate::store::db`]) through a non-blocking [`StoreSink`]: this store is then the hot tier
//! (the newest rows, for dedup and the report) and the database the one the API queries.

pub mod filter;

use std::collections::{BTreeMap, HashMap};

use netwarden_api::alert::Alert;
use serde::Serialize;

use crate::store::db::StoreSink;
use filter::AlertFilter;

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
    sink: Option<StoreSink>,
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
            sink: None,
        }
    }

    /// Hands every later insert and update to `sink` (the persistent store), after loading
    /// `recent` rows (oldest first) from it; ids continue at `next_id` at least.
    pub fn attach(&mut self, sink: StoreSink, recent: Vec<StoredAlert>, next_id: u64) {
        let newest = recent.iter().map(|r| r.alert.last_seen_ns).max();
        for row in recent {
            self.by_key.insert(row.alert.key.clone(), row.id);
            self.next = self.next.max(row.id + 1);
            self.rows.insert(row.id, row);
        }
        self.next = self.next.max(next_id);
        if let Some(t) = newest {
            self.trim(t);
        }
        self.sink = Some(sink);
    }

    /// Takes over the rows, ids and sink of `old` (a configuration reload must not lose
    /// alerts), within this store's own bounds.
    pub fn adopt(&mut self, old: Self) {
        let newest = old.rows.values().map(|r| r.alert.last_seen_ns).max();
        self.rows = old.rows;
        self.by_key = old.by_key;
        self.next = self.next.max(old.next);
        self.evicted += old.evicted;
        self.sink = old.sink;
        if let Some(t) = newest {
            self.trim(t);
        }
    }

    /// Whether rows also go to the persistent store.
    pub fn is_persistent(&self) -> bool {
        self.sink.is_some()
    }

    fn persist(&self, id: u64) {
        if let (Some(sink), Some(row)) = (&self.sink, self.rows.get(&id)) {
            sink.alert(row);
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
                let id = row.id;
                self.persist(id);
                return Upsert::Updated(id);
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
        self.persist(id);
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

    /// Acknowledges every row `filter` matches; the number that changed.
    pub fn acknowledge_where(&mut self, filter: &AlertFilter) -> usize {
        let mut n = 0;
        for row in self.rows.values_mut() {
            if !row.acknowledged && filter.matches(row) {
                row.acknowledged = true;
                n += 1;
            }
        }
        n
    }

    /// Removes every row `filter` matches; the number removed.
    pub fn remove_where(&mut self, filter: &AlertFilter) -> usize {
        let ids: Vec<u64> = self
            .rows
            .values()
            .filter(|r| filter.matches(r))
            .map(|r| r.id)
            .collect();
        for id in &ids {
            self.remove(*id);
        }
        ids.len()
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
