//! The `nw-directory` KV contract (DESIGN.md section 6): IP address → Kubernetes identity.
//!
//! Written by the operator from Pod, Service and Node watches; read by the engine to name hosts
//! in API responses and to roll scores up by namespace and workload. This module holds the
//! entry type, the key encoding and a small pure fold for consumers; no I/O.
//!
//! * Key: [`directory_key`] of the address: IPv4 dotted (`10.244.1.7`), IPv6 with `:` written
//!   `-` (`fd00-10-244--7`), because `:` is not allowed in NATS KV keys. IPv4-mapped IPv6
//!   addresses are stored as IPv4. [`parse_directory_key`] reverses it.
//! * Value: one [`DirectoryEntry`] as JSON. Entries are bounded ([`MAX_LABELS`],
//!   [`MAX_SERVICES`], [`MAX_STRING`]); consumers parse them with [`parse_entry`], which rejects
//!   oversized values and re-applies the bounds (KV content is untrusted like anything on the
//!   network).
//!
//! Which object wins an address (a Service's cluster IP, a running Pod, a Node): see
//! `docs/operator.md`. Pods with `hostNetwork: true` share their node's address and are not
//! entered; the node's entry names the node.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::bus::KvChange;

/// At most this many labels are kept per entry (the first ones by key).
pub const MAX_LABELS: usize = 32;
/// At most this many Services are listed per entry (the first ones by name).
pub const MAX_SERVICES: usize = 16;
/// Every string (name, label key or value) is cut to this many bytes (at a char boundary).
/// Kubernetes names are at most 253 bytes and label keys at most 317, so nothing real is cut.
pub const MAX_STRING: usize = 320;
/// A value larger than this is rejected by [`parse_entry`].
pub const MAX_ENTRY_BYTES: usize = 32 * 1024;

/// What owns the address.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    /// A Pod's IP (`status.podIPs`).
    Pod,
    /// A Service's cluster IP (`spec.clusterIPs`).
    Service,
    /// A Node's address (`status.addresses`: InternalIP, ExternalIP).
    Node,
}

impl EndpointKind {
    /// The kind as written in JSON and logs (`Pod`, `Service`, `Node`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Service => "Service",
            Self::Node => "Node",
        }
    }
}

/// The top of a Pod's owner chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `ReplicaSet` (a bare one),
    /// or the owner's kind as written in its owner reference for anything else (e.g. a custom
    /// resource); `Pod` for a Pod without a controller.
    pub kind: String,
    /// The workload's name (in the Pod's namespace).
    pub name: String,
}

