//! Which alerts a query, an acknowledgement or a deletion is about: plain data, matched in
//! memory here and rendered to SQL by the persistent store (`store::db::sql` in the flow-store module), with the same
//! meaning (a test compares both on the same rows).

use std::net::IpAddr;

use netwarden_api::alert::{Alert, AlertState, Entity, Severity};

use crate::alerts::StoredAlert;

/// Most alert types one filter may name.
pub const MAX_TYPES: usize = 64;

/// The role a host had in an alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostRole {
    /// Involved at all (flow client or server, or the host of a host alert).
    #[default]
    Any,
    /// Flagged attacker.
    Attacker,
    /// Flagged victim.
    Victim,
}

/// What to sort alerts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertSortKey {
    /// Last seen.
    #[default]
    Time,
    /// Score.
    Score,
    /// Repeats.
    Count,
    /// Row id (arrival order).
    Id,
}

/// A validated alert filter; every field `None`/empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Last seen at or after (ns).
    pub from: Option<u64>,
    /// First seen at or before (ns).
    pub to: Option<u64>,
    /// Minimum severity.
    pub severity: Option<Severity>,
    /// Alert types (any of).
    pub types: Vec<String>,
    /// Entity kind.
    pub entity: Option<Entity>,
    /// Exact entity value (`10.0.0.1`, a flow's 5-tuple text, a point name).
    pub entity_value: Option<String>,
    /// A host involved, with `role`.
    pub host: Option<IpAddr>,
    /// The host's role.
    pub role: HostRole,
    /// Life-cycle state.
    pub state: Option<AlertState>,
    /// Observation point name, or a prefix of it ending at a `/` (a sensor name).
    pub point: Option<String>,
    /// Acknowledged or not.
    pub acknowledged: Option<bool>,
}

impl AlertFilter {
    /// Whether no criterion is set (the filter matches every row).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `row` passes.
    pub fn matches(&self, row: &StoredAlert) -> bool {
        let a = &row.alert;
        self.from.is_none_or(|f| a.last_seen_ns >= f)
            && self.to.is_none_or(|t| a.first_seen_ns <= t)
            && self.severity.is_none_or(|s| a.severity >= s)
            && (self.types.is_empty() || self.types.contains(&a.alert_type))
            && self.entity.is_none_or(|e| a.entity == e)
            && self
                .entity_value
                .as_ref()
                .is_none_or(|v| a.entity_value == *v)
            && self.state.is_none_or(|s| a.state == s)
            && self.acknowledged.is_none_or(|k| row.acknowledged == k)
            && self
                .point
                .as_ref()
                .is_none_or(|p| point_matches(&a.observation_point, p))
            && self.host.is_none_or(|h| host_matches(a, h, self.role))
    }
}

/// Whether point `name` is `wanted` or lies under it (`wanted` = `sensor` matches `sensor/eth0`).
pub fn point_matches(name: &str, wanted: &str) -> bool {
    name == wanted
        || name
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The addresses an alert involves as (client, server): a flow alert's client and server, a
/// host alert's host as client (ntopng: the roles of a host alert describe the host).
pub fn alert_hosts(a: &Alert) -> (Option<IpAddr>, Option<IpAddr>) {
    match (&a.flow, a.entity) {
        (Some(f), _) => (f.client_addr(), f.server_addr()),
        (None, Entity::Host) => (a.entity_value.parse().ok(), None),
        _ => (None, None),
    }
}

fn host_matches(a: &Alert, host: IpAddr, role: HostRole) -> bool {
    let (c, s) = alert_hosts(a);
    let (is_client, is_server) = (c == Some(host), s == Some(host));
    let r = a.roles;
    match role {
        HostRole::Any => is_client || is_server,
        HostRole::Attacker => (is_client && r.client_attacker) || (is_server && r.server_attacker),
        HostRole::Victim => (is_client && r.client_victim) || (is_server && r.server_victim),
    }
}
