//! The SSRF guard: a notification target comes from a Secret that a namespace owner controls,
//! so it must not make the engine talk to itself, to the node, to the cloud metadata service or
//! to the cluster's own ranges. Refused unless allowed: loopback (127.0.0.0/8, ::1),
//! link-local (169.254.0.0/16 with 169.254.169.254, fe80::/10), unspecified and "this network"
//! (0.0.0.0/8, ::), multicast and broadcast, and the configured cluster ranges
//! (`--cluster-cidr`). IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
//!
//! Checking a name is not enough (DNS rebinding: the name may resolve differently on the next
//! lookup), so deliveries connect to the addresses [`Guard::resolve`] checked, never to the
//! name. `--notify-allow-private` (or `--notify-allow-cidr`) lifts it,
//! for a receiver on the same host or in the cluster.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Why an address was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{addr} is {reason}; refused by the SSRF guard (see --notify-allow-private)")]
pub struct Refused {
    /// The address.
    pub addr: IpAddr,
    /// What kind of address it is.
    pub reason: &'static str,
}

/// The guard's configuration.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Allow every address (`--notify-allow-private`).
    pub allow_private: bool,
    /// Ranges allowed even though they would be refused (`--notify-allow-cidr`).
    pub allow: Vec<IpNet>,
    /// The cluster's own ranges (Pod and Service CIDRs), refused (`--cluster-cidr`).
    pub cluster: Vec<IpNet>,
}

/// What kind of special address `ip` is, if it is one the guard refuses.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address (cloud metadata lives there)")
            } else if o[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("a broadcast or multicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

impl Guard {
    /// Whether the engine may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private {
            return Ok(());
        }
        let canonical = ip.to_canonical();
        if self
            .allow
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            return Ok(());
        }
        if let Some(reason) = special(ip) {
            return Err(Refused { addr: ip, reason });
        }
        if self
            .cluster
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            return Err(Refused {
                addr: ip,
                reason: "in the cluster's own ranges",
            });
        }
        Ok(())
    }

    /// Resolves `host:port` and keeps the addresses the guard allows; an error names the first
    /// refused address when none is left.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| GuardError::Resolve(e.to_string()))?
            .collect();
        let mut refused = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match self.check(a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    refused.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(r)) => Err(GuardError::Refused(r)),
            (true, None) => Err(GuardError::Resolve("no address".into())),
        }
    }
}

/// A failed guarded resolution.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GuardError {
    /// The name resolved only to refused addresses (or the literal address is refused).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name did not resolve.
    #[error("cannot resolve: {0}")]
    Resolve(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_special_addresses() {
        let g = Guard::default();
        for bad in [
            "127.0.0.1",
            "127.3.2.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(g.check(ip(bad)).is_err(), "{bad} must be refused");
        }
        for good in ["10.1.2.3", "192.168.1.1", "8.8.8.8", "2001:db8::1"] {
            assert!(g.check(ip(good)).is_ok(), "{good} must be allowed");
        }
    }

    #[test]
    fn cluster_ranges_and_allows() {
        let g = Guard {
            cluster: vec!["10.96.0.0/12".parse().unwrap()],
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            ..Guard::default()
        };
        assert!(g.check(ip("10.96.0.10")).is_err());
        assert!(g.check(ip("10.1.0.10")).is_ok());
        assert!(g.check(ip("127.0.0.1")).is_ok());
        assert!(g.check(ip("127.0.0.2")).is_err());
        let open = Guard {
            allow_private: true,
            ..g
        };
        assert!(open.check(ip("169.254.169.254")).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        let g = Guard::default();
        let err = g.resolve("localhost", 80).await.unwrap_err();
        assert!(matches!(err, GuardError::Refused(_)), "{err}");
        let err = g.resolve("[::1]", 80).await.unwrap_err();
        assert!(matches!(err, GuardError::Refused(_)), "{err}");
    }
}