/// One `nw-directory` value: who an address belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    /// The address (the key, repeated for readers of raw values).
    pub ip: IpAddr,
    /// What owns the address.
    pub kind: EndpointKind,
    /// The Pod, Service or Node name.
    pub name: String,
    /// The namespace (absent for Nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workload a Pod belongs to (owner chain resolved; absent for Services and Nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// The node a Pod runs on (`spec.nodeName`), or the Node itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Services (same namespace) whose selector matches the Pod, sorted; for a Service entry,
    /// the Service itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The object's labels (at most [`MAX_LABELS`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn cut(s: &mut String) {
    if s.len() > MAX_STRING {
        let mut end = MAX_STRING;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

impl DirectoryEntry {
    /// A minimal entry (no workload, node, services or labels).
    pub fn new(ip: IpAddr, kind: EndpointKind, name: impl Into<String>) -> Self {
        Self {
            ip: canonical(ip),
            kind,
            name: name.into(),
            namespace: None,
            workload: None,
            node: None,
            services: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Applies the bounds: strings cut to [`MAX_STRING`], at most [`MAX_LABELS`] labels and
    /// [`MAX_SERVICES`] services (sorted, deduplicated). The writer calls it before publishing;
    /// [`parse_entry`] calls it again on read.
    pub fn bound(&mut self) {
        self.ip = canonical(self.ip);
        cut(&mut self.name);
        if let Some(ns) = &mut self.namespace {
            cut(ns);
        }
        if let Some(node) = &mut self.node {
            cut(node);
        }
        if let Some(w) = &mut self.workload {
            cut(&mut w.kind);
            cut(&mut w.name);
        }
        for s in &mut self.services {
            cut(s);
        }
        self.services.sort();
        self.services.dedup();
        self.services.truncate(MAX_SERVICES);
        if self.labels.len() > MAX_LABELS
            || self
                .labels
                .iter()
                .any(|(k, v)| k.len() > MAX_STRING || v.len() > MAX_STRING)
        {
            self.labels = std::mem::take(&mut self.labels)
                .into_iter()
                .take(MAX_LABELS)
                .map(|(mut k, mut v)| {
                    cut(&mut k);
                    cut(&mut v);
                    (k, v)
                })
                .collect();
        }
    }

    /// How the API names the host: `namespace/pod`, `namespace/service` or the node name.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The roll-up key of the workload: `namespace/Kind/name` (e.g. `shop/Deployment/web`);
    /// `None` for Services and Nodes.
    pub fn workload_key(&self) -> Option<String> {
        let w = self.workload.as_ref()?;
        Some(format!(
            "{}/{}/{}",
            self.namespace.as_deref().unwrap_or_default(),
            w.kind,
            w.name
        ))
    }

    /// The JSON value to store under [`directory_key`]`(self.ip)`.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings, maps and an enum cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; everything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The `nw-directory` key of an address (see the module documentation).
pub fn directory_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        // `Ipv6Addr`'s Display of a non-mapped address uses only hex digits and `:`.
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address of a `nw-directory` key; `None` for anything [`directory_key`] does not write.
pub fn parse_directory_key(key: &str) -> Option<IpAddr> {
    if key.len() > 45 {
        return None;
    }
    if key.contains('-') {
        return key
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| canonical(IpAddr::V6(v6)));
    }
    key.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Parses a `nw-directory` value: rejects values over [`MAX_ENTRY_BYTES`] and malformed JSON,
/// then applies the bounds.
pub fn parse_entry(value: &[u8]) -> Result<DirectoryEntry, String> {
    if value.len() > MAX_ENTRY_BYTES {
        return Err(format!(
            "entry of {} bytes exceeds {MAX_ENTRY_BYTES}",
            value.len()
        ));
    }
    let mut entry: DirectoryEntry =
        serde_json::from_slice(value).map_err(|e| format!("malformed entry: {e}"))?;
    entry.bound();
    Ok(entry)
}

/// A consumer's copy of the directory, fed with the bucket's changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    entries: BTreeMap<IpAddr, DirectoryEntry>,
}

impl Directory {
    /// Applies one change of `nw-directory`. A bad key or value is left out and returned as
    /// `Err(reason)` for the caller to log and count (never a panic).
    pub fn apply(&mut self, change: &KvChange) -> Result<(), String> {
        match change {
            KvChange::Put { key, value } => {
                let ip = parse_directory_key(key).ok_or_else(|| format!("bad key {key:?}"))?;
                match parse_entry(value) {
                    Ok(mut entry) => {
                        entry.ip = ip;
                        self.entries.insert(ip, entry);
                        Ok(())
                    }
                    Err(e) => {
                        // A bad value replaces whatever the key held: stale identity is worse.
                        self.entries.remove(&ip);
                        Err(format!("{key}: {e}"))
                    }
                }
            }
            KvChange::Delete { key } => {
                if let Some(ip) = parse_directory_key(key) {
                    self.entries.remove(&ip);
                }
                Ok(())
            }
        }
    }

    /// Who `ip` is, if known.
    pub fn get(&self, ip: IpAddr) -> Option<&DirectoryEntry> {
        self.entries.get(&canonical(ip))
    }

    /// Number of addresses known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, by address.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &DirectoryEntry)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_round_trip_for_v4_v6_and_mapped() {
        for (addr, key) in [
            ("10.244.1.7", "10.244.1.7"),
            ("fd00:10:244::7", "fd00-10-244--7"),
            ("::1", "--1"),
            ("::", "--"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
            ("2001:db8::", "2001-db8--"),
        ] {
            assert_eq!(directory_key(ip(addr)), key, "{addr}");
            assert_eq!(parse_directory_key(key), Some(canonical(ip(addr))), "{key}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.256",
            "fd00--1--2",
            "x-y",
            "10_0_0_1",
            "a.b.c.d",
        ] {
            assert_eq!(parse_directory_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries_round_trip_and_bounds_apply_on_read() {
        let mut entry = DirectoryEntry::new(ip("10.244.1.7"), EndpointKind::Pod, "web-7d4b9-abcde");
        entry.namespace = Some("shop".into());
        entry.workload = Some(Workload {
            kind: "Deployment".into(),
            name: "web".into(),
        });
        entry.node = Some("node-a".into());
        entry.services = vec!["web".into(), "all".into()];
        entry.bound();
        assert_eq!(entry.services, ["all", "web"]);
        assert_eq!(entry.display_name(), "shop/web-7d4b9-abcde");
        assert_eq!(entry.workload_key().as_deref(), Some("shop/Deployment/web"));
        let json = String::from_utf8(entry.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"ip":"10.244.1.7","kind":"Pod","name":"web-7d4b9-abcde","namespace":"shop","workload":{"kind":"Deployment","name":"web"},"node":"node-a","services":["all","web"]}"#
        );
        assert_eq!(parse_entry(json.as_bytes()).unwrap(), entry);

        // A hostile writer: too many labels, huge strings. Bounded on read.
        let labels: serde_json::Map<String, serde_json::Value> = (0..60)
            .map(|i| (format!("k{i:03}"), serde_json::Value::from("é".repeat(161))))
            .collect();
        let raw = serde_json::json!({"ip": "10.0.0.1", "kind": "Node", "name": "n".repeat(1000), "labels": labels});
        let parsed = parse_entry(raw.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.labels.len(), MAX_LABELS);
        assert!(parsed.name.len() <= MAX_STRING);
        assert!(parsed.labels.values().all(|v| v.len() <= MAX_STRING));
        assert!(parse_entry(&vec![b' '; MAX_ENTRY_BYTES + 1]).is_err());
        assert!(parse_entry(b"{\"ip\":\"x\"}").is_err());
    }

    #[test]
    fn directory_folds_changes_and_drops_bad_values() {
        let mut dir = Directory::default();
        let entry = DirectoryEntry::new(ip("fd00::7"), EndpointKind::Service, "db");
        let key = directory_key(entry.ip);
        dir.apply(&KvChange::Put {
            key: key.clone(),
            value: Bytes::from(entry.to_json()),
        })
        .unwrap();
        assert_eq!(dir.get(ip("fd00::7")).unwrap().name, "db");
        assert!(
            dir.apply(&KvChange::Put {
                key: key.clone(),
                value: Bytes::from_static(b"not json"),
            })
            .is_err()
        );
        assert!(dir.is_empty(), "a malformed value drops the stale identity");
        assert!(
            dir.apply(&KvChange::Put {
                key: "no:colons".into(),
                value: Bytes::from(entry.to_json()),
            })
            .is_err()
        );
        dir.apply(&KvChange::Put {
            key: key.clone(),
            value: Bytes::from(entry.to_json()),
        })
        .unwrap();
        dir.apply(&KvChange::Delete { key }).unwrap();
        assert_eq!(dir.len(), 0);
    }
}
