//! NATS subjects, JetStream streams and key-value buckets (DESIGN.md sections 5 and 6),
//! and the shard rule that maps a host to a subject.

use std::net::IpAddr;

/// Prefix of the flow subjects: records for shard `n` travel on `nw.flows.<n>`.
pub const FLOWS_PREFIX: &str = "nw.flows";
/// Pattern matching every flow subject.
pub const FLOWS_ALL: &str = "nw.flows.>";
/// JetStream stream holding the flows.
pub const FLOWS_STREAM: &str = "NW_FLOWS";
/// Prefix of the alert subjects: `nw.alerts.<entity>.<type>`.
pub const ALERTS_PREFIX: &str = "nw.alerts";
/// Pattern matching every alert subject.
pub const ALERTS_ALL: &str = "nw.alerts.>";
/// JetStream stream holding the alerts.
pub const ALERTS_STREAM: &str = "NW_ALERTS";
/// KV bucket: `<kind>.<namespace>.<name>` -> validated spec.
pub const CONFIG_BUCKET: &str = "nw-config";
/// KV bucket: `<kind>.<namespace>.<name>.<node-or-replica>` -> applied / failed.
pub const STATUS_BUCKET: &str = "nw-status";
/// KV bucket: IP -> Kubernetes identity.
pub const DIRECTORY_BUCKET: &str = "nw-directory";
/// KV bucket: learned service-map edges.
pub const SERVICEMAP_BUCKET: &str = "nw-servicemap";
/// KV bucket: host-state snapshots per shard.
pub const STATE_BUCKET: &str = "nw-state";

/// Number of shards of a cluster unless configured otherwise. Fixed for a cluster's life.
pub const DEFAULT_SHARDS: u32 = 64;

/// The subject carrying flows of `shard`.
pub fn flows_subject(shard: u32) -> String {
    format!("{FLOWS_PREFIX}.{shard}")
}

/// The subject carrying alerts of `entity` and `alert_type`.
pub fn alerts_subject(entity: &str, alert_type: &str) -> String {
    format!("{ALERTS_PREFIX}.{entity}.{alert_type}")
}

/// The shard of a host: FNV-1a (64-bit) over the address bytes, modulo `shards`.
///
/// FNV-1a is written out here (not `std`'s `DefaultHasher`) because every sensor and engine,
/// whatever its version, must agree on it forever.
pub fn shard_of(ip: IpAddr, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let shards = shards.max(1);
    let mut hash = OFFSET;
    let v4;
    let v6;
    let bytes: &[u8] = match ip {
        IpAddr::V4(a) => {
            v4 = a.octets();
            &v4
        }
        IpAddr::V6(a) => {
            v6 = a.octets();
            &v6
        }
    };
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(shards)) as u32
}

/// Whether a NATS `subject` matches `pattern` (`*` one token, `>` one or more trailing tokens).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pat = pattern.split('.');
    let mut sub = subject.split('.');
    loop {
        match (pat.next(), sub.next()) {
            (Some(">"), Some(_)) | (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_follow_nats_rules() {
        assert!(subject_matches("nw.flows.>", "nw.flows.3"));
        assert!(subject_matches("nw.flows.>", "nw.flows.3.x"));
        assert!(!subject_matches("nw.flows.>", "nw.flows"));
        assert!(subject_matches("nw.*.3", "nw.flows.3"));
        assert!(!subject_matches("nw.*", "nw.flows.3"));
        assert!(subject_matches("nw.flows.3", "nw.flows.3"));
        assert!(!subject_matches("nw.flows.3", "nw.flows.4"));
    }

    #[test]
    fn shard_rule_is_stable() {
        // Pinned values (cross-checked with an independent Python FNV-1a): changing the hash
        // would silently re-shard every running cluster.
        assert_eq!(shard_of("10.0.0.1".parse().unwrap(), 64), 44);
        assert_eq!(shard_of("2001:db8::1".parse().unwrap(), 64), 20);
        assert_eq!(shard_of("10.0.0.1".parse().unwrap(), 0), 0);
    }

    proptest! {
        #[test]
        fn shard_is_in_range(a: u32, shards in 1u32..1024) {
            prop_assert!(shard_of(IpAddr::from(a.to_be_bytes()), shards) < shards);
        }
    }
}
