//! A flood of CR updates is coalesced: the production controller (kube-rs `Controller` with
//! the operator's debounce) against a scripted list + watch API server receives 100
//! generations of one object in 20 back-to-back watch responses, reconciles it a handful of times (not 100), and
//! ends with the last generation published and in the status.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use http::Method;
use netwarden_api::crd::{AlertExclusion, AlertExclusionSpec, ConfigEntry};
use netwarden_operator::FINALIZER;
use netwarden_operator::controller::{Context, run_kind};
use netwarden_operator::store::Stores;
use netwarden_operator::telemetry::Metrics;
use serde_json::{Value, json};

const PATH: &str = "/apis/netwarden.io/v1alpha1/alertexclusions";
const KEY: &str = "AlertExclusion.payments.noisy";

fn exclusion(generation: i64) -> Value {
    json!({"apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion",
        "metadata": {"name": "noisy", "namespace": "payments", "uid": "u-1",
            "generation": generation, "finalizers": [FINALIZER]},
        "spec": {"hosts": [{"cidr": format!("10.{}.0.0/16", generation % 250), "side": "client"}],
            "alertTypes": ["all"], "reason": format!("edit {generation}")}})
}

async fn published_generation(stores: &Stores) -> Option<i64> {
    let bytes = stores.config.get(KEY).await.unwrap()?;
    let entry: ConfigEntry<AlertExclusionSpec> = serde_json::from_slice(&bytes).unwrap();
    Some(entry.generation)
}

async fn wait_for_generation(stores: &Stores, api: &FakeApi, generation: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while published_generation(stores).await != Some(generation) {
        assert!(
            Instant::now() < deadline,
            "generation {generation} never published; requests: {:#?}",
            api.seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_updates_is_coalesced_into_few_reconciles() {
    let (client, api) = FakeApi::start();
    api.set_list(PATH, "AlertExclusionList", vec![exclusion(1)]);
    let stores = Stores::memory();
    let ctx = Context::new(client, stores.clone());
    let controller = tokio::spawn(run_kind::<AlertExclusion>(ctx.clone()));
    wait_for_generation(&stores, &api, 1).await;
    let reconciles = || {
        ctx.metrics
            .reconciles
            .get_or_create(&Metrics::labels("AlertExclusion"))
            .get()
    };
    let before = reconciles();

    // 20 watch responses of 5 updates each, back to back (the watcher re-watches after each).
    for first in (2..=101).step_by(5) {
        api.watch_events(
            PATH,
            (first..first + 5)
                .map(|g| ("MODIFIED", exclusion(g)))
                .collect(),
        );
    }
    wait_for_generation(&stores, &api, 101).await;
    // Let anything still queued run before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let burst = reconciles() - before;
    assert!(
        (1..=3).contains(&burst),
        "100 updates cost {burst} reconciles"
    );
    let patches = api.requests(
        &Method::PATCH,
        "/apis/netwarden.io/v1alpha1/namespaces/payments/alertexclusions/noisy/status",
    );
    assert!(
        patches.len() as u64 <= before + burst,
        "{} status patches",
        patches.len()
    );
    assert_eq!(
        patches.last().unwrap().body["status"]["observedGeneration"],
        101
    );
    controller.abort();
}
