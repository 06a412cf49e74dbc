//! The API across replicas (sharded mode, docs/deploy.md "API across replicas").
//!
//! Every replica answers for the whole cluster:
//! * **forwarded** to the replica that owns the host's shard: `GET /api/v2/hosts/{ip}`, its
//!   `/score` and `/timeseries`, and `GET /api/v2/flows` / `/api/v2/flows/history` when they
//!   name a `host` (the owner of a host's shard applied every flow of that host). The owner's
//!   address is in its membership lease. The caller's `Authorization` goes along (the owner
//!   checks the token again), with [`HOP_HEADER`] so that a request is never forwarded twice,
//!   and a [`FORWARD_TIMEOUT`]. While a shard has no owner (or its owner does not answer) the
//!   answer is 503 problem+json with `Retry-After`.
//! * **gathered** from every live replica and merged: `GET /api/v2/hosts` (filters passed on,
//!   sort and paging applied after the merge; replicas that did not answer are named in
//!   `unreachable`).
//! * **indexed** on every replica: the alerts, from `NW_ALERTS` ([`crate::shard::alerts`]).
//! * everything else is **local** to the replica asked.
//!
//! Without the shard runtime (standalone, `--ingest core`) there is no [`Cluster`] and every
//! request is answered locally.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use netwarden_api::names::shard_of;
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use crate::api::ApiState;
use crate::api::hosts::{HostQuery, HostView};
use crate::api::problem::Problem;
use crate::api::query::{ApiQuery, MAX_LIMIT, Paging};
use crate::shard::members::Lease;
use crate::shard::metrics::ShardMetrics;
use crate::shard::ring;

/// Set on a forwarded request (value: the forwarding replica): the receiver answers it
/// itself, whatever its shard table says. Also how a gather asks each replica for its part.
pub const HOP_HEADER: &str = "x-netwarden-forwarded-by";
/// Set on an answer that another replica gave (value: that replica).
pub const SERVED_BY_HEADER: &str = "x-netwarden-served-by";
/// Longest a forwarded request (or one replica's part of a gather) may take.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer accepted from another replica.
pub const MAX_FORWARD_BYTES: usize = 32 << 20;
/// Largest `offset + limit` of a gathered list (each replica is asked for that many items).
pub const MAX_GATHER: usize = 10_000;
/// Replicas asked at once by a gather.
pub const GATHER_FAN_OUT: usize = 8;
/// `Retry-After` of a 503 while a shard has no owner, seconds.
pub const RETRY_AFTER_SECS: u32 = 2;

/// What this replica knows of the cluster: its own shards and the others' leases, refreshed
/// by the shard runtime at every heartbeat.
pub struct Cluster {
    /// This replica's name.
    pub replica: String,
    /// Shards of the cluster.
    pub shards: u32,
    view: RwLock<View>,
    metrics: Arc<ShardMetrics>,
}

#[derive(Default)]
struct View {
    owned: BTreeSet<u32>,
    leases: Vec<Lease>,
}

/// Who answers for a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// This replica.
    Me,
    /// Another replica, at `api`.
    Other {
        /// Its name.
        replica: String,
        /// Its API address.
        api: String,
    },
    /// Nobody now (the shard is being taken over).
    Nobody,
}

impl Cluster {
    /// An empty view for `replica` among `shards` shards.
    pub fn new(replica: &str, shards: u32, metrics: Arc<ShardMetrics>) -> Self {
        Self {
            replica: replica.to_owned(),
            shards: shards.max(1),
            view: RwLock::default(),
            metrics,
        }
    }

    /// Records the shards this replica owns now.
    pub fn set_owned(&self, owned: BTreeSet<u32>) {
        self.view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .owned = owned;
    }

    /// Records the live leases (this replica's own included or not).
    pub fn set_leases(&self, leases: Vec<Lease>) {
        self.view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .leases = leases;
    }

