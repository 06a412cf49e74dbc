//! The REST API across replicas (docs/deploy.md "API across replicas"), over a real
//! nats-server 2.15 with real `netwarden-engine run` replicas as processes:
//! * R = 3: every replica gives the same host list (gathered), the same host details
//!   (forwarded to the owner), the same alerts and alert summary (indexed from `NW_ALERTS`),
//!   and these equal what one replica alone gives;
//! * `kill -9` of a host's owner: until a survivor owns the shard the host answers 503 with
//!   `Retry-After`, then it answers from the new owner with the same totals;
//! * a forwarded request carries the caller's token and the owner checks it again;
//! * with `--data`, a restarted replica resumes indexing `NW_ALERTS` after the sequence it
//!   persisted: the same rows, ids and counts, nothing replayed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::TryStreamExt;
use netwarden_api::bus::jetstream::{
    FlowStreamLimits, JetStreamBus, JetStreamCounters, JetStreamOptions, ensure_flows_stream,
};
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{NatsBus, Publisher};
use netwarden_api::flow::FlowRecord;
use netwarden_api::names::shard_of;
use netwarden_engine::api::cluster::{HOP_HEADER, SERVED_BY_HEADER};
use netwarden_engine::shard::members::Lease;
use netwarden_engine::state::{State, StateConfig};
use netwarden_testkit::NatsServer;
use serde_json::Value;

use common::shard::{Replica, SHARDS, batches, corpus};

/// ip → (bytes sent, rcvd, packets sent, rcvd, flows as client, as server).
type Rows = BTreeMap<String, [u64; 6]>;

fn row_of(h: &Value) -> [u64; 6] {
    let n = |k: &str| h[k].as_u64().unwrap_or(u64::MAX);
    [
        n("bytes_sent"),
        n("bytes_rcvd"),
        n("packets_sent"),
        n("packets_rcvd"),
        n("flows_as_client"),
        n("flows_as_server"),
    ]
}

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
                h.key.ip.to_string(),
                [
                    h.bytes_sent,
                    h.bytes_rcvd,
                    h.packets_sent,
                    h.packets_rcvd,
                    h.flows_as_client,
                    h.flows_as_server,
                ],
            )
        })
        .collect()
}

/// (status, served-by header, retry-after header, content type, body).
type Answer = (u16, Option<String>, Option<String>, String, Value);

async fn call(http: &reqwest::Client, url: &str, token: Option<&str>) -> Option<Answer> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.ok()?;
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let served = h(SERVED_BY_HEADER);
    let retry = h("retry-after");
    let ct = h("content-type").unwrap_or_default();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    Some((status, served, retry, ct, body))
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    match call(http, url, None).await? {
        (200, _, _, _, body) => Some(body),
        _ => None,
    }
}

/// Every item of a paged list asked of one replica (gathered across the cluster by it).
async fn all_items(http: &reqwest::Client, base: &str, path: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = get(
            http,
            &format!("{base}{path}{sep}limit=1000&offset={}", out.len()),
        )
        .await?;
        if page.get("unreachable").is_some() {
            return None;
        }
        let items = page["items"].as_array()?.clone();
        let total = page["total"].as_u64()? as usize;
        let n = items.len();
        out.extend(items);
        if out.len() >= total || n == 0 {
            return Some(out);
        }
    }
}

/// The host list of one replica as rows (None if a host is listed twice or a part is missing).
async fn rows(http: &reqwest::Client, base: &str) -> Option<Rows> {
    let items = all_items(http, base, "/api/v2/hosts").await?;
    let mut out = Rows::new();
    for h in &items {
        if out
            .insert(h["ip"].as_str()?.to_owned(), row_of(h))
            .is_some()
        {
            return None;
        }
    }
    Some(out)
}

/// The alerts of one replica, without the replica-local row ids, by key.
async fn alerts(http: &reqwest::Client, base: &str) -> Option<Vec<Value>> {
    let mut items = all_items(http, base, "/api/v2/alerts").await?;
    for a in &mut items {
        let o = a.as_object_mut()?;
        for local in ["id", "acknowledged", "count"] {
            o.remove(local);
        }
    }
    items.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    Some(items)
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
    out.sort_by(|a, b| a.replica.cmp(&b.replica));
    out
}

