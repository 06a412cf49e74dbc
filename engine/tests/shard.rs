//! The sharded engine over a real nats-server 2.15, with real `netwarden-engine run` replicas
//! as processes (DESIGN.md §5, docs/deploy.md):
//! (a) the same flows through R = 1 and R = 3 give the same host totals, scores and alerts,
//!     and a corrupt batch is skipped, counted and dead-lettered on `nw.dlq`;
//! (b) `kill -9` of a replica mid-replay: the survivors own its shards (time printed) and every
//!     flow counts exactly once in the host totals;
//! (c) a NATS restart mid-replay loses nothing and no replica dies;
//! (d) the JetStream publisher with NATS down: bounded in-flight, drops counted, and what was
//!     acknowledged is in the stream exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use netwarden_api::bus::jetstream::{
    FlowStreamLimits, JetStreamBus, JetStreamCounters, JetStreamOptions, ensure_flows_stream,
};
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{NatsBus, Publisher};
use netwarden_api::flow::FlowRecord;
use netwarden_api::names::{FLOWS_STREAM, flows_subject};
use netwarden_engine::shard::members::Lease;
use netwarden_engine::state::{State, StateConfig};
use netwarden_testkit::NatsServer;
use serde_json::Value;

use common::shard::{Replica, SHARDS, TTL, batches, corpus};

/// (ip, vlan) → (bytes sent, rcvd, packets sent, rcvd, flows as client, as server, active c, s)
type Rows = BTreeMap<(String, u64), [u64; 8]>;

/// What one engine that applied every record once shows.
fn truth(records: &[FlowRecord]) -> Rows {
    let mut s = State::new(&StateConfig {
        shards: SHARDS,
        ..StateConfig::default()
    });
    s.apply_batch(records.to_vec());
    s.hosts
        .iter()
        .map(|h| {
            (
                (h.key.ip.to_string(), u64::from(h.key.vlan)),
                [
                    h.bytes_sent,
                    h.bytes_rcvd,
                    h.packets_sent,
                    h.packets_rcvd,
                    h.flows_as_client,
                    h.flows_as_server,
                    h.active_flows_as_client,
                    h.active_flows_as_server,
                ],
            )
        })
        .collect()
}

/// GET `url` from that replica alone: with the hop header, a replica answers from its own
/// shards (no forwarding, no gathering; tests/shard_api.rs covers the cluster-wide API).
async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http
        .get(url)
        .header(netwarden_engine::api::cluster::HOP_HEADER, "shard-test")
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Every item of a paged list.
async fn all_items(http: &reqwest::Client, base: &str, path: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = get(
            http,
            &format!("{base}{path}{sep}limit=1000&offset={}", out.len()),
        )
        .await?;
        let items = page["items"].as_array()?.clone();
        let total = page["total"].as_u64()? as usize;
        out.extend(items);
        if out.len() >= total {
            return Some(out);
        }
    }
}

/// The host rows of every replica, merged; `None` when a host shows on two replicas.
async fn merged_rows(http: &reqwest::Client, replicas: &[&Replica]) -> Option<Rows> {
    let mut rows = Rows::new();
    for r in replicas {
        for h in all_items(http, &r.base, "/api/v2/hosts").await? {
            let n = |k: &str| h[k].as_u64().unwrap_or(0);
            let key = (h["ip"].as_str()?.to_owned(), n("vlan"));
            let row = [
                n("bytes_sent"),
                n("bytes_rcvd"),
                n("packets_sent"),
                n("packets_rcvd"),
                n("flows_as_client"),
                n("flows_as_server"),
                n("active_flows_as_client"),
                n("active_flows_as_server"),
            ];
            if rows.insert(key, row).is_some() {
                return None;
            }
        }
    }
    Some(rows)
}

/// Alert keys of every replica, merged (the idempotent key: a replay raises none twice).
async fn merged_alert_keys(http: &reqwest::Client, replicas: &[&Replica]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for r in replicas {
        for a in all_items(http, &r.base, "/api/v2/alerts")
            .await
            .unwrap_or_default()
        {
            if let Some(k) = a["key"].as_str() {
                keys.insert(k.to_owned());
            }
        }
    }
    keys
}

/// Host → (alert types behind its score, total score).
type Scores = BTreeMap<String, (BTreeSet<String>, u64)>;