    /// Who answers for `ip`: this replica when it owns the shard, else a replica whose lease
    /// lists the shard (the rendezvous owner among several, during a hand-over), else nobody.
    pub fn owner(&self, ip: IpAddr) -> Owner {
        let shard = shard_of(ip, self.shards);
        let view = self
            .view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if view.owned.contains(&shard) {
            return Owner::Me;
        }
        let claims: Vec<&Lease> = view
            .leases
            .iter()
            .filter(|l| l.replica != self.replica && l.owned.contains(&shard))
            .collect();
        let names: Vec<String> = claims.iter().map(|l| l.replica.clone()).collect();
        let chosen = ring::owner(shard, &names)
            .and_then(|name| claims.iter().find(|l| l.replica == name))
            .copied();
        chosen.map_or(Owner::Nobody, |l| Owner::Other {
            replica: l.replica.clone(),
            api: l.api.clone(),
        })
    }

    /// The other live replicas: (name, API address), by name.
    pub fn others(&self) -> Vec<(String, String)> {
        let view = self
            .view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, String)> = view
            .leases
            .iter()
            .filter(|l| l.replica != self.replica)
            .map(|l| (l.replica.clone(), l.api.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A page of hosts gathered from every replica.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HostPage {
    /// Hosts matching the filters, over all pages (and all replicas).
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// This page.
    #[schema(value_type = Vec<HostView>)]
    pub items: Vec<Value>,
    /// Replicas that did not answer (sharded mode): their hosts are missing from this page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub unreachable: Vec<String>,
}

/// The middleware routing requests across replicas (see the module documentation).
pub async fn route(State(api): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(cluster) = api.engine.cluster.get().cloned() else {
        return next.run(req).await;
    };
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let hop = req.headers().contains_key(HOP_HEADER);
    match path.as_str() {
        "/api/v2/hosts/{ip}" | "/api/v2/hosts/{ip}/score" | "/api/v2/hosts/{ip}/timeseries" => {
            let ip = req
                .uri()
                .path()
                .split('/')
                .nth(4)
                .map(percent_decode)
                .and_then(|s| s.parse::<IpAddr>().ok());
            match ip {
                Some(ip) => by_host(&cluster, ip, hop, req, next).await,
                // The handler answers the 400.
                None => next.run(req).await,
            }
        }
        "/api/v2/flows" | "/api/v2/flows/history" => {
            let host = req.uri().query().and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "host")
                    .and_then(|(_, v)| v.trim().parse::<IpAddr>().ok())
            });
            match host {
                Some(ip) => by_host(&cluster, ip, hop, req, next).await,
                None => next.run(req).await,
            }
        }
        "/api/v2/hosts" if !hop => gather_hosts(&api, &cluster, req, next).await,
        "/api/v2/observation-points" if !hop => gather_points(&api, &cluster, req, next).await,
        "/api/v2/interfaces" if !hop => gather_interfaces(&api, &cluster, req).await,
        _ => next.run(req).await,
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unavailable(detail: impl Into<String>) -> Response {
    let mut resp = Problem {
        kind: "about:blank",
        title: "Service Unavailable",
        status: 503,
        detail: detail.into(),
    }
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    resp
}

async fn by_host(cluster: &Cluster, ip: IpAddr, hop: bool, req: Request, next: Next) -> Response {
    let owner = cluster.owner(ip);
    if owner == Owner::Me {
        return next.run(req).await;
    }
    let shard = shard_of(ip, cluster.shards);
    if hop {
        // Forwarded here, but the table moved meanwhile: never forward a second time.
        cluster.metrics.no_owner.inc();
        return unavailable(format!("shard {shard} is changing owner; retry shortly"));
    }
    let Owner::Other { replica, api } = owner else {
        cluster.metrics.no_owner.inc();
        return unavailable(format!(
            "shard {shard} has no owner now (a replica is taking it over); retry shortly"
        ));
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    match forward(&api, &path, req.headers(), &cluster.replica).await {
        Ok(mut resp) => {
            cluster.metrics.forwarded.inc();
            if let Ok(v) = HeaderValue::from_str(&replica) {
                resp.headers_mut().insert(SERVED_BY_HEADER, v);
            }
            resp
        }
        Err(e) => {
            cluster.metrics.forward_errors.inc();
            cluster.metrics.no_owner.inc();
            debug!(%replica, error = %e, "the owner of a shard did not answer");
            unavailable(format!(
                "replica {replica}, owner of shard {shard}, does not answer; retry shortly"
            ))
        }
    }
}

/// Sends `GET path` to the replica at `base` with the caller's `Authorization` and `Accept`
/// and the hop header; its answer (bounded), or why there is none.
async fn forward(
    base: &str,
    path: &str,
    headers: &axum::http::HeaderMap,
    me: &str,
) -> Result<Response, String> {
    let (status, content_type, retry_after, body) =
        tokio::time::timeout(FORWARD_TIMEOUT, exchange(base, path, headers, me))
            .await
            .map_err(|_| format!("no answer within {} s", FORWARD_TIMEOUT.as_secs()))??;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(ra) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, ra);
    }
    Ok(resp)
}

type Answer = (StatusCode, Option<HeaderValue>, Option<HeaderValue>, Bytes);

async fn exchange(
    base: &str,
    path: &str,
    headers: &axum::http::HeaderMap,
    me: &str,
) -> Result<Answer, String> {
    let url = url::Url::parse(base).map_err(|e| format!("bad address {base:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "only http:// addresses are forwarded to, not {base:?}"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("no host in {base:?}"))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut builder = axum::http::Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::HOST, authority.as_str())
        .header(HOP_HEADER, me);
    for name in [header::AUTHORIZATION, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            builder = builder.header(name, v);
        }
    }
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
        let ra = resp.headers().get(header::RETRY_AFTER).cloned();
        let body = Limited::new(resp.into_body(), MAX_FORWARD_BYTES)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, ct, ra, body))
    }
    .await;
    conn.abort();
    result
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Bytes,
    Packets,
    Flows,
    LastSeen,
}