async fn settled(kv: &jetstream::kv::Store, names: &[&str]) -> bool {
    let live = leases(kv).await;
    let seen: Vec<&str> = live.iter().map(|l| l.replica.as_str()).collect();
    let mut want = names.to_vec();
    want.sort_unstable();
    if seen != want || live.iter().any(|l| l.members != names.len()) {
        return false;
    }
    let mut owned: Vec<u32> = live.iter().flat_map(|l| l.owned.iter().copied()).collect();
    owned.sort_unstable();
    owned == (0..SHARDS).collect::<Vec<_>>()
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

/// Publishes `records` into `NW_FLOWS` as a sensor would.
async fn publish(url: &str, records: &[FlowRecord]) {
    let nats = NatsBus::connect(NatsOptions {
        wait_for_connection: true,
        ..NatsOptions::new(url, "shard-api-test")
    })
    .await
    .unwrap();
    ensure_flows_stream(nats.client(), FlowStreamLimits::default())
        .await
        .unwrap();
    let js = JetStreamBus::new(nats.clone(), JetStreamOptions::default());
    for (subject, payload) in batches(records) {
        js.publish(subject, payload).await.unwrap();
    }
    js.flush().await.unwrap();
    assert_eq!(JetStreamCounters::get(&js.counters().failed), 0);
}

/// Starts `names` on a fresh nats-server and waits until they share the shards.
async fn cluster(
    nats: &NatsServer,
    names: &[&str],
    tokens: &[Option<&Path>],
) -> (Vec<Replica>, jetstream::kv::Store) {
    let replicas: Vec<Replica> = names
        .iter()
        .zip(tokens)
        .map(|(n, t)| Replica::start(&nats.url(), n, *t))
        .collect();
    let kv = members_kv(&nats.url()).await;
    wait_until(
        "the shard table to settle",
        Duration::from_secs(60),
        async || settled(&kv, names).await,
    )
    .await;
    (replicas, kv)
}

/// What a client sees of the cluster through one replica.
#[derive(Debug, PartialEq)]
struct View {
    hosts: Rows,
    points: Vec<Value>,
    interfaces: Vec<Value>,
    details: Vec<Value>,
    alerts: Vec<Value>,
    summary: Value,
}

/// Hosts whose detail is compared (spread over the shards).
const DETAIL_IPS: [&str; 6] = [
    "10.1.0.1",
    "10.1.1.2",
    "10.1.3.28",
    "172.16.0.1",
    "172.16.1.2",
    "172.16.2.41",
];

async fn view(http: &reqwest::Client, base: &str) -> (View, usize) {
    let mut details = Vec::new();
    let mut forwarded = 0;
    for ip in DETAIL_IPS {
        let (status, served, _, _, body) = call(http, &format!("{base}/api/v2/hosts/{ip}"), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{base} host {ip}: {body}");
        forwarded += usize::from(served.is_some());
        let score = get(http, &format!("{base}/api/v2/hosts/{ip}/score"))
            .await
            .expect("score");
        details.push(
            serde_json::json!({"detail": body, "score_types": score["contributions"]
            .as_array().map(|c| c.iter().map(|x| x["alert_type"].clone()).collect::<Vec<_>>())}),
        );
    }
    let v = View {
        hosts: rows(http, base).await.expect("host list"),
        points: all_items(http, base, "/api/v2/observation-points")
            .await
            .expect("observation points"),
        interfaces: all_items(http, base, "/api/v2/interfaces?sort=-flows")
            .await
            .expect("interfaces"),
        details,
        alerts: alerts(http, base).await.expect("alerts"),
        summary: get(http, &format!("{base}/api/v2/alerts/summary"))
            .await
            .expect("summary"),
    };
    (v, forwarded)
}

/// Runs the corpus through `names`; the view every replica gives (asserted identical).
async fn run(names: &[&str]) -> View {
    let nats = NatsServer::start();
    let (mut replicas, _kv) = cluster(&nats, names, &vec![None; names.len()]).await;
    let records = corpus(1500);
    let expected = truth(&records);
    publish(&nats.url(), &records).await;
    let http = reqwest::Client::new();
    for r in &replicas {
        wait_until(
            &format!("every flow in {}'s host list", r.name),
            Duration::from_secs(90),
            async || rows(&http, &r.base).await.as_ref() == Some(&expected),
        )
        .await;
    }
    // Alerts follow the flows: wait until every replica shows the same ones, twice in a row.
    let mut last: Option<Vec<Vec<Value>>> = None;
    wait_until(
        "the alerts to settle on every replica",
        Duration::from_secs(60),
        async || {
            let mut now = Vec::new();
            for r in &replicas {
                now.push(alerts(&http, &r.base).await.unwrap_or_default());
            }
            let same = now.windows(2).all(|w| w[0] == w[1]) && !now[0].is_empty();
            let stable = last.as_ref() == Some(&now);
            last = Some(now);
            same && stable
        },
    )
    .await;
    let mut views = Vec::new();
    let mut forwarded = 0;
    for r in &replicas {
        let (v, f) = view(&http, &r.base).await;
        forwarded += f;
        views.push(v);
    }
    for (r, v) in replicas.iter().zip(&views).skip(1) {
        assert_eq!(v, &views[0], "{} and {} disagree", r.name, replicas[0].name);
    }
    if names.len() > 1 {
        // Each replica owns about a third of the hosts: most details came from another one.
        assert!(forwarded > 0, "no detail was forwarded");
    }
    for r in &mut replicas {
        assert!(r.alive(), "{} died", r.name);
    }
    views.swap_remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_answers_for_the_cluster() {
    let one = run(&["solo"]).await;
    let three = run(&["engine-0", "engine-1", "engine-2"]).await;
    assert!(one.hosts.len() > 100, "{} hosts", one.hosts.len());
    assert!(!one.alerts.is_empty(), "the corpus raises alerts");
    assert_eq!(one.hosts, three.hosts);
    assert_eq!(one.points, three.points);
    assert_eq!(one.interfaces, three.interfaces);
    assert_eq!(one.interfaces[0]["flows"], one.points[0]["flows"]);
    assert_eq!(one.points.len(), 1, "{:?}", one.points);
    assert_eq!(
        one.points[0]["hosts"].as_u64(),
        Some(one.hosts.len() as u64)
    );
    assert_eq!(one.alerts, three.alerts);
    assert_eq!(one.summary, three.summary);
    assert_eq!(one.details, three.details);
    println!(
        "R=1 and R=3: {} hosts, {} alerts, {} details identical on every replica",
        one.hosts.len(),
        one.alerts.len(),
        one.details.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_answers_from_its_new_owner_after_kill9() {
    let nats = NatsServer::start();
    let names = ["engine-a", "engine-b", "engine-c"];
    let (mut replicas, kv) = cluster(&nats, &names, &[None, None, None]).await;
    let records = corpus(600);
    let expected = truth(&records);
    publish(&nats.url(), &records).await;
    let http = reqwest::Client::new();
    let asker = replicas[0].base.clone();
    wait_until(
        "every flow in the list",
        Duration::from_secs(90),
        async || rows(&http, &asker).await.as_ref() == Some(&expected),
    )
    .await;
    // A host with a score owned by engine-b, asked of engine-a.
    let table = leases(&kv).await;
    let b = table.iter().find(|l| l.replica == "engine-b").unwrap();
    let mut pick = None;
    for ip in expected
        .keys()
        .filter(|ip| b.owned.contains(&shard_of(ip.parse().unwrap(), SHARDS)))
    {
        let score = get(&http, &format!("{asker}/api/v2/hosts/{ip}/score")).await;
        if let Some(score) = score.filter(|s| s["accumulated"].as_u64() > Some(0)) {
            pick = Some((ip.clone(), score));
            break;
        }
    }
    let (ip, score_before) = pick.expect("engine-b owns a host with a score");
    let url = format!("{asker}/api/v2/hosts/{ip}");
    let (status, served, _, _, before) = call(&http, &url, None).await.unwrap();
    assert_eq!((status, served.as_deref()), (200, Some("engine-b")));
    assert_eq!(row_of(&before), expected[&ip]);
    // Every flow is applied; the next snapshot (every 1 s) covers them and the score.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    replicas[1].kill9();
    let killed = Instant::now();
    let mut unavailable = 0;
    let after = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the host never answered again"
        );
        let (status, served, retry, ct, body) = call(&http, &url, None).await.unwrap();
        match status {
            200 if served.as_deref() != Some("engine-b") => break (served, body),
            503 => {
                unavailable += 1;
                assert!(retry.is_some(), "503 without Retry-After");
                assert_eq!(ct, "application/problem+json");
                assert_eq!(body["status"], 503);
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (served, body) = after;
    assert_eq!(row_of(&body), expected[&ip], "same totals on the new owner");
    assert_eq!(body["ip"], before["ip"]);
    // The score moved with the shard (it does not restart at 0 on the new owner).
    let score_after = get(&http, &format!("{asker}/api/v2/hosts/{ip}/score"))
        .await
        .expect("score on the new owner");
    let keys = |s: &Value| {
        let mut k: Vec<String> = s["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{}/{}", c["alert_key"], c["as_client"]))
            .collect();
        k.sort();
        k
    };
    assert_eq!(score_after["accumulated"], score_before["accumulated"]);
    assert_eq!(score_after["settled"], score_before["settled"]);
    assert_eq!(keys(&score_after), keys(&score_before));
    println!(
        "{ip}: answered by {} {:.1} s after kill -9 of its owner ({unavailable} answers 503 meanwhile)",
        served.as_deref().unwrap_or("engine-a itself"),
        killed.elapsed().as_secs_f64()
    );
    // The whole list again, from the survivors only.
    wait_until(
        "the list without engine-b",
        Duration::from_secs(60),
        async || rows(&http, &asker).await.as_ref() == Some(&expected),
    )
    .await;
    assert!(replicas[0].alive() && replicas[2].alive());
}

/// `netwarden-engine token create` into `file`; the token.
fn make_token(file: &Path, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
        .args(["token", "--tokens"])
        .arg(file)
        .args(["create", "--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_checks_the_token_of_a_forwarded_request() {
    // engine-a knows token A; engine-b knows tokens A and B.
    let dir = tempfile::tempdir().unwrap();
    let file_a = dir.path().join("a.json");
    let file_b = dir.path().join("b.json");
    let token_a = make_token(&file_a, "a");
    std::fs::copy(&file_a, &file_b).unwrap();
    let token_b = make_token(&file_b, "b");
    let nats = NatsServer::start();
    let names = ["engine-a", "engine-b"];
    let (replicas, kv) = cluster(&nats, &names, &[Some(&file_a), Some(&file_b)]).await;
    let records = corpus(200);
    let expected = truth(&records);
    publish(&nats.url(), &records).await;
    let table = leases(&kv).await;
    let owned_by = |who: &str| {
        let l = table.iter().find(|l| l.replica == who).unwrap();
        expected
            .keys()
            .find(|ip| l.owned.contains(&shard_of(ip.parse().unwrap(), SHARDS)))
            .unwrap()
            .clone()
    };
    let (on_a, on_b) = (owned_by("engine-a"), owned_by("engine-b"));
    let base_a = replicas[0].base.clone();
    let base_b = replicas[1].base.clone();
    let http = reqwest::Client::new();
    // Token A, asked of engine-a, host of engine-b: forwarded with the token, accepted there.
    let url = format!("{base_a}/api/v2/hosts/{on_b}");
    wait_until(
        "the host on engine-b",
        Duration::from_secs(60),
        async || {
            call(&http, &url, Some(&token_a))
                .await
                .is_some_and(|a| a.0 == 200 && a.1.as_deref() == Some("engine-b"))
        },
    )
    .await;
    // Token B, asked of engine-b (which accepts it), host of engine-a: engine-a refuses it.
    let url = format!("{base_b}/api/v2/hosts/{on_a}");
    let (status, served, _, ct, body) = call(&http, &url, Some(&token_b)).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(served.as_deref(), Some("engine-a"), "refused by the owner");
    assert_eq!(ct, "application/problem+json");
    // A bad token never leaves the first replica; none at all neither.
    let (status, served, ..) = call(&http, &url, Some("nw_bogus")).await.unwrap();
    assert_eq!((status, served), (401, None));
    let (status, served, ..) = call(&http, &url, None).await.unwrap();
    assert_eq!((status, served), (401, None));
    // The hop header does not get around the token check.
    let resp = http
        .get(format!("{base_a}/api/v2/hosts/{on_a}"))
        .header(HOP_HEADER, "engine-b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // With a token both know, the gathered list holds every host.
    let url = format!("{base_b}/api/v2/hosts?limit=1000");
    wait_until(
        "every host in the list",
        Duration::from_secs(60),
        async || {
            call(&http, &url, Some(&token_a))
                .await
                .is_some_and(|p| p.0 == 200 && p.4["total"].as_u64() == Some(expected.len() as u64))
        },
    )
    .await;
}

/// A counter of `/metrics`.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let body = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_indexing_resumes_after_a_restart_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start();
    let mut solo = Replica::start_with(&nats.url(), "solo", None, Some(dir.path()));
    let kv = members_kv(&nats.url()).await;
    wait_until(
        "solo to own every shard",
        Duration::from_secs(60),
        async || settled(&kv, &["solo"]).await,
    )
    .await;
    publish(&nats.url(), &corpus(300)).await;
    let http = reqwest::Client::new();
    let mut last = None;
    wait_until(
        "the alerts to settle",
        Duration::from_secs(60),
        async || {
            let now = all_items(&http, &solo.base, "/api/v2/alerts").await;
            let done = now.as_ref().is_some_and(|a| !a.is_empty()) && now == last;
            last = now;
            done
        },
    )
    .await;
    let before = last.unwrap();
    // The indexed sequence reaches the file once the store committed it.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream("NW_ALERTS")
        .await
        .unwrap();
    let in_stream = stream.info().await.unwrap().state.last_sequence;
    assert!(in_stream >= before.len() as u64, "{in_stream} messages");
    let file = dir.path().join("alerts-index.json");
    wait_until("alerts-index.json", Duration::from_secs(30), async || {
        std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["stream_seq"].as_u64() == Some(in_stream))
    })
    .await;
    solo.stop();
    // Restarted on the same store: it resumes after what it indexed (nothing replayed,
    // nothing counted twice).
    let solo = Replica::start_with(&nats.url(), "solo", None, Some(dir.path()));
    wait_until("solo again", Duration::from_secs(60), async || {
        metric(&http, &solo.base, "netwarden_engine_shard_owned").await == Some(u64::from(SHARDS))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = all_items(&http, &solo.base, "/api/v2/alerts")
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "the same rows, ids and counts after the restart"
    );
    let indexed = metric(
        &http,
        &solo.base,
        "netwarden_engine_shard_alerts_indexed_total",
    )
    .await;
    let known = metric(
        &http,
        &solo.base,
        "netwarden_engine_shard_alerts_known_total",
    )
    .await;
    assert_eq!((indexed, known), (Some(0), Some(0)), "nothing replayed");
}

/// What forwarding and gathering cost (printed, not asserted): `cargo test --release -p
/// netwarden-engine --test shard_api -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn forwarding_and_gathering_cost() {
    let nats = NatsServer::start();
    let names = ["engine-0", "engine-1", "engine-2"];
    let (replicas, kv) = cluster(&nats, &names, &[None, None, None]).await;
    let records = corpus(1500);
    let expected = truth(&records);
    publish(&nats.url(), &records).await;
    let http = reqwest::Client::new();
    let base = replicas[0].base.clone();
    wait_until("every flow", Duration::from_secs(90), async || {
        rows(&http, &base).await.as_ref() == Some(&expected)
    })
    .await;
    let table = leases(&kv).await;
    let mine = &table
        .iter()
        .find(|l| l.replica == "engine-0")
        .unwrap()
        .owned;
    let (local, remote): (Vec<&String>, Vec<&String>) = expected
        .keys()
        .partition(|ip| mine.contains(&shard_of(ip.parse().unwrap(), SHARDS)));
    let n = 300;
    for (what, ips) in [("local", &local), ("forwarded", &remote)] {
        let started = Instant::now();
        for i in 0..n {
            let ip = ips[i % ips.len()];
            get(&http, &format!("{base}/api/v2/hosts/{ip}"))
                .await
                .unwrap();
        }
        println!(
            "GET /api/v2/hosts/{{ip}} {what}: {:.2} ms each ({n} requests)",
            started.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
    for (what, header) in [
        ("one replica (hop header)", true),
        ("gathered from 3", false),
    ] {
        let started = Instant::now();
        for _ in 0..50 {
            let mut req = http.get(format!("{base}/api/v2/hosts?limit=100"));
            if header {
                req = req.header(HOP_HEADER, "bench");
            }
            assert!(req.send().await.unwrap().status().is_success());
        }
        println!(
            "GET /api/v2/hosts?limit=100 {what}: {:.2} ms each ({} hosts in all)",
            started.elapsed().as_secs_f64() * 1000.0 / 50.0,
            expected.len()
        );
    }
}
