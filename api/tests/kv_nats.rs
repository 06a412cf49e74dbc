//! The config watcher against a real nats-server: what every sensor and engine runs to
//! hot-reload `nw-config` (DESIGN.md section 6).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use netwarden_api::bus::{Kv, NatsKv, watch_config};
use netwarden_api::crd::{StatusReport, config_key, parse_status_key, status_key};
use netwarden_api::names::{CONFIG_BUCKET, STATUS_BUCKET};
use netwarden_testkit::NatsServer;

fn exclusion(name: &str, generation: i64, cidr: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion", "namespace": "payments",
            "name": name, "generation": generation,
            "spec": {"hosts": [{"cidr": cidr}], "alertTypes": ["all"], "scope": "flow"}
        })
        .to_string(),
    )
}

#[tokio::test]
async fn a_watcher_sees_changes_within_a_second_and_survives_garbage() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let kv = NatsKv::open(client.clone(), CONFIG_BUCKET).await.unwrap();
    let key = config_key("AlertExclusion", Some("payments"), "noisy-dga");
    kv.put(&key, exclusion("noisy-dga", 1, "10.0.0.0/8"))
        .await
        .unwrap();

    // A second client, as a sensor or engine would have.
    let consumer = NatsKv::open(
        async_nats::connect(server.url()).await.unwrap(),
        CONFIG_BUCKET,
    )
    .await
    .unwrap();
    let updates = watch_config(&consumer).await.unwrap();
    futures::pin_mut!(updates);
    let (snapshot, _) = tokio::time::timeout(Duration::from_secs(2), updates.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.alert_exclusions[&key].generation, 1);

    let started = Instant::now();
    kv.put(&key, exclusion("noisy-dga", 2, "10.1.0.0/16"))
        .await
        .unwrap();
    let (snapshot, rejected) = tokio::time::timeout(Duration::from_secs(1), updates.next())
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(rejected.is_empty());
    let entry = &snapshot.alert_exclusions[&key];
    assert_eq!(
        (entry.generation, entry.spec.hosts[0].cidr.as_str()),
        (2, "10.1.0.0/16")
    );

    // A malformed entry is reported and skipped; the watcher keeps going.
    let bad = config_key("AlertExclusion", Some("payments"), "bad");
    kv.put(&bad, Bytes::from_static(b"{\"not\": \"an entry\"}"))
        .await
        .unwrap();
    let (snapshot, rejected) = tokio::time::timeout(Duration::from_secs(1), updates.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].key, bad);
    assert_eq!(snapshot.alert_exclusions.len(), 1);

    kv.delete(&key).await.unwrap();
    let (snapshot, _) = tokio::time::timeout(Duration::from_secs(1), updates.next())
        .await
        .unwrap()
        .unwrap();
    assert!(snapshot.alert_exclusions.is_empty());

    // And the consumer reports back, as the operator expects it.
    let status = NatsKv::open(client, STATUS_BUCKET).await.unwrap();
    let report = StatusReport {
        generation: 2,
        applied: false,
        message: Some("interface ens9 does not exist".into()),
    };
    let skey = status_key("AlertExclusion", Some("payments"), "noisy-dga", "engine-0");
    status
        .put(&skey, serde_json::to_vec(&report).unwrap().into())
        .await
        .unwrap();
    let entries = status.entries(&format!("{key}.*")).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(parse_status_key(&entries[0].0).unwrap().1, "engine-0");
}
