//! `GET /api/v2/hosts` and `GET /api/v2/hosts/{ip}`.

use std::fmt::Write as _;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::api::ApiState;
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, Page, Paging, Sort, parse};
use crate::directory::Identity;
use crate::hosts::{Host, HostKey, PeerCount, PointTable, ProtocolCount};
use netwarden_api::directory::Directory;

/// Peers listed in a host's detail.
pub const TOP_PEERS: usize = 10;

/// Query parameters of `GET /api/v2/hosts`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    /// VLAN id.
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub vlan: Option<String>,
    /// Prefix of the address as text (`10.1.`, `2001:db8:`), or of the Kubernetes name
    /// (`shop/web-`).
    pub q: Option<String>,
    /// Only hosts of this Kubernetes namespace (from `nw-directory`).
    pub namespace: Option<String>,
    /// Only hosts of this workload (`Deployment/web`; with `namespace`, or `shop/Deployment/web`).
    pub workload: Option<String>,
    /// `bytes`, `packets`, `flows`, `last_seen`; `-` prefix for descending.
    pub sort: Option<String>,
    /// Items skipped.
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub offset: Option<String>,
    /// Items per page (1..=1000, default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Query parameters of `GET /api/v2/hosts/{ip}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HostDetailQuery {
    /// VLAN id; without it, the host on VLAN 0, else the busiest VLAN of that address.
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub vlan: Option<String>,
}

/// A host as listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HostView {
    /// Address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// VLAN id (0 untagged).
    pub vlan: u32,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_rcvd: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets received.
    pub packets_rcvd: u64,
    /// Flows opened.
    pub flows_as_client: u64,
    /// Flows answered.
    pub flows_as_server: u64,
    /// Opened flows still active.
    pub active_flows_as_client: u64,
    /// Answered flows still active.
    pub active_flows_as_server: u64,
    /// First seen, ns since the Unix epoch.
    pub first_seen_ns: u64,
    /// Last seen, ns since the Unix epoch.
    pub last_seen_ns: u64,
    /// L7 protocols seen, most bytes first.
    pub l7_protocols: Vec<String>,
    /// Observation points where the host was seen.
    pub observation_points: Vec<String>,
    /// The Kubernetes name (`namespace/pod`, `namespace/service` or the node), when the
    /// cluster directory knows the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who the address is in Kubernetes (`nw-directory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Identity>,
}

impl HostView {
    /// The view of `h`, naming its points from `points`.
    pub fn of(h: &Host, points: &PointTable) -> Self {
        Self {
            ip: h.key.ip,
            vlan: h.key.vlan,
            bytes_sent: h.bytes_sent,
            bytes_rcvd: h.bytes_rcvd,
            packets_sent: h.packets_sent,
            packets_rcvd: h.packets_rcvd,
            flows_as_client: h.flows_as_client,
            flows_as_server: h.flows_as_server,
            active_flows_as_client: h.active_flows_as_client,
            active_flows_as_server: h.active_flows_as_server,
            first_seen_ns: if h.first_seen_ns == u64::MAX {
                0
            } else {
                h.first_seen_ns
            },
            last_seen_ns: h.last_seen_ns,
            l7_protocols: by_bytes(&h.protocols).into_iter().map(|p| p.name).collect(),
            observation_points: h
                .points
                .iter()
                .filter_map(|k| points.get(*k))
                .map(|p| p.name.clone())
                .collect(),
            name: None,
            kubernetes: None,
        }
    }

    /// Adds the Kubernetes identity of the address, if `dir` knows it.
    #[must_use]
    pub fn named(mut self, dir: &Directory) -> Self {
        if let Some(e) = dir.get(self.ip) {
            self.name = Some(e.display_name());
            self.kubernetes = Some(Identity::of(e));
        }
        self
    }
}

/// A host with its top peers and protocols.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HostDetail {
    /// The totals.
    #[serde(flatten)]
    pub host: HostView,
    /// Protocols with flows and bytes, most bytes first.
    pub protocols: Vec<ProtocolCount>,
    /// Up to [`TOP_PEERS`] peers, most bytes first.
    pub top_peers: Vec<PeerCount>,
    /// The device type with its evidence, for a local host (docs/devices.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub device: Option<crate::devices::DeviceView>,
}

