//! Which alerts an endpoint receives: the `filters` of a `NotificationEndpoint` applied to one
//! alert. Pure: the namespace of an address comes from a [`NamespaceLookup`].

use std::net::IpAddr;

use netwarden_api::alert::{Alert, Entity, Severity};
use netwarden_api::crd::{NotificationFilters, Severity as MinSeverity};

use crate::alerts::store::filter::alert_hosts;

/// The Kubernetes namespace of an address (the `nw-directory` in a cluster; nothing standalone).
pub trait NamespaceLookup: Send + Sync {
    /// The namespace of the Pod or Service at `ip`, if it is one.
    fn namespace_of(&self, ip: IpAddr) -> Option<String>;
}

/// No directory: no address has a namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNamespaces;

impl NamespaceLookup for NoNamespaces {
    fn namespace_of(&self, _: IpAddr) -> Option<String> {
        None
    }
}

/// Namespaces from the engine's view of `nw-directory` (a cluster).
#[derive(Clone)]
pub struct DirectoryNamespaces(pub crate::directory::SharedDirectory);

impl NamespaceLookup for DirectoryNamespaces {
    fn namespace_of(&self, ip: IpAddr) -> Option<String> {
        crate::directory::read(&self.0)
            .get(ip)
            .and_then(|e| e.namespace.clone())
    }
}

/// The alert severity a CRD minimum severity means.
pub const fn min_severity(s: MinSeverity) -> Severity {
    match s {
        MinSeverity::Info => Severity::Info,
        MinSeverity::Notice => Severity::Notice,
        MinSeverity::Warning => Severity::Warning,
        MinSeverity::Error => Severity::Error,
        MinSeverity::Critical => Severity::Critical,
        MinSeverity::Emergency => Severity::Emergency,
    }
}

/// The CRD's name of an entity (`observationPoint`, the camelCase of the CRD filters).
pub const fn entity_name(e: Entity) -> &'static str {
    match e {
        Entity::Flow => "flow",
        Entity::Host => "host",
        Entity::Interface => "interface",
        Entity::Network => "network",
        Entity::ObservationPoint => "observationPoint",
        Entity::ServiceMap => "serviceMap",
    }
}

/// Whether `alert` passes every filter of `f`. An empty list matches everything; with
/// `namespaces` set, a host of the alert must be in one of them (and be the attacker or the
/// victim with `attackerOnly`/`victimOnly`); without, `attackerOnly`/`victimOnly` ask that
/// some host of the alert has that role.
pub fn matches(f: &NotificationFilters, alert: &Alert, lookup: &dyn NamespaceLookup) -> bool {
    if alert.severity < min_severity(f.min_severity) {
        return false;
    }
    if !f.alert_types.is_empty() && !f.alert_types.contains(&alert.alert_type) {
        return false;
    }
    if !f.entities.is_empty() && !f.entities.iter().any(|e| e == entity_name(alert.entity)) {
        return false;
    }
    if f.namespaces.is_empty() && !f.attacker_only && !f.victim_only {
        return true;
    }
    let (client, server) = alert_hosts(alert);
    let r = alert.roles;
    let sides = [
        (client, r.client_attacker, r.client_victim),
        (server, r.server_attacker, r.server_victim),
    ];
    sides.iter().any(|&(host, attacker, victim)| {
        let Some(host) = host else {
            return false;
        };
        if f.attacker_only && !attacker || f.victim_only && !victim {
            return false;
        }
        f.namespaces.is_empty()
            || lookup
                .namespace_of(host)
                .is_some_and(|ns| f.namespaces.contains(&ns))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_api::alert::{AlertState, Roles};

    fn host_alert(ip: &str, score: u32, attacker: bool) -> Alert {
        Alert {
            key: format!("host:{ip}:scan"),
            alert_type: "syn_scan".into(),
            entity: Entity::Host,
            entity_value: ip.into(),
            severity: Severity::from_score(score),
            score,
            client_score: score,
            server_score: 0,
            roles: Roles {
                client_attacker: attacker,
                client_victim: !attacker,
                ..Roles::default()
            },
            observation_point: "n/eth0".into(),
            first_seen_ns: 1,
            last_seen_ns: 2,
            count: 1,
            state: AlertState::Engaged,
            message: "scan".into(),
            flow: None,
            anomaly: None,
        }
    }

    struct Ns;
    impl NamespaceLookup for Ns {
        fn namespace_of(&self, ip: IpAddr) -> Option<String> {
            (ip == IpAddr::from([10, 0, 0, 1])).then(|| "payments".to_owned())
        }
    }

    #[test]
    fn severity_types_entities() {
        let a = host_alert("10.0.0.1", 120, true);
        let mut f = NotificationFilters::default();
        assert!(matches(&f, &a, &NoNamespaces));
        f.min_severity = MinSeverity::Critical;
        assert!(!matches(&f, &a, &NoNamespaces));
        f.min_severity = MinSeverity::Error;
        assert!(matches(&f, &a, &NoNamespaces));
        f.alert_types = vec!["dns_tunnel".into()];
        assert!(!matches(&f, &a, &NoNamespaces));
        f.alert_types.push("syn_scan".into());
        assert!(matches(&f, &a, &NoNamespaces));
        f.entities = vec!["flow".into()];
        assert!(!matches(&f, &a, &NoNamespaces));
        f.entities = vec!["host".into()];
        assert!(matches(&f, &a, &NoNamespaces));
    }

    #[test]
    fn namespaces_and_roles() {
        let attacker = host_alert("10.0.0.1", 60, true);
        let victim = host_alert("10.0.0.1", 60, false);
        let elsewhere = host_alert("10.0.0.2", 60, true);
        let f = NotificationFilters {
            namespaces: vec!["payments".into()],
            ..NotificationFilters::default()
        };
        assert!(matches(&f, &attacker, &Ns));
        assert!(!matches(&f, &elsewhere, &Ns));
        assert!(!matches(&f, &attacker, &NoNamespaces));
        let f = NotificationFilters {
            attacker_only: true,
            ..f
        };
        assert!(matches(&f, &attacker, &Ns));
        assert!(!matches(&f, &victim, &Ns));
        let f = NotificationFilters {
            attacker_only: false,
            victim_only: true,
            namespaces: vec![],
            ..f
        };
        assert!(matches(&f, &victim, &NoNamespaces));
        assert!(!matches(&f, &elsewhere, &NoNamespaces));
    }
}