fn sort_of(value: Option<&str>) -> Option<(Key, bool)> {
    let Some(v) = value else {
        return Some((Key::Bytes, true));
    };
    let (desc, name) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let key = match name {
        "bytes" => Key::Bytes,
        "packets" => Key::Packets,
        "flows" => Key::Flows,
        "last_seen" => Key::LastSeen,
        _ => return None,
    };
    Some((key, desc))
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn sort_value(key: Key, h: &Value) -> u64 {
    match key {
        Key::Bytes => num(h, "bytes_sent").saturating_add(num(h, "bytes_rcvd")),
        Key::Packets => num(h, "packets_sent").saturating_add(num(h, "packets_rcvd")),
        Key::Flows => num(h, "flows_as_client").saturating_add(num(h, "flows_as_server")),
        Key::LastSeen => num(h, "last_seen_ns"),
    }
}

fn host_key(h: &Value) -> (Option<IpAddr>, u64) {
    (
        h.get("ip")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        num(h, "vlan"),
    )
}

/// Orders hosts as `GET /api/v2/hosts` does: by the sort key, then by address and VLAN.
fn order(key: Key, descending: bool, a: &Value, b: &Value) -> Ordering {
    let (x, y) = (sort_value(key, a), sort_value(key, b));
    let by = if descending { y.cmp(&x) } else { x.cmp(&y) };
    by.then_with(|| host_key(a).cmp(&host_key(b)))
}

/// The query of `uri` without `offset` and `limit`.
fn filters(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "offset" && k != "limit")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn with_page(filters: &[(String, String)], offset: usize, limit: usize) -> String {
    page_of(HOSTS_PATH, filters, offset, limit)
}

const HOSTS_PATH: &str = "/api/v2/hosts";
const POINTS_PATH: &str = "/api/v2/observation-points";
const INTERFACES_PATH: &str = "/api/v2/interfaces";

fn page_of(path: &str, filters: &[(String, String)], offset: usize, limit: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in filters {
        s.append_pair(k, v);
    }
    s.append_pair("offset", &offset.to_string());
    s.append_pair("limit", &limit.to_string());
    format!("{path}?{}", s.finish())
}

/// One replica's part: its first `need` hosts in the list's order, and its total.
type Part = Result<(Vec<Value>, usize), String>;

async fn local_part(api: &ApiState, filters: &[(String, String)], need: usize) -> Part {
    let mut items = Vec::new();
    loop {
        let uri: Uri = with_page(filters, items.len(), (need - items.len()).min(MAX_LIMIT))
            .parse()
            .map_err(|e| format!("uri: {e}"))?;
        let Query(q) = Query::<HostQuery>::try_from_uri(&uri).map_err(|e| e.body_text())?;
        let page = crate::api::hosts::list(State(api.clone()), ApiQuery(q))
            .await
            .map_err(|p| p.detail)?
            .0;
        let got = page.items.len();
        for h in page.items {
            items.push(serde_json::to_value(h).map_err(|e| e.to_string())?);
        }
        if got == 0 || items.len() >= need || items.len() >= page.total {
            return Ok((items, page.total));
        }
    }
}

async fn remote_part(
    base: &str,
    headers: &axum::http::HeaderMap,
    me: &str,
    filters: &[(String, String)],
    need: usize,
) -> Part {
    remote_list(base, HOSTS_PATH, headers, me, filters, need).await
}

/// The first `need` items of list `list` of the replica at `base`, and its total.
async fn remote_list(
    base: &str,
    list: &str,
    headers: &axum::http::HeaderMap,
    me: &str,
    filters: &[(String, String)],
    need: usize,
) -> Part {
    let mut items: Vec<Value> = Vec::new();
    loop {
        let path = page_of(
            list,
            filters,
            items.len(),
            (need - items.len()).min(MAX_LIMIT),
        );
        let (status, _, _, body) =
            tokio::time::timeout(FORWARD_TIMEOUT, exchange(base, &path, headers, me))
                .await
                .map_err(|_| format!("no answer within {} s", FORWARD_TIMEOUT.as_secs()))??;
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let page: Value = serde_json::from_slice(&body).map_err(|e| format!("JSON: {e}"))?;
        let total = page
            .get("total")
            .and_then(Value::as_u64)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or("no total")?;
        let got = page
            .get("items")
            .and_then(Value::as_array)
            .ok_or("no items")?;
        let n = got.len();
        items.extend(got.iter().take(need - items.len()).cloned());
        if n == 0 || items.len() >= need || items.len() >= total {
            return Ok((items, total));
        }
    }
}

async fn gather_hosts(api: &ApiState, cluster: &Cluster, req: Request, next: Next) -> Response {
    // Invalid queries: the local handler answers the 400 exactly as it would alone.
    let Ok(Query(q)) = Query::<HostQuery>::try_from_uri(req.uri()) else {
        return next.run(req).await;
    };
    let (Ok(paging), Some((key, descending))) = (
        Paging::parse(q.offset.as_deref(), q.limit.as_deref()),
        sort_of(q.sort.as_deref()),
    ) else {
        return next.run(req).await;
    };
    let need = paging.offset.saturating_add(paging.limit);
    if need > MAX_GATHER {
        return Problem::bad_request(format!(
            "offset + limit is over {MAX_GATHER}: a cluster-wide list is gathered from every \
             replica; narrow it with filters"
        ))
        .into_response();
    }
    let filters = filters(req.uri());
    let headers = req.headers().clone();
    let me = cluster.replica.clone();
    cluster.metrics.gathered.inc();
    let others = cluster.others();
    let futs: Vec<_> = others
        .into_iter()
        .map(|(name, base)| {
            let (filters, headers, me) = (filters.clone(), headers.clone(), me.clone());
            async move {
                let part = remote_part(&base, &headers, &me, &filters, need).await;
                (name, part)
            }
        })
        .collect();
    let remote = futures::stream::iter(futs)
        .buffer_unordered(GATHER_FAN_OUT)
        .collect::<Vec<_>>();
    let (mine, remote) = tokio::join!(local_part(api, &filters, need), remote);
    let mut parts = vec![(me, mine)];
    parts.extend(remote);
    let mut total = 0usize;
    let mut items = Vec::new();
    let mut unreachable = Vec::new();
    for (name, part) in parts {
        match part {
            Ok((got, t)) => {
                total = total.saturating_add(t);
                items.extend(got);
            }
            Err(e) => {
                cluster.metrics.forward_errors.inc();
                debug!(replica = %name, error = %e, "a replica did not answer a host list");
                unreachable.push(name);
            }
        }
    }
    unreachable.sort();
    items.sort_by(|a, b| order(key, descending, a, b));
    // A host held by two replicas for a moment (a hand-over in flight) is listed once.
    let mut seen = HashSet::new();
    let before = items.len();
    items.retain(|h| seen.insert(host_key(h)));
    total = total.saturating_sub(before - items.len());
    let items = items
        .into_iter()
        .skip(paging.offset)
        .take(paging.limit)
        .collect();
    axum::Json(HostPage {
        total,
        offset: paging.offset,
        limit: paging.limit,
        items,
        unreachable,
    })
    .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(name: &str, owned: Vec<u32>) -> Lease {
        Lease {
            replica: name.to_owned(),
            api: format!("http://{name}:8080"),
            owned,
            members: 2,
            at_ms: 0,
        }
    }

    #[test]
    fn owner_is_me_a_lease_holder_or_nobody() {
        let c = Cluster::new("a", 4, Arc::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let shard = shard_of(ip, 4);
        assert_eq!(c.owner(ip), Owner::Nobody);
        c.set_leases(vec![lease("a", vec![]), lease("b", vec![shard])]);
        assert_eq!(
            c.owner(ip),
            Owner::Other {
                replica: "b".into(),
                api: "http://b:8080".into()
            }
        );
        c.set_owned(BTreeSet::from([shard]));
        assert_eq!(c.owner(ip), Owner::Me);
        assert_eq!(
            c.others(),
            vec![("b".to_owned(), "http://b:8080".to_owned())]
        );
    }

    #[test]
    fn merge_order_matches_the_local_list() {
        let h = |ip: &str, b: u64| serde_json::json!({"ip": ip, "vlan": 0, "bytes_sent": b, "bytes_rcvd": 0});
        let mut v = [h("10.0.0.2", 5), h("10.0.0.1", 5), h("10.0.0.3", 9)];
        v.sort_by(|a, b| order(Key::Bytes, true, a, b));
        let ips: Vec<&str> = v.iter().map(|x| x["ip"].as_str().unwrap()).collect();
        assert_eq!(ips, ["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(sort_of(Some("-flows")), Some((Key::Flows, true)));
        assert_eq!(sort_of(Some("colour")), None);
        assert_eq!(percent_decode("2001%3Adb8%3A%3A1"), "2001:db8::1");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn points_of_several_replicas_add_up() {
        let mut a = serde_json::json!({"name": "s1/eth0", "bytes": 10, "hosts": 2,
            "first_seen_ns": 0, "last_seen_ns": 50, "datagrams": 7});
        let b = serde_json::json!({"name": "s1/eth0", "bytes": 5, "hosts": 3,
            "first_seen_ns": 20, "last_seen_ns": 40, "datagrams": 7, "templates": 2});
        merge_point(&mut a, &b);
        assert_eq!(
            a,
            serde_json::json!({"name": "s1/eth0", "bytes": 15, "hosts": 5,
                "first_seen_ns": 20, "last_seen_ns": 50, "datagrams": 7, "templates": 2})
        );
    }

    #[test]
    fn interfaces_of_several_replicas_add_up() {
        let mut a = serde_json::json!({"sensor": "s1", "name": "eth0", "kind": "capture",
            "observation_points": ["s1/eth0"], "bytes": 10, "packets": 1, "flows": 1,
            "first_seen_ns": 30, "last_seen_ns": 50});
        let b = serde_json::json!({"sensor": "s1", "name": "eth0", "kind": "capture",
            "observation_points": ["s1/eth0", "s1/eth0.7"], "bytes": 5, "packets": 2,
            "flows": 3, "first_seen_ns": 20, "last_seen_ns": 40});
        merge_interface(&mut a, &b);
        assert_eq!(
            a,
            serde_json::json!({"sensor": "s1", "name": "eth0", "kind": "capture",
                "observation_points": ["s1/eth0", "s1/eth0.7"], "bytes": 15, "packets": 3,
                "flows": 4, "first_seen_ns": 20, "last_seen_ns": 50})
        );
    }

    #[test]
    fn paging_is_rewritten_and_filters_kept() {
        let uri: Uri = "/api/v2/hosts?q=10.1.&offset=5&limit=7&sort=-flows"
            .parse()
            .unwrap();
        let f = filters(&uri);
        assert_eq!(
            with_page(&f, 0, 12),
            "/api/v2/hosts?q=10.1.&sort=-flows&offset=0&limit=12"
        );
    }
}

/// A page of observation points gathered from every replica.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PointPage {
    /// Points, over all pages (and all replicas).
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// This page.
    #[schema(value_type = Vec<crate::hosts::PointTotals>)]
    pub items: Vec<Value>,
    /// Replicas that did not answer (sharded mode): their part is missing from the totals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub unreachable: Vec<String>,
}

/// Folds `b` (the same point on another replica) into `a`: traffic and hosts add up (each
/// flow is counted by its client's shard owner, each host by its owner), `first_seen_ns` is
/// the earliest, every other number the largest (exporter statistics are the same wherever
/// they are read), text stays.
fn merge_point(a: &mut Value, b: &Value) {
    let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) else {
        return;
    };
    for (k, vb) in b {
        let Some(nb) = vb.as_u64() else {
            continue;
        };
        let na = a.get(k).and_then(Value::as_u64);
        let merged = match (k.as_str(), na) {
            (_, None) => nb,
            ("bytes" | "packets" | "flows" | "hosts", Some(na)) => na.saturating_add(nb),
            ("first_seen_ns", Some(na)) => match (na, nb) {
                (0, x) | (x, 0) => x,
                (x, y) => x.min(y),
            },
            (_, Some(na)) => na.max(nb),
        };
        a.insert(k.clone(), Value::from(merged));
    }
}

async fn gather_points(api: &ApiState, cluster: &Cluster, req: Request, next: Next) -> Response {
    let Ok(Query(q)) = Query::<crate::api::points::PointQuery>::try_from_uri(req.uri()) else {
        return next.run(req).await;
    };
    let Ok(paging) = Paging::parse(q.offset.as_deref(), q.limit.as_deref()) else {
        return next.run(req).await;
    };
    let headers = req.headers().clone();
    let me = cluster.replica.clone();
    cluster.metrics.gathered.inc();
    let futs: Vec<_> = cluster
        .others()
        .into_iter()
        .map(|(name, base)| {
            let (headers, me) = (headers.clone(), me.clone());
            async move {
                let part = remote_list(&base, POINTS_PATH, &headers, &me, &[], MAX_GATHER).await;
                (name, part)
            }
        })
        .collect();
    let remote = futures::stream::iter(futs)
        .buffer_unordered(GATHER_FAN_OUT)
        .collect::<Vec<_>>();
    let local = async {
        let page = crate::api::points::list(
            State(api.clone()),
            ApiQuery(crate::api::points::PointQuery {
                offset: None,
                limit: Some(MAX_LIMIT.to_string()),
            }),
        )
        .await
        .map_err(|p| p.detail)?
        .0;
        let total = page.total;
        let items = page
            .items
            .into_iter()
            .map(|p| serde_json::to_value(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, String>((items, total))
    };
    let (mine, remote) = tokio::join!(local, remote);
    let mut parts = vec![(me, mine)];
    parts.extend(remote);
    let mut by_name: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let mut unreachable = Vec::new();
    for (name, part) in parts {
        match part {
            Ok((items, _)) => {
                for p in items {
                    let key = p
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    match by_name.get_mut(&key) {
                        Some(a) => merge_point(a, &p),
                        None => {
                            by_name.insert(key, p);
                        }
                    }
                }
            }
            Err(e) => {
                cluster.metrics.forward_errors.inc();
                debug!(replica = %name, error = %e, "a replica did not answer a point list");
                unreachable.push(name);
            }
        }
    }
    unreachable.sort();
    let total = by_name.len();
    let items = by_name
        .into_values()
        .skip(paging.offset)
        .take(paging.limit)
        .collect();
    axum::Json(PointPage {
        total,
        offset: paging.offset,
        limit: paging.limit,
        items,
        unreachable,
    })
    .into_response()
}

/// A page of interfaces and exporters gathered from every replica.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InterfacePage {
    /// Interfaces matching the filters, over all pages (and all replicas).
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// This page.
    #[schema(value_type = Vec<crate::api::resources::InterfaceView>)]
    pub items: Vec<Value>,
    /// Replicas that did not answer (sharded mode): their part is missing from the totals.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub unreachable: Vec<String>,
}

/// Folds the same interface seen by another replica into `a`: traffic adds up, first seen is
/// the earliest, last seen the latest, observation points are the union (sorted).
fn merge_interface(a: &mut Value, b: &Value) {
    let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) else {
        return;
    };
    for k in ["bytes", "packets", "flows"] {
        let sum = num_of(a, k).saturating_add(num_of(b, k));
        a.insert(k.to_owned(), Value::from(sum));
    }
    let first = match (num_of(a, "first_seen_ns"), num_of(b, "first_seen_ns")) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    a.insert("first_seen_ns".to_owned(), Value::from(first));
    let last = num_of(a, "last_seen_ns").max(num_of(b, "last_seen_ns"));
    a.insert("last_seen_ns".to_owned(), Value::from(last));
    let mut points: BTreeSet<String> = BTreeSet::new();
    for side in [&*a, b] {
        if let Some(list) = side.get("observation_points").and_then(Value::as_array) {
            points.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    a.insert(
        "observation_points".to_owned(),
        Value::from(points.into_iter().collect::<Vec<_>>()),
    );
}

fn num_of(o: &serde_json::Map<String, Value>, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn text_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

async fn gather_interfaces(api: &ApiState, cluster: &Cluster, req: Request) -> Response {
    // The local answer first, with the caller's filters: a bad query is its 400.
    let q = match Query::<crate::api::resources::InterfaceQuery>::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(e) => return Problem::bad_request(e.body_text()).into_response(),
    };
    let paging = match Paging::parse(q.offset.as_deref(), q.limit.as_deref()) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let sort = q.sort.clone();
    let (descending, key) = match sort.as_deref() {
        None => (true, "bytes"),
        Some(v) => match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v.strip_prefix('+').unwrap_or(v)),
        },
    };
    // Filters passed on; paging and sort applied here after the merge.
    let filters: Vec<(String, String)> = filters(req.uri())
        .into_iter()
        .filter(|(k, _)| k != "sort")
        .collect();
    let local = crate::api::resources::interfaces(
        State(api.clone()),
        ApiQuery(crate::api::resources::InterfaceQuery {
            sensor: q.sensor,
            kind: q.kind,
            sort: q.sort,
            offset: None,
            limit: Some(MAX_LIMIT.to_string()),
        }),
    )
    .await;
    let mine = match local {
        Ok(page) => page.0,
        Err(p) => return p.into_response(),
    };
    let headers = req.headers().clone();
    let me = cluster.replica.clone();
    cluster.metrics.gathered.inc();
    let futs: Vec<_> = cluster
        .others()
        .into_iter()
        .map(|(name, base)| {
            let (headers, me, filters) = (headers.clone(), me.clone(), filters.clone());
            async move {
                let part =
                    remote_list(&base, INTERFACES_PATH, &headers, &me, &filters, MAX_GATHER).await;
                (name, part)
            }
        })
        .collect();
    let remote: Vec<(String, Part)> = futures::stream::iter(futs)
        .buffer_unordered(GATHER_FAN_OUT)
        .collect()
        .await;
    let mut merged: std::collections::BTreeMap<(String, String, String), Value> =
        std::collections::BTreeMap::new();
    let mut unreachable = Vec::new();
    let mut add = |v: Value| {
        let k = (
            text_of(&v, "sensor").to_owned(),
            text_of(&v, "name").to_owned(),
            text_of(&v, "kind").to_owned(),
        );
        match merged.get_mut(&k) {
            Some(a) => merge_interface(a, &v),
            None => {
                merged.insert(k, v);
            }
        }
    };
    for v in mine.items {
        if let Ok(v) = serde_json::to_value(v) {
            add(v);
        }
    }
    for (name, part) in remote {
        match part {
            Ok((items, _)) => items.into_iter().for_each(&mut add),
            Err(e) => {
                cluster.metrics.forward_errors.inc();
                debug!(replica = %name, error = %e, "a replica did not answer an interface list");
                unreachable.push(name);
            }
        }
    }
    unreachable.sort();
    let mut items: Vec<Value> = merged.into_values().collect();
    items.sort_by(|a, b| {
        let o = if key == "name" {
            text_of(a, "name").cmp(text_of(b, "name"))
        } else {
            let k = if key == "last_seen" {
                "last_seen_ns"
            } else {
                key
            };
            num(a, k).cmp(&num(b, k))
        };
        let o = if descending { o.reverse() } else { o };
        o.then_with(|| {
            (text_of(a, "sensor"), text_of(a, "name"))
                .cmp(&(text_of(b, "sensor"), text_of(b, "name")))
        })
    });
    let total = items.len();
    let items = items
        .into_iter()
        .skip(paging.offset)
        .take(paging.limit)
        .collect();
    axum::Json(InterfacePage {
        total,
        offset: paging.offset,
        limit: paging.limit,
        items,
        unreachable,
    })
    .into_response()
}