fn by_bytes(protocols: &[ProtocolCount]) -> Vec<ProtocolCount> {
    let mut v = protocols.to_vec();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostSort {
    Bytes,
    Packets,
    Flows,
    LastSeen,
}

const SORT_KEYS: &[(&str, HostSort)] = &[
    ("bytes", HostSort::Bytes),
    ("packets", HostSort::Packets),
    ("flows", HostSort::Flows),
    ("last_seen", HostSort::LastSeen),
];

fn sort_value(key: HostSort, h: &Host) -> u64 {
    match key {
        HostSort::Bytes => h.bytes(),
        HostSort::Packets => h.packets(),
        HostSort::Flows => h.flows(),
        HostSort::LastSeen => h.last_seen_ns,
    }
}

/// `GET /api/v2/hosts`.
#[utoipa::path(get, path = "/api/v2/hosts", tag = "hosts", params(HostQuery), responses((status = 200, description = "A page of hosts (in the sharded mode gathered from every replica, see docs/deploy.md)", body = crate::api::cluster::HostPage)))]
pub async fn list(
    State(api): State<ApiState>,
    ApiQuery(q): ApiQuery<HostQuery>,
) -> Result<Json<Page<HostView>>, Problem> {
    let paging = Paging::parse(q.offset.as_deref(), q.limit.as_deref())?;
    let sort = Sort::parse(
        q.sort.as_deref(),
        SORT_KEYS,
        Sort {
            key: HostSort::Bytes,
            descending: true,
        },
    )?;
    let vlan: Option<u32> = parse("vlan", q.vlan.as_deref(), "a VLAN id")?;
    let prefix =
        q.q.as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase);
    let state = api.engine.read();
    let dir = crate::directory::read(&api.engine.directory);
    let workload = q.workload.as_deref().map(|w| match &q.namespace {
        Some(ns) if !w.contains('/') || w.matches('/').count() == 1 => format!("{ns}/{w}"),
        _ => w.to_owned(),
    });
    let mut text = String::new();
    let mut hits: Vec<&Host> = state
        .hosts
        .iter()
        .filter(|h| vlan.is_none_or(|v| h.key.vlan == v))
        .filter(|h| {
            if q.namespace.is_none() && workload.is_none() {
                return true;
            }
            let Some(e) = dir.get(h.key.ip) else {
                return false;
            };
            q.namespace
                .as_ref()
                .is_none_or(|ns| e.namespace.as_ref() == Some(ns))
                && workload
                    .as_ref()
                    .is_none_or(|w| e.workload_key().as_ref() == Some(w))
        })
        .filter(|h| {
            prefix.as_ref().is_none_or(|p| {
                text.clear();
                let _ = write!(text, "{}", h.key.ip);
                text.starts_with(p.as_str())
                    || dir.get(h.key.ip).is_some_and(|e| {
                        e.display_name()
                            .to_ascii_lowercase()
                            .starts_with(p.as_str())
                    })
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        sort.order(&sort_value(sort.key, a), &sort_value(sort.key, b))
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(Json(paging.page(hits, |h| {
        HostView::of(h, &state.points).named(&dir)
    })))
}

/// `GET /api/v2/hosts/{ip}`.
#[utoipa::path(get, path = "/api/v2/hosts/{ip}", tag = "hosts", params(("ip" = String, Path, description = "IPv4 or IPv6 address", example = "192.168.1.212"), HostDetailQuery), responses((status = 200, description = "The host with its protocols and top peers", body = HostDetail)))]
pub async fn detail(
    State(api): State<ApiState>,
    Path(ip): Path<String>,
    ApiQuery(q): ApiQuery<HostDetailQuery>,
) -> Result<Json<HostDetail>, Problem> {
    let ip: IpAddr = parse("ip", Some(&ip), "an IPv4 or IPv6 address")?
        .ok_or_else(|| Problem::bad_request("missing address"))?;
    let vlan: Option<u32> = parse("vlan", q.vlan.as_deref(), "a VLAN id")?;
    let state = api.engine.read();
    let host = match vlan {
        Some(vlan) => state.hosts.get(&HostKey { ip, vlan }),
        None => state.hosts.get(&HostKey { ip, vlan: 0 }).or_else(|| {
            // Not on VLAN 0: the busiest VLAN of that address (a scan, but a rare one).
            state
                .hosts
                .iter()
                .filter(|h| h.key.ip == ip)
                .max_by_key(|h| h.bytes())
        }),
    };
    let Some(host) = host else {
        let on = vlan.map(|v| format!(" on VLAN {v}")).unwrap_or_default();
        return Err(Problem::not_found(format!("no host {ip}{on} is known")));
    };
    let mut peers = host.peers.clone();
    peers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.ip.cmp(&b.ip)));
    peers.truncate(TOP_PEERS);
    Ok(Json(HostDetail {
        host: HostView::of(host, &state.points)
            .named(&crate::directory::read(&api.engine.directory)),
        protocols: by_bytes(&host.protocols),
        top_peers: peers,
        device: state
            .devices
            .view(ip, crate::directory::read(&api.engine.directory).get(ip)),
    }))
}
