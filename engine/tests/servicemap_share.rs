//! Two engine replicas share their service maps through the KV bucket `nw-servicemap` of a real
//! nats-server: edges one learned appear on the other with their flows; a status set through
//! the API on one is applied on the other and, after a restart, again (the watch replays the
//! bucket); a forged record (fields that do not hash to its id) is rejected.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use netwarden_api::bus::{Kv, KvChange, NatsKv};
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, L7Info, ip_to_bytes};
use netwarden_api::names::SERVICEMAP_BUCKET;
use netwarden_engine::servicemap::{Learned, Status, id_text, share};
use netwarden_engine::state::{SharedState, State, StateConfig};
use netwarden_testkit::NatsServer;
use tokio::sync::watch;

mod common;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC;

fn rec(id: u64, client: &str, server: &str, port: u32, t: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        ip_version: 4,
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 40_000 + u32::try_from(id).unwrap(),
        server_port: port,
        l4_proto: 6,
        first_seen_ns: T0 + t * SEC,
        last_seen_ns: T0 + t * SEC + SEC,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 2,
            bytes: 100,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 2,
            bytes: 200,
            ..Default::default()
        }),
        l7: Some(L7Info {
            app_protocol: "HTTP".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn new_state() -> SharedState {
    Arc::new(RwLock::new(State::new(&StateConfig::default())))
}

async fn bucket(nats: &NatsServer) -> Arc<dyn Kv> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    Arc::new(NatsKv::open(client, SERVICEMAP_BUCKET).await.unwrap())
}

/// (flows, status, learned) of the only edge from `client`, if any.
fn edge_of(s: &SharedState, client: &str) -> Option<(u64, Status, Learned, u64)> {
    let g = s.read().unwrap();
    g.servicemap
        .edges
        .iter()
        .find(|e| e.client.id() == client)
        .map(|e| (e.flows + e.remote[0], e.status, e.learned, e.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_edges_and_decisions_through_nw_servicemap() {
    let nats = NatsServer::start();
    let (stop, rx) = watch::channel(false);
    let (a, b) = (new_state(), new_state());
    let ta = share::spawn(Arc::clone(&a), bucket(&nats).await, "engine-0", rx.clone());
    let tb = share::spawn(Arc::clone(&b), bucket(&nats).await, "engine-1", rx.clone());

    // Replica A learns an edge from three flows.
    a.write().unwrap().apply_batch(vec![
        rec(1, "10.0.0.1", "10.0.0.2", 80, 0),
        rec(2, "10.0.0.1", "10.0.0.2", 80, 5),
        rec(3, "10.0.0.1", "10.0.0.2", 80, 9),
    ]);
    common::wait_for("B to see A's edge", Duration::from_secs(15), async || {
        edge_of(&b, "10.0.0.1").is_some_and(|e| e.0 == 3)
    })
    .await;
    let (flows, status, learned, id) = edge_of(&b, "10.0.0.1").unwrap();
    assert_eq!(
        (flows, status, learned),
        (3, Status::Allowed, Learned::Replica)
    );
    {
        let g = b.read().unwrap();
        let e = g.servicemap.edges.get(id).unwrap();
        assert_eq!(
            (e.flows, e.remote),
            (0, [3, 300, 600]),
            "counted as A's, not B's"
        );
    }
    // B counts one flow of its own on the same edge: both views add up on B.
    b.write()
        .unwrap()
        .apply_batch(vec![rec(4, "10.0.0.1", "10.0.0.2", 80, 20)]);
    assert_eq!(edge_of(&b, "10.0.0.1").unwrap().0, 4);
    common::wait_for("A to add B's flow", Duration::from_secs(15), async || {
        edge_of(&a, "10.0.0.1").is_some_and(|e| e.0 == 4)
    })
    .await;

    // An operator denies the edge on B: A applies it.
    b.write().unwrap().servicemap.set_status(id, Status::Denied);
    common::wait_for(
        "A to apply B's decision",
        Duration::from_secs(15),
        async || edge_of(&a, "10.0.0.1").is_some_and(|e| e.1 == Status::Denied),
    )
    .await;
    assert_eq!(edge_of(&a, "10.0.0.1").unwrap().2, Learned::Manual);

    // A forged record: its fields do not hash to the id in its key.
    let kv = bucket(&nats).await;
    let mut forged = serde_json::json!({
        "client": {"ip": "10.9.9.9"}, "server": {"ip": "10.0.0.2"}, "port": 22, "l4": 6,
        "l7": "SSH", "vlan": 0, "observation_point": "x", "first_seen_ns": 1,
        "last_seen_ns": 2, "flows": 1, "bytes_c2s": 1, "bytes_s2c": 1, "status": "allowed",
        "client_ip": "10.9.9.9", "server_ip": "10.0.0.2"
    });
    kv.put(
        &format!("edge.{}.engine-9", id_text(id ^ 1)),
        Bytes::from(serde_json::to_vec(&forged).unwrap()),
    )
    .await
    .unwrap();
    forged["port"] = serde_json::json!("not a port");
    kv.put(
        "edge.00000000000000aa.engine-9",
        Bytes::from(serde_json::to_vec(&forged).unwrap()),
    )
    .await
    .unwrap();
    common::wait_for("A to reject both", Duration::from_secs(15), async || {
        a.read()
            .unwrap()
            .servicemap
            .share_counters()
            .is_some_and(|c| c.rejected == 2)
    })
    .await;
    assert!(edge_of(&a, "10.9.9.9").is_none());

    // A restarts (an empty map, the same replica name): the decision comes back from the
    // bucket and applies when the edge is seen again.
    stop.send(true).unwrap();
    ta.await.unwrap();
    tb.await.unwrap();
    let (_stop2, rx2) = watch::channel(false);
    let a2 = new_state();
    let _t = share::spawn(Arc::clone(&a2), bucket(&nats).await, "engine-0", rx2);
    // Wait until the bucket was replayed (B's edge record arrives with it).
    common::wait_for("the replay", Duration::from_secs(15), async || {
        edge_of(&a2, "10.0.0.1").is_some_and(|e| e.1 == Status::Denied)
    })
    .await;
    let e = edge_of(&a2, "10.0.0.1").unwrap();
    assert_eq!((e.1, e.2), (Status::Denied, Learned::Manual), "{e:?}");
    a2.write()
        .unwrap()
        .apply_batch(vec![rec(9, "10.0.0.1", "10.0.0.2", 80, 30)]);
    let g = a2.read().unwrap();
    assert_eq!(
        g.analysis
            .store
            .iter()
            .filter(|s| s.alert.alert_type == "lateral_movement")
            .count(),
        1
    );
}

fn state_of(max_edges: usize) -> SharedState {
    let mut config = StateConfig::default();
    config.servicemap.max_edges = max_edges;
    Arc::new(RwLock::new(State::new(&config)))
}

/// The `edge.*` keys in the bucket, sorted.
async fn edge_keys(kv: &Arc<dyn Kv>) -> Vec<String> {
    kv.entries("edge.>")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn id_of(s: &SharedState, client: &str) -> u64 {
    edge_of(s, client).unwrap().3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_and_expired_edges_leave_the_bucket() {
    let nats = NatsServer::start();
    let (_stop, rx) = watch::channel(false);
    let (a, b) = (state_of(2), new_state());
    let kv = bucket(&nats).await;
    let _ta = share::spawn(Arc::clone(&a), bucket(&nats).await, "engine-0", rx.clone());
    let _tb = share::spawn(Arc::clone(&b), bucket(&nats).await, "engine-1", rx.clone());
    a.write().unwrap().apply_batch(vec![
        rec(1, "10.0.0.1", "10.0.0.9", 80, 0),
        rec(2, "10.0.0.2", "10.0.0.9", 80, 1),
    ]);
    let (e1, e2) = (id_of(&a, "10.0.0.1"), id_of(&a, "10.0.0.2"));
    let key = |id: u64| format!("edge.{}.engine-0", id_text(id));
    let mut want = vec![key(e1), key(e2)];
    want.sort();
    common::wait_for(
        "both edges in the bucket",
        Duration::from_secs(15),
        async || edge_keys(&kv).await == want,
    )
    .await;
    common::wait_for("B to count A's flow", Duration::from_secs(15), async || {
        edge_of(&b, "10.0.0.1").is_some_and(|e| e.0 == 1)
    })
    .await;
    // A third edge in a 2-edge map: the least recently used (10.0.0.1) is evicted, and its key
    // leaves the bucket; B takes A's count off its total.
    a.write()
        .unwrap()
        .apply_batch(vec![rec(3, "10.0.0.3", "10.0.0.9", 80, 2)]);
    assert!(edge_of(&a, "10.0.0.1").is_none());
    let e3 = id_of(&a, "10.0.0.3");
    let mut want = vec![key(e2), key(e3)];
    want.sort();
    common::wait_for(
        "the evicted edge deleted",
        Duration::from_secs(15),
        async || edge_keys(&kv).await == want,
    )
    .await;
    common::wait_for(
        "B to forget A's count",
        Duration::from_secs(15),
        async || edge_of(&b, "10.0.0.1").is_some_and(|e| e.0 == 0),
    )
    .await;
    // Idle past `--servicemap-idle` (flow time): both expire and leave the bucket.
    a.write().unwrap().servicemap.sweep(T0 + 3 * 86_400 * SEC);
    assert_eq!(a.read().unwrap().servicemap.edges.len(), 0);
    common::wait_for(
        "the expired edges deleted",
        Duration::from_secs(15),
        async || edge_keys(&kv).await.is_empty(),
    )
    .await;
    let c = a.read().unwrap().servicemap.share_counters().unwrap();
    assert_eq!(c.deleted, 3, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_decision_wins_on_every_replica_whatever_the_arrival_order() {
    let nats = NatsServer::start();
    let (stop, rx) = watch::channel(false);
    let (a, b) = (new_state(), new_state());
    let ta = share::spawn(Arc::clone(&a), bucket(&nats).await, "engine-0", rx.clone());
    let tb = share::spawn(Arc::clone(&b), bucket(&nats).await, "engine-1", rx.clone());
    for s in [&a, &b] {
        s.write()
            .unwrap()
            .apply_batch(vec![rec(1, "10.0.0.1", "10.0.0.2", 5432, 0)]);
    }
    let id = id_of(&a, "10.0.0.1");
    let status = |s: &SharedState| edge_of(s, "10.0.0.1").unwrap().1;
    // Two operators decide differently at nearly the same time: A denies at t = 200 (wall
    // clock, ns), B allows at t = 100. The newer (A's) wins on both, though B applied its own
    // first and A's decision may reach B before or after B's own reaches the bucket.
    b.write()
        .unwrap()
        .servicemap
        .set_status_at(id, Status::Allowed, 100);
    a.write()
        .unwrap()
        .servicemap
        .set_status_at(id, Status::Denied, 200);
    common::wait_for(
        "both to hold A's decision",
        Duration::from_secs(15),
        async || status(&a) == Status::Denied && status(&b) == Status::Denied,
    )
    .await;
    // A newer one, from a third replica straight into the bucket, wins everywhere.
    let kv = bucket(&nats).await;
    let v = serde_json::json!({"status": "allowed", "decided_ns": 300, "replica": "engine-9"});
    kv.put(
        &format!("decision.{}.engine-9", id_text(id)),
        Bytes::from(serde_json::to_vec(&v).unwrap()),
    )
    .await
    .unwrap();
    common::wait_for(
        "the newest everywhere",
        Duration::from_secs(15),
        async || status(&a) == Status::Allowed && status(&b) == Status::Allowed,
    )
    .await;

    // A restarted replica replays every replica's latest decision (B's at 100, A's at 200,
    // engine-9's at 300): it ends with the newest.
    stop.send(true).unwrap();
    ta.await.unwrap();
    tb.await.unwrap();
    let (_stop2, rx2) = watch::channel(false);
    let c = new_state();
    let _t = share::spawn(Arc::clone(&c), bucket(&nats).await, "engine-2", rx2);
    common::wait_for("the replay", Duration::from_secs(15), async || {
        edge_of(&c, "10.0.0.1").is_some()
    })
    .await;
    c.write()
        .unwrap()
        .apply_batch(vec![rec(2, "10.0.0.1", "10.0.0.2", 5432, 10)]);
    assert_eq!(status(&c), Status::Allowed);
}

/// A decision of `replica` at `t` as the bucket holds it.
fn decision(id: u64, replica: &str, status: &str, t: u64) -> KvChange {
    let v = serde_json::json!({"status": status, "decided_ns": t, "replica": replica});
    KvChange::Put {
        key: format!("decision.{}.{replica}", id_text(id)),
        value: Bytes::from(serde_json::to_vec(&v).unwrap()),
    }
}

#[test]
fn every_arrival_order_of_conflicting_decisions_ends_with_the_newest() {
    let mut s = State::new(&StateConfig::default());
    s.apply_batch(vec![rec(1, "10.0.0.1", "10.0.0.2", 5432, 0)]);
    let id = s.servicemap.edges.iter().next().unwrap().id;
    // Four decisions; the newest is engine-b's at 300 (a tie with engine-a: the greater
    // replica name wins), an old-format one (`decision.<id>`, no time) is the oldest.
    let mut changes = vec![
        decision(id, "engine-a", "denied", 300),
        decision(id, "engine-b", "allowed", 300),
        decision(id, "engine-c", "undecided", 120),
        KvChange::Put {
            key: format!("decision.{}", id_text(id)),
            value: Bytes::from_static(br#"{"status": "denied"}"#),
        },
    ];
    let mut orders = 0;
    permute(&mut changes, 0, &mut |order| {
        let mut s = State::new(&StateConfig::default());
        s.servicemap.enable_sharing("engine-x");
        s.apply_batch(vec![rec(1, "10.0.0.1", "10.0.0.2", 5432, 0)]);
        for c in order {
            s.servicemap.apply_shared(c).unwrap();
        }
        let e = s.servicemap.edges.get(id).unwrap();
        assert_eq!((e.status, e.learned), (Status::Allowed, Learned::Manual));
        // A decision that arrives before its edge applies when the edge appears.
        let mut later = State::new(&StateConfig::default());
        later.servicemap.enable_sharing("engine-x");
        for c in order {
            later.servicemap.apply_shared(c).unwrap();
        }
        later.apply_batch(vec![rec(1, "10.0.0.1", "10.0.0.2", 5432, 0)]);
        assert_eq!(
            later.servicemap.edges.get(id).unwrap().status,
            Status::Allowed
        );
        orders += 1;
    });
    assert_eq!(orders, 24);
}

fn permute(v: &mut Vec<KvChange>, k: usize, f: &mut impl FnMut(&[KvChange])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}
