//! Nodes and edges of the service map, and the stable edge id.
//!
//! A node is a host (an address) or, when `nw-directory` names the address, a Kubernetes
//! workload (`namespace/Kind/name`: a Deployment's 40 pods are one node and an edge survives
//! pod restarts), a Service (`namespace/Service/name`) or a Node (`Node/name`). The edge id is
//! FNV-1a 64 over (client, server, server port, L4, L7, VLAN): the same edge gets the same id
//! on every replica and in every ingest order.

use std::net::IpAddr;
use std::sync::Arc;

use netwarden_api::directory::{DirectoryEntry, EndpointKind};
use serde::{Deserialize, Serialize};

/// A node of the map, borrowed from the directory (no allocation on the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRef<'a> {
    /// An address the directory does not name.
    Host(IpAddr),
    /// A workload, Service or Node the directory names (namespace empty for Nodes).
    Named {
        /// Namespace (empty for Nodes).
        namespace: &'a str,
        /// `Deployment`, `StatefulSet`, `Pod`, `Service`, `Node`...
        kind: &'a str,
        /// Name.
        name: &'a str,
    },
}

impl<'a> NodeRef<'a> {
    /// The node of `ip`, named by its directory entry when there is one.
    pub fn of(ip: IpAddr, entry: Option<&'a DirectoryEntry>) -> Self {
        let Some(e) = entry else {
            return Self::Host(ip);
        };
        let namespace = e.namespace.as_deref().unwrap_or("");
        match (e.kind, &e.workload) {
            (EndpointKind::Pod, Some(w)) => Self::Named {
                namespace,
                kind: &w.kind,
                name: &w.name,
            },
            (kind, _) => Self::Named {
                namespace,
                kind: kind.as_str(),
                name: &e.name,
            },
        }
    }

    fn hash_into(&self, h: &mut Fnv) {
        match self {
            Self::Host(ip) => {
                h.write(b"h");
                match ip {
                    IpAddr::V4(a) => h.write(&a.octets()),
                    IpAddr::V6(a) => h.write(&a.octets()),
                }
            }
            Self::Named {
                namespace,
                kind,
                name,
            } => {
                h.write(b"w");
                for part in [namespace, kind, name] {
                    h.write(part.as_bytes());
                    h.write(&[0xff]);
                }
            }
        }
    }

    /// The owned node.
    pub fn to_node(&self) -> Node {
        match *self {
            Self::Host(ip) => Node::Host { ip },
            Self::Named {
                namespace,
                kind,
                name,
            } => Node::Workload {
                namespace: namespace.into(),
                kind: kind.into(),
                name: name.into(),
            },
        }
    }
}

/// A node of the map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// An address.
    Host {
        /// The address.
        ip: IpAddr,
    },
    /// A workload, Service or Node named by the directory.
    Workload {
        /// Namespace (empty for Nodes).
        namespace: Arc<str>,
        /// `Deployment`, `StatefulSet`, `DaemonSet`, `Pod`, `Service`, `Node`...
        kind: Arc<str>,
        /// Name.
        name: Arc<str>,
    },
}

impl Node {
    /// The node's id: the address, `namespace/Kind/name`, or `Node/name`.
    pub fn id(&self) -> String {
        match self {
            Self::Host { ip } => ip.to_string(),
            Self::Workload {
                namespace,
                kind,
                name,
            } if namespace.is_empty() => format!("{kind}/{name}"),
            Self::Workload {
                namespace,
                kind,
                name,
            } => format!("{namespace}/{kind}/{name}"),
        }
    }

    /// The namespace, for workloads in one.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Workload { namespace, .. } if !namespace.is_empty() => Some(namespace),
            _ => None,
        }
    }
}

/// An edge's status (ntopng's `ServiceAcceptance`: allowed 0, denied 1, undecided 2).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Expected.
    Allowed,
    /// A flow on it raises `lateral_movement`.
    Denied,
    /// New after learning; nobody decided yet (raised `new_service`).
    Undecided,
}

impl Status {
    /// `allowed`, `denied`, `undecided`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Undecided => "undecided",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Self::Allowed),
            "denied" => Some(Self::Denied),
            "undecided" => Some(Self::Undecided),
            _ => None,
        }
    }
}

/// How an edge got its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Learned {
    /// First seen during the learning period (allowed).
    DuringLearning,
    /// First seen after it (undecided).
    AfterLearning,
    /// A `ServicePolicy` rule (or its `defaultAction`) decided.
    Policy,
    /// Set through the API.
    Manual,
    /// Learned by another engine replica (`nw-servicemap`), with its status.
    Replica,
}

/// One edge of the map (the API shows it as `servicemap::api::EdgeView`). About 200 bytes
/// plus its names (docs/servicemap.md: memory per edge).
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Stable id (see the module documentation).
    pub id: u64,
    /// The client node.
    pub client: Node,
    /// The server node.
    pub server: Node,
    /// Server port.
    pub port: u16,
    /// L4 protocol number.
    pub l4: u8,
    /// L7 application (nDPI's name, `Unknown` when the DPI had none).
    pub l7: Arc<str>,
    /// VLAN.
    pub vlan: u16,
    /// Observation point where the edge was first seen.
    pub observation_point: Arc<str>,
    /// First flow start, ns.
    pub first_seen_ns: u64,
    /// Last record time, ns.
    pub last_seen_ns: u64,
    /// Flows counted on the edge.
    pub flows: u64,
    /// Client-to-server bytes.
    pub bytes_c2s: u64,
    /// Server-to-client bytes.
    pub bytes_s2c: u64,
    /// Flows, client-to-server and server-to-client bytes other replicas counted
    /// (`nw-servicemap`).
    pub remote: [u64; 3],
    /// Status.
    pub status: Status,
    /// How it got it.
    pub learned: Learned,
    /// The `ServicePolicy` (`namespace/name`) that decided, when one did.
    pub policy: Option<Arc<str>>,
    /// The last client address seen on the edge.
    pub client_ip: IpAddr,
    /// The last server address seen on the edge.
    pub server_ip: IpAddr,
}

/// The id as 16 hex digits.
pub fn id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// Parses [`id_text`].
pub fn parse_id(text: &str) -> Option<u64> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// FNV-1a 64: stable across processes (unlike `std`'s hashers).
pub struct Fnv(u64);

impl Fnv {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

/// The id of the edge (client, server, port, L4, L7, VLAN).
pub fn edge_id(
    client: &NodeRef<'_>,
    server: &NodeRef<'_>,
    port: u16,
    l4: u8,
    l7: &str,
    vlan: u16,
) -> u64 {
    let mut h = Fnv::new();
    client.hash_into(&mut h);
    h.write(&[0xfe]);
    server.hash_into(&mut h);
    h.write(&port.to_le_bytes());
    h.write(&[l4]);
    h.write(&vlan.to_le_bytes());
    h.write(l7.as_bytes());
    h.finish()
}

/// `TCP`, `UDP`, `SCTP`, `ICMP` or the number.
pub fn l4_name(l4: u8) -> String {
    netwarden_api::flow::proto::name(l4).into_owned()
}
