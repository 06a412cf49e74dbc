//! "Device protocol not allowed" (ntopng DeviceProtocolNotAllowed, alert 5, score 100;
//! REFERENCE.md §1a): an L7 protocol a device of its type has no business speaking, with
//! separate client and server policies. The client share is 90% when the client broke the
//! policy, else 10%, and the breaker is the attacker.
//!
//! The default policy lists only what is clearly out of place (a printer opening SSH, an IoT
//! plug doing BitTorrent); types not listed (workstation, laptop, server, Kubernetes kinds,
//! unknown) allow everything. A type guessed below the configured confidence is not judged.

use netwarden_api::alert::Roles;

use super::DeviceType as T;
use crate::checks::{CheckDef, FlowAlert};

/// The check's type.
pub const ALERT_TYPE: &str = "device_protocol_not_allowed";

/// Peer-to-peer, anonymity and remote-control protocols nobody expects from an appliance.
const P2P_AND_TUNNELS: &[&str] = &[
    "BitTorrent",
    "eDonkey",
    "Gnutella",
    "Tor",
    "Psiphon",
    "OpenVPN",
    "WireGuard",
];

/// One type's default policy: protocols (nDPI names) not allowed as client and as server.
#[derive(Clone, Copy, Debug)]
pub struct TypePolicy {
    /// The type.
    pub device: T,
    /// Not allowed when the device opens the flow.
    pub deny_as_client: &'static [&'static str],
    /// Not allowed when the device answers it.
    pub deny_as_server: &'static [&'static str],
}

/// The default policies.
pub static DEFAULT_POLICY: &[TypePolicy] = &[
    TypePolicy {
        device: T::Printer,
        deny_as_client: &["SSH", "Telnet", "RDP", "VNC", "SMTP", "IRC"],
        deny_as_server: &["RDP"],
    },
    TypePolicy {
        device: T::Iot,
        deny_as_client: &["SSH", "Telnet", "RDP", "VNC", "SMBv1", "SMBv23", "IRC"],
        deny_as_server: &["RDP", "SMBv1"],
    },
    TypePolicy {
        device: T::Tv,
        deny_as_client: &["SSH", "Telnet", "RDP", "VNC", "SMTP", "IRC"],
        deny_as_server: &["Telnet", "RDP"],
    },
    TypePolicy {
        device: T::Multimedia,
        deny_as_client: &["SSH", "Telnet", "RDP", "VNC", "SMTP", "IRC"],
        deny_as_server: &["Telnet", "RDP"],
    },
    TypePolicy {
        device: T::Phone,
        deny_as_client: &[],
        deny_as_server: &["Telnet", "RDP", "SMBv1"],
    },
    TypePolicy {
        device: T::Tablet,
        deny_as_client: &[],
        deny_as_server: &["Telnet", "RDP", "SMBv1"],
    },
    TypePolicy {
        device: T::Nas,
        deny_as_client: &["RDP", "VNC", "IRC"],
        deny_as_server: &[],
    },
    TypePolicy {
        device: T::Networking,
        deny_as_client: &["RDP", "VNC", "IRC"],
        deny_as_server: &[],
    },
    TypePolicy {
        device: T::Wifi,
        deny_as_client: &["RDP", "VNC", "IRC"],
        deny_as_server: &[],
    },
];

/// Types whose appliances also must not speak [`P2P_AND_TUNNELS`] either way.
const APPLIANCES: &[T] = &[
    T::Printer,
    T::Iot,
    T::Tv,
    T::Multimedia,
    T::Nas,
    T::Networking,
    T::Wifi,
];

/// Whether the protocol `name` (an nDPI name, `master.app` or a single name) is one some
/// default policy mentions: the cheap filter before looking a device up.
pub fn is_watched(name: &str) -> bool {
    static WATCHED: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let watched = WATCHED.get_or_init(|| {
        P2P_AND_TUNNELS
            .iter()
            .chain(
                DEFAULT_POLICY
                    .iter()
                    .flat_map(|p| p.deny_as_client.iter().chain(p.deny_as_server)),
            )
            .copied()
            .collect()
    });
    name.split('.').any(|part| watched.contains(part))
}

/// The protocol of `name` that `device` may not speak in that role, if any.
pub fn denied(device: T, name: &str, as_client: bool) -> Option<&'static str> {
    let policy = DEFAULT_POLICY.iter().find(|p| p.device == device);
    name.split('.').find_map(|part| {
        if APPLIANCES.contains(&device)
            && let Some(p) = P2P_AND_TUNNELS.iter().find(|p| **p == part)
        {
            return Some(*p);
        }
        let list = policy.map(|p| {
            if as_client {
                p.deny_as_client
            } else {
                p.deny_as_server
            }
        })?;
        list.iter().find(|p| **p == part).copied()
    })
}

/// The alert for a flow of protocol `name` whose client is `client` and server `server` (each
/// `Some(type)` when known and judged). `None` when nobody broke a policy.
pub fn check(
    def: &CheckDef,
    name: &str,
    client: Option<T>,
    server: Option<T>,
) -> Option<FlowAlert> {
    let by_client = client.and_then(|t| denied(t, name, true).map(|p| (t, p)));
    let by_server = server.and_then(|t| denied(t, name, false).map(|p| (t, p)));
    let (pct, roles, message) = match (by_client, by_server) {
        (Some((t, p)), _) => (
            90,
            Roles {
                client_attacker: true,
                ..Roles::default()
            },
            format!("{p} is not allowed for a {t} as client (device type policy)"),
        ),
        (None, Some((t, p))) => (
            10,
            Roles {
                server_attacker: true,
                ..Roles::default()
            },
            format!("{p} is not allowed for a {t} as server (device type policy)"),
        ),
        (None, None) => return None,
    };
    Some(FlowAlert::new(def, def.score, pct, roles, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy() {
        assert!(is_watched("SSH") && is_watched("TLS.Tor") && !is_watched("TLS.Google"));
        assert_eq!(denied(T::Printer, "SSH", true), Some("SSH"));
        assert_eq!(denied(T::Printer, "SSH", false), None);
        assert_eq!(denied(T::Iot, "BitTorrent", false), Some("BitTorrent"));
        assert_eq!(denied(T::Workstation, "BitTorrent", true), None);
        assert_eq!(denied(T::KubernetesPod, "SSH", true), None);
        let def = crate::checks::def(ALERT_TYPE).copied().unwrap_or(CheckDef {
            alert_type: ALERT_TYPE,
            ntopng_id: 5,
            score: 100,
            client_pct: 90,
            kind: crate::checks::ScoreKind::Security,
            default_enabled: true,
            host: false,
        });
        let a = check(&def, "SSH", Some(T::Printer), Some(T::Server))
            .map(|a| (a.client_score, a.server_score, a.roles.client_attacker));
        assert_eq!(a, Some((90, 10, true)));
        let a = check(&def, "RDP", Some(T::Workstation), Some(T::Tv))
            .map(|a| (a.client_score, a.roles.server_attacker));
        assert_eq!(a, Some((10, true)));
        assert!(check(&def, "SSH", Some(T::Workstation), None).is_none());
    }
}