/// Every host's score, asked of the replica that holds it.
async fn merged_scores(http: &reqwest::Client, replicas: &[&Replica]) -> Scores {
    let mut out = BTreeMap::new();
    for r in replicas {
        for h in all_items(http, &r.base, "/api/v2/hosts")
            .await
            .unwrap_or_default()
        {
            let ip = h["ip"].as_str().unwrap().to_owned();
            let score = get(http, &format!("{}/api/v2/hosts/{ip}/score", r.base))
                .await
                .unwrap_or(Value::Null);
            let types: BTreeSet<String> = score["contributions"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|x| x["alert_type"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let total = score["score"]["total"].as_u64().unwrap_or(0);
            out.insert(ip, (types, total));
        }
    }
    out
}

async fn leases(kv: &jetstream::kv::Store) -> Vec<Lease> {
    let Ok(keys) = kv.keys().await else {
        return Vec::new();
    };
    let keys: Vec<String> = keys.try_collect().await.unwrap_or_default();
    let mut out = Vec::new();
    for k in keys {
        if let Ok(Some(v)) = kv.get(&k).await
            && let Ok(l) = serde_json::from_slice::<Lease>(&v)
        {
            out.push(l);
        }
    }
    out
}

/// Whether exactly `names` hold leases, each sees them all, and their shards partition `0..S`.
async fn settled(kv: &jetstream::kv::Store, names: &[&str]) -> bool {
    let live = leases(kv).await;
    let mut seen: Vec<&str> = live.iter().map(|l| l.replica.as_str()).collect();
    seen.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    if seen != want || live.iter().any(|l| l.members != names.len()) {
        return false;
    }
    let owned: Vec<u32> = live.iter().flat_map(|l| l.owned.iter().copied()).collect();
    let set: BTreeSet<u32> = owned.iter().copied().collect();
    owned.len() == SHARDS as usize && set.len() == SHARDS as usize
}

async fn members_kv(url: &str) -> jetstream::kv::Store {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(kv) = js.get_key_value("nw-members").await {
            return kv;
        }
        assert!(Instant::now() < deadline, "nw-members never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn publisher(url: &str) -> (NatsBus, JetStreamBus) {
    let nats = NatsBus::connect(NatsOptions {
        wait_for_connection: true,
        ..NatsOptions::new(url, "shard-test")
    })
    .await
    .unwrap();
    ensure_flows_stream(nats.client(), FlowStreamLimits::default())
        .await
        .unwrap();
    let js = JetStreamBus::new(nats.clone(), JetStreamOptions::default());
    (nats, js)
}

async fn publish_all(js: &JetStreamBus, batches: &[(String, Bytes)]) {
    for (subject, payload) in batches {
        js.publish(subject.clone(), payload.clone()).await.unwrap();
    }
    js.flush().await.unwrap();
    assert_eq!(JetStreamCounters::get(&js.counters().failed), 0);
}

/// Runs the corpus through `r` replicas; returns (rows, alert keys, scores).
async fn run_cluster(r: usize) -> (Rows, BTreeSet<String>, Scores) {
    let nats = NatsServer::start();
    let names: Vec<String> = (0..r).map(|i| format!("engine-{i}")).collect();
    let replicas: Vec<Replica> = names
        .iter()
        .map(|n| Replica::start(&nats.url(), n, None))
        .collect();
    let refs: Vec<&Replica> = replicas.iter().collect();
    let kv = members_kv(&nats.url()).await;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_until(
        "the shard table to settle",
        Duration::from_secs(60),
        async || settled(&kv, &name_refs).await,
    )
    .await;

    let (nats_bus, js) = publisher(&nats.url()).await;
    let mut dlq = nats_bus.client().subscribe("nw.dlq").await.unwrap();
    let records = corpus(1500);
    let expected = truth(&records);
    let all = batches(&records);
    let (first, rest) = all.split_at(all.len() / 2);
    publish_all(&js, first).await;
    // A corrupt batch in the middle: skipped, counted, copied to nw.dlq, never a crash.
    js.publish(
        flows_subject(3),
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0x0f]),
    )
    .await
    .unwrap();
    publish_all(&js, rest).await;

    let http = reqwest::Client::new();
    wait_until(
        "every flow in the host totals",
        Duration::from_secs(90),
        async || merged_rows(&http, &refs).await.as_ref() == Some(&expected),
    )
    .await;
    let dead = tokio::time::timeout(Duration::from_secs(10), dlq.next())
        .await
        .expect("the corrupt batch reaches nw.dlq")
        .unwrap();
    assert_eq!(
        dead.headers
            .as_ref()
            .and_then(|h| h.get("Nw-Subject"))
            .map(|v| v.as_str().to_owned()),
        Some(flows_subject(3))
    );
    assert_eq!(dead.payload.as_ref(), &[0x0a, 0xff, 0xff, 0xff, 0x0f]);
    let mut dead_letters = 0;
    for rep in &refs {
        let body = http
            .get(format!("{}/metrics", rep.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        dead_letters += body
            .lines()
            .find(|l| l.starts_with("netwarden_engine_shard_dead_letters_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(dead_letters, 1, "the corrupt batch counted once");
    // Alerts follow the flows: wait until the alert set stops changing.
    let mut keys = merged_alert_keys(&http, &refs).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = merged_alert_keys(&http, &refs).await;
        if again == keys {
            break;
        }
        keys = again;
    }
    let scores = merged_scores(&http, &refs).await;
    let rows = merged_rows(&http, &refs).await.unwrap_or_default();
    drop(refs);
    let mut replicas = replicas;
    for rep in &mut replicas {
        assert!(rep.alive(), "{} died", rep.name);
    }
    (rows, keys, scores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_and_three_replicas_agree() {
    let (rows1, alerts1, scores1) = run_cluster(1).await;
    let (rows3, alerts3, scores3) = run_cluster(3).await;
    assert!(rows1.len() > 100, "{} hosts", rows1.len());
    assert_eq!(rows1, rows3);
    assert!(!alerts1.is_empty(), "the corpus raises alerts");
    assert_eq!(alerts1, alerts3);
    assert_eq!(scores1.len(), rows1.len());
    assert!(scores1.values().any(|s| s.1 > 0), "{scores1:?}");
    // The same alerts behind every host's score; the totals decay with each replica's clock
    // (the latest flow time it applied, which differs by up to the corpus' 1.5 s of flow
    // time between replicas), so they agree within 2 %.
    for (ip, (types, total)) in &scores1 {
        let (types3, total3) = &scores3[ip];
        assert_eq!(types, types3, "{ip}");
        assert!(
            total.abs_diff(*total3) <= (total / 50).max(1),
            "{ip}: {total} vs {total3}"
        );
    }
    println!(
        "R=1 and R=3: {} hosts, {} alert keys, equal totals and scores",
        rows1.len(),
        alerts1.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_replica_loses_no_flow() {
    let nats = NatsServer::start();
    let names = ["engine-a", "engine-b", "engine-c"];
    let mut replicas: Vec<Replica> = names
        .iter()
        .map(|n| Replica::start(&nats.url(), n, None))
        .collect();
    let kv = members_kv(&nats.url()).await;
    wait_until(
        "the shard table to settle",
        Duration::from_secs(60),
        async || settled(&kv, &names).await,
    )
    .await;
    let (_nats_bus, js) = publisher(&nats.url()).await;
    let records = corpus(3000);
    let expected = truth(&records);
    let all = batches(&records);
    let (first, rest) = all.split_at(all.len() / 3);
    publish_all(&js, first).await;
    // The victim has applied some of its shards' batches and snapshotted some of them.
    let http = reqwest::Client::new();
    let victim_base = replicas[1].base.clone();
    wait_until(
        "the victim to hold hosts",
        Duration::from_secs(30),
        async || {
            all_items(&http, &victim_base, "/api/v2/hosts")
                .await
                .is_some_and(|h| !h.is_empty())
        },
    )
    .await;
    // The rest is published while the victim dies.
    let js2 = js.clone();
    let rest = rest.to_vec();
    let replay = tokio::spawn(async move {
        for (i, (subject, payload)) in rest.iter().enumerate() {
            js2.publish(subject.clone(), payload.clone()).await.unwrap();
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        js2.flush().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    replicas[1].kill9();
    let killed = Instant::now();
    let survivors = ["engine-a", "engine-c"];
    wait_until(
        "the survivors to own every shard",
        Duration::from_secs(30),
        async || settled(&kv, &survivors).await,
    )
    .await;
    let takeover = killed.elapsed();
    println!(
        "takeover after kill -9: {:.2} s (lease TTL {TTL} s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    replay.await.unwrap();
    assert_eq!(JetStreamCounters::get(&js.counters().failed), 0);
    let refs: Vec<&Replica> = vec![&replicas[0], &replicas[2]];
    wait_until(
        "every flow counted once",
        Duration::from_secs(90),
        async || merged_rows(&http, &refs).await.as_ref() == Some(&expected),
    )
    .await;
    // And it stays so (nothing applied twice later).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(merged_rows(&http, &refs).await.as_ref(), Some(&expected));
    assert!(replicas[0].alive() && replicas[2].alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_replay_loses_nothing() {
    let nats = NatsServer::start();
    let url = nats.url();
    let names = ["engine-x", "engine-y"];
    let mut replicas: Vec<Replica> = names
        .iter()
        .map(|n| Replica::start(&url, n, None))
        .collect();
    let kv = members_kv(&url).await;
    wait_until(
        "the shard table to settle",
        Duration::from_secs(60),
        async || settled(&kv, &names).await,
    )
    .await;
    let (_nats_bus, js) = publisher(&url).await;
    let records = corpus(2000);
    let expected = truth(&records);
    let all = batches(&records);
    let (first, rest) = all.split_at(all.len() / 2);
    publish_all(&js, first).await;
    // Kill NATS (as kill -9) while the replicas consume, bring it back on the same port and
    // store, publish the rest.
    let (port, store) = nats.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _nats = NatsServer::start_with(port, store);
    publish_all(&js, rest).await;
    let http = reqwest::Client::new();
    let refs: Vec<&Replica> = replicas.iter().collect();
    wait_until(
        "every flow counted once after the restart",
        Duration::from_secs(120),
        async || merged_rows(&http, &refs).await.as_ref() == Some(&expected),
    )
    .await;
    for r in &mut replicas {
        assert!(r.alive(), "{} died", r.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_with_nats_down_bounds_buffers_and_counts_drops() {
    let nats = NatsServer::start();
    let url = nats.url();
    let bus = NatsBus::connect(NatsOptions {
        wait_for_connection: true,
        client_capacity: 64,
        ..NatsOptions::new(url.clone(), "buffer-test")
    })
    .await
    .unwrap();
    ensure_flows_stream(bus.client(), FlowStreamLimits::default())
        .await
        .unwrap();
    let js = JetStreamBus::new(
        bus.clone(),
        JetStreamOptions {
            max_in_flight: 8,
            ack_timeout: Duration::from_millis(300),
            retries: 2,
        },
    );
    let payload = Bytes::from_static(b"");
    for _ in 0..10 {
        js.publish(flows_subject(1), payload.clone()).await.unwrap();
    }
    js.flush().await.unwrap();
    assert_eq!(JetStreamCounters::get(&js.counters().acked), 10);

    let (port, store) = nats.kill();
    // NATS is down: publishes beyond the in-flight bound wait; the caller's timeout drops them.
    let mut dropped = 0;
    for _ in 0..40 {
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            js.publish(flows_subject(1), payload.clone()),
        )
        .await;
        if !matches!(r, Ok(Ok(()))) {
            dropped += 1;
        }
        assert!(js.in_flight() <= 8);
    }
    assert!(dropped > 0, "a full in-flight window makes the caller drop");
    // With no server, in-flight publishes exhaust their retries and count as failed.
    wait_until(
        "in-flight publishes to give up",
        Duration::from_secs(20),
        async || js.in_flight() == 0,
    )
    .await;
    let failed = JetStreamCounters::get(&js.counters().failed);
    assert_eq!(failed + dropped, 40, "every lost batch is counted once");

    let _nats = NatsServer::start_with(port, store);
    wait_until("reconnection", Duration::from_secs(20), async || {
        netwarden_api::bus::Bus::is_connected(&bus)
    })
    .await;
    for _ in 0..5 {
        js.publish(flows_subject(1), payload.clone()).await.unwrap();
    }
    js.flush().await.unwrap();
    let acked = JetStreamCounters::get(&js.counters().acked);
    assert_eq!(acked, 15);
    let client = async_nats::connect(&url).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream(FLOWS_STREAM)
        .await
        .unwrap();
    let stored = stream.info().await.unwrap().state.messages;
    // Everything acknowledged is stored, nothing twice (resends carry the same message id);
    // publishes given up on may still have reached the stream from the client's reconnect
    // buffer, which is why `failed` is an upper bound of what was lost.
    let sent = JetStreamCounters::get(&js.counters().sent);
    assert!(
        acked <= stored && stored <= sent,
        "acked {acked} stored {stored} sent {sent}"
    );
    println!(
        "outage: {dropped} dropped by the caller, {failed} given up, {stored} of {sent} stored"
    );
}
