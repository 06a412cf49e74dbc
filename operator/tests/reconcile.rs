//! Reconcile tests: the production [`reconcile`] against kube-rs's mocked API service
//! (`tower_test::mock`, as kube-rs/controller-rs does), asserting the method, path and body of
//! every request in order, with a REAL nats-server for the `nw-config` / `nw-status` side.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use netwarden_api::crd::{
    AlertExclusion, InterfacePolicy, NotificationEndpoint, StatusReport, config_key, status_key,
};
use netwarden_operator::controller::{Context, reconcile};
use netwarden_operator::store::Stores;
use netwarden_operator::{FINALIZER, Result};
use netwarden_testkit::NatsServer;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock;

type Check = Box<dyn Fn(&Value) + Send>;

/// One request the API server expects, and what it answers.
struct Step {
    method: Method,
    path: String,
    /// Query parameters that must be present (order is not asserted).
    query: Vec<&'static str>,
    check: Check,
    status: StatusCode,
    /// `None`: echo the request body.
    respond: Option<Value>,
}

fn step(
    method: Method,
    path: impl Into<String>,
    check: impl Fn(&Value) + Send + 'static,
    respond: Option<Value>,
) -> Step {
    Step {
        method,
        path: path.into(),
        query: vec![],
        check: Box::new(check),
        status: StatusCode::OK,
        respond,
    }
}

/// Serves `steps` in order, then fails on any further request.
fn api_server(
    mut handle: mock::Handle<Request<Body>, Response<Body>>,
    steps: Vec<Step>,
) -> JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            let (request, send) = handle
                .next_request()
                .await
                .unwrap_or_else(|| panic!("request {i} never came"));
            assert_eq!(
                request.method(),
                step.method,
                "request {i}: {}",
                request.uri()
            );
            assert_eq!(request.uri().path(), step.path, "request {i}");
            let query = request.uri().query().unwrap_or_default().to_string();
            for q in &step.query {
                assert!(
                    query.split('&').any(|p| p == *q),
                    "request {i}: query {query:?} lacks {q}"
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            (step.check)(&body);
            let out = step.respond.unwrap_or_else(|| body.clone());
            bodies.push(body);
            send.send_response(
                Response::builder()
                    .status(step.status)
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap(),
            );
        }
        bodies
    })
}

struct Harness {
    _nats: NatsServer,
    stores: Stores,
    ctx: Arc<Context>,
    handle: Option<mock::Handle<Request<Body>, Response<Body>>>,
}

async fn harness() -> Harness {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let stores = Stores::nats(client).await.unwrap();
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let ctx = Context::new(Client::new(service, "default"), stores.clone());
    Harness {
        _nats: nats,
        stores,
        ctx,
        handle: Some(handle),
    }
}

impl Harness {
    async fn run<K>(
        &mut self,
        obj: K,
        steps: Vec<Step>,
    ) -> (Result<kube::runtime::controller::Action>, Vec<Value>)
    where
        K: netwarden_operator::controller::Reconciled,
    {
        let server = api_server(self.handle.take().unwrap(), steps);
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            reconcile(Arc::new(obj), self.ctx.clone()),
        )
        .await
        .expect("reconcile hangs");
        let bodies = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("steps left")
            .unwrap();
        (result, bodies)
    }
}

const AX: &str = "/apis/netwarden.io/v1alpha1/namespaces/payments/alertexclusions";

fn exclusion(spec: &Value, finalizers: &[&str], deleting: bool) -> AlertExclusion {
    let mut meta = json!({
        "name": "noisy-dga", "namespace": "payments", "uid": "7c1f", "generation": 2,
        "resourceVersion": "100", "finalizers": finalizers,
    });
    if deleting {
        meta["deletionTimestamp"] = json!("2026-11-27T12:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion", "metadata": meta, "spec": spec,
    }))
    .unwrap()
}

fn valid_spec() -> Value {
    json!({"hosts": [{"cidr": "10.20.0.0/16", "side": "client"}], "alertTypes": ["ndpi_suspicious_dga_domain"]})
}

fn condition<'a>(status_patch: &'a Value, type_: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status_patch}"))
}

fn status_step(path: String, check: impl Fn(&Value) + Send + 'static, obj: Value) -> Step {
    let mut s = step(Method::PATCH, path, check, Some(obj));
    s.query = vec!["fieldManager=netwarden-operator", "force=true"];
    s
}

fn event_step(namespace: &str, type_: &'static str, reason: &'static str) -> Step {
    step(
        Method::POST,
        format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
        move |body| {
            assert_eq!(body["type"], type_);
            assert_eq!(body["reason"], reason);
            assert_eq!(body["reportingController"], "netwarden-operator");
        },
        None,
    )
}

#[tokio::test]
async fn a_new_object_gets_the_finalizer_first() {
    let mut h = harness().await;
    let obj = exclusion(&valid_spec(), &[], false);
    let finalized = serde_json::to_value(exclusion(&valid_spec(), &[FINALIZER], false)).unwrap();
    let steps = vec![step(
        Method::PATCH,
        format!("{AX}/noisy-dga"),
        |body| {
            assert_eq!(
                body,
                &json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                ])
            );
        },
        Some(finalized),
    )];
    let (result, _) = h.run(obj, steps).await;
    result.unwrap();
    assert!(
        h.stores
            .config
            .get("AlertExclusion.payments.noisy-dga")
            .await
            .unwrap()
            .is_none(),
        "published only after the finalizer"
    );
}

#[tokio::test]
async fn a_valid_exclusion_is_published_and_ready() {
    let mut h = harness().await;
    let obj = exclusion(&valid_spec(), &[FINALIZER], false);
    let echo = serde_json::to_value(&obj).unwrap();
    let steps = vec![
        status_step(
            format!("{AX}/noisy-dga/status"),
            |body| {
                assert_eq!(body["apiVersion"], "netwarden.io/v1alpha1");
                assert_eq!(body["kind"], "AlertExclusion");
                assert_eq!(body["status"]["observedGeneration"], 2);
                let ready = condition(body, "Ready");
                assert_eq!(
                    (ready["status"].as_str(), ready["reason"].as_str()),
                    (Some("True"), Some("Published"))
                );
                assert_eq!(ready["observedGeneration"], 2);
                assert_eq!(condition(body, "Invalid")["status"], "False");
                assert_eq!(condition(body, "Applied")["reason"], "NoReports");
            },
            echo,
        ),
        event_step("payments", "Normal", "Published"),
    ];
    let (result, _) = h.run(obj, steps).await;
    result.unwrap();
    let key = config_key("AlertExclusion", Some("payments"), "noisy-dga");
    let entry: Value =
        serde_json::from_slice(&h.stores.config.get(&key).await.unwrap().expect("published"))
            .unwrap();
    assert_eq!(entry["generation"], 2);
    assert_eq!(entry["namespace"], "payments");
    assert_eq!(entry["spec"]["hosts"][0]["cidr"], "10.20.0.0/16");
    assert_eq!(
        entry["spec"]["scope"], "both",
        "defaults are explicit in the entry"
    );
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("netwarden_operator_reconciles_total{kind=\"AlertExclusion\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "netwarden_operator_reconcile_duration_seconds_count{kind=\"AlertExclusion\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_exclusion_is_not_published_and_says_why() {
    let mut h = harness().await;
    let spec = json!({"hosts": [{"cidr": "10.0.0.0/33"}], "alertTypes": ["all"]});
    let obj = exclusion(&spec, &[FINALIZER], false);
    let echo = serde_json::to_value(&obj).unwrap();
    let steps = vec![
        status_step(
            format!("{AX}/noisy-dga/status"),
            |body| {
                let ready = condition(body, "Ready");
                assert_eq!(
                    (ready["status"].as_str(), ready["reason"].as_str()),
                    (Some("False"), Some("InvalidSpec"))
                );
                let message = ready["message"].as_str().unwrap();
                assert!(
                    message.contains("spec.hosts[0].cidr") && message.contains("0..=32"),
                    "{message}"
                );
                assert_eq!(condition(body, "Invalid")["status"], "True");
            },
            echo,
        ),
        event_step("payments", "Warning", "InvalidSpec"),
    ];
    let (result, bodies) = h.run(obj, steps).await;
    result.unwrap();
    assert!(
        bodies[1]["note"]
            .as_str()
            .unwrap()
            .contains("spec.hosts[0].cidr")
    );
    assert!(
        h.stores.config.entries(">").await.unwrap().is_empty(),
        "nothing published"
    );
}

#[tokio::test]
async fn deletion_removes_the_entry_its_reports_and_the_finalizer() {
    let mut h = harness().await;
    let key = config_key("AlertExclusion", Some("payments"), "noisy-dga");
    h.stores
        .config
        .put(&key, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let report = serde_json::to_vec(&StatusReport {
        generation: 2,
        applied: true,
        message: None,
    })
    .unwrap();
    h.stores
        .status
        .put(
            &status_key("AlertExclusion", Some("payments"), "noisy-dga", "engine-0"),
            report.into(),
        )
        .await
        .unwrap();
    let obj = exclusion(&valid_spec(), &[FINALIZER], true);
    let after = serde_json::to_value(exclusion(&valid_spec(), &[], true)).unwrap();
    let steps = vec![
        event_step("payments", "Normal", "Unpublished"),
        step(
            Method::PATCH,
            format!("{AX}/noisy-dga"),
            |body| {
                assert_eq!(
                    body,
                    &json!([
                        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
                        {"op": "remove", "path": "/metadata/finalizers/0"},
                    ])
                );
            },
            Some(after),
        ),
    ];
    let (result, _) = h.run(obj, steps).await;
    result.unwrap();
    assert!(
        h.stores.config.get(&key).await.unwrap().is_none(),
        "the nw-config key is gone"
    );
    assert!(
        h.stores.status.entries(">").await.unwrap().is_empty(),
        "its reports are gone"
    );
}

#[tokio::test]
async fn reports_fold_into_applied_on_two_of_three_nodes() {
    let mut h = harness().await;
    let reports = [
        ("node-a", 1, true, None),
        ("node-b.example.internal", 1, true, None),
        ("node-c", 1, false, Some("interface ens9 does not exist")),
    ];
    for (node, generation, applied, message) in reports {
        let report = StatusReport {
            generation,
            applied,
            message: message.map(Into::into),
        };
        let key = status_key("InterfacePolicy", None, "workers", node);
        h.stores
            .status
            .put(&key, serde_json::to_vec(&report).unwrap().into())
            .await
            .unwrap();
    }
    let obj: InterfacePolicy = serde_json::from_value(json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "InterfacePolicy",
        "metadata": {"name": "workers", "uid": "1", "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"interfaces": {"include": ["eth*"], "exclude": ["veth*"]}, "bpfFilter": "not port 4222"},
    }))
    .unwrap();
    let echo = serde_json::to_value(&obj).unwrap();
    let steps = vec![
        status_step(
            "/apis/netwarden.io/v1alpha1/interfacepolicies/workers/status".into(),
            |body| {
                assert_eq!(body["status"]["appliedNodes"], "2/3");
                assert_eq!(body["status"]["appliedCount"], 2);
                assert_eq!(
                    body["status"]["errors"],
                    json!([{"node": "node-c", "message": "interface ens9 does not exist"}])
                );
                let applied = condition(body, "Applied");
                assert_eq!(
                    (applied["status"].as_str(), applied["reason"].as_str()),
                    (Some("False"), Some("PartiallyApplied"))
                );
                assert!(
                    applied["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("applied on 2/3")
                );
            },
            echo,
        ),
        // Cluster-scoped objects get their events in `default`.
        event_step("default", "Normal", "Published"),
        // node-c's failure, announced once.
        step(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            |body| {
                assert_eq!(body["type"], "Warning");
                assert_eq!(body["reason"], "ApplyFailed");
                assert_eq!(
                    body["note"],
                    "generation 1: node-c: interface ens9 does not exist"
                );
            },
            None,
        ),
    ];
    let (result, _) = h.run(obj, steps).await;
    result.unwrap();
    assert!(
        h.stores
            .config
            .get("InterfacePolicy._cluster.workers")
            .await
            .unwrap()
            .is_some()
    );
}

fn endpoint() -> NotificationEndpoint {
    serde_json::from_value(json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "NotificationEndpoint",
        "metadata": {"name": "soc-slack", "namespace": "payments", "uid": "2", "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"type": "slack", "secretKeyRef": {"name": "soc-slack", "key": "webhook-url"},
                 "filters": {"minSeverity": "warning"}, "rateLimit": {"perMinute": 20}},
    }))
    .unwrap()
}

const NE: &str =
    "/apis/netwarden.io/v1alpha1/namespaces/payments/notificationendpoints/soc-slack/status";

#[tokio::test]
async fn a_missing_secret_is_a_condition_with_its_reason() {
    let mut h = harness().await;
    let obj = endpoint();
    let echo = serde_json::to_value(&obj).unwrap();
    let mut not_found = step(
        Method::GET,
        "/api/v1/namespaces/payments/secrets/soc-slack",
        |_| {},
        Some(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": "secrets \"soc-slack\" not found"}),
        ),
    );
    not_found.status = StatusCode::NOT_FOUND;
    let steps = vec![
        not_found,
        status_step(
            NE.into(),
            |body| {
                let ready = condition(body, "Ready");
                assert_eq!(
                    (ready["status"].as_str(), ready["reason"].as_str()),
                    (Some("False"), Some("SecretMissing"))
                );
                assert_eq!(ready["message"], "Secret payments/soc-slack does not exist");
            },
            echo,
        ),
        event_step("payments", "Warning", "SecretMissing"),
    ];
    let (result, _) = h.run(obj, steps).await;
    result.unwrap();
    assert!(h.stores.config.entries(">").await.unwrap().is_empty());
}

#[tokio::test]
async fn secrets_never_reach_kv_status_or_events() {
    const SECRET: &str = "https://hooks.slack.com/services/T0/B0/very-secret-token";
    let mut h = harness().await;
    let obj = endpoint();
    let echo = serde_json::to_value(&obj).unwrap();
    let encoded = {
        // base64 of the secret, as the API server returns `data`.
        use std::fmt::Write as _;
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in SECRET.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    let _ = write!(out, "{}", table[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let steps = vec![
        step(
            Method::GET,
            "/api/v1/namespaces/payments/secrets/soc-slack",
            |_| {},
            Some(
                json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "soc-slack", "namespace": "payments"},
                        "data": {"webhook-url": encoded}}),
            ),
        ),
        status_step(
            NE.into(),
            |body| assert_eq!(condition(body, "Ready")["status"], "True"),
            echo,
        ),
        event_step("payments", "Normal", "Published"),
    ];
    let (result, bodies) = h.run(obj, steps).await;
    result.unwrap();
    let entry = h
        .stores
        .config
        .get("NotificationEndpoint.payments.soc-slack")
        .await
        .unwrap()
        .expect("published");
    let entry = String::from_utf8(entry.to_vec()).unwrap();
    assert!(
        entry.contains("\"secretKeyRef\":{\"name\":\"soc-slack\",\"key\":\"webhook-url\"}"),
        "{entry}"
    );
    for text in bodies.iter().map(Value::to_string).chain([entry]) {
        assert!(
            !text.contains("very-secret-token"),
            "the secret leaked: {text}"
        );
    }
}

/// `M` of `appliedNodes` is the expected reporters (from the directory's Pod and Node
/// watches): the sensors on the nodes the policy selects. Reports of other nodes are ignored,
/// a stale generation is not applied, a malformed report is ignored (logged and counted), and
/// an unchanged status is not written again.
#[tokio::test]
async fn expected_reporters_are_the_denominator_of_applied_nodes() {
    use netwarden_operator::directory::model::Reporters;
    let h = harness().await;
    let edge = |pool: &str| -> std::collections::BTreeMap<String, String> {
        [("pool".to_string(), pool.to_string())].into()
    };
    let reporters = Reporters {
        known: true,
        sensors: [
            ("node-a".to_string(), edge("edge")),
            ("node-b.zone-1".to_string(), edge("edge")),
            ("node-c".to_string(), edge("core")),
        ]
        .into(),
        engines: ["engine-0".to_string()].into(),
    };
    let (_tx, rx) = tokio::sync::watch::channel(reporters);
    for (node, generation, applied, message) in [
        ("node-a", 2, true, None),
        ("node-b.zone-1", 1, true, None),
        ("node-c", 2, true, Some("node not selected")),
        ("node-gone", 2, false, Some("interface ens9 does not exist")),
    ] {
        let report = StatusReport {
            generation,
            applied,
            message: message.map(Into::into),
        };
        let key = status_key("InterfacePolicy", None, "edge", node);
        h.stores
            .status
            .put(&key, serde_json::to_vec(&report).unwrap().into())
            .await
            .unwrap();
    }
    h.stores
        .status
        .put(
            &status_key("InterfacePolicy", None, "edge", "node-x"),
            Bytes::from_static(b"{\"generation\": \"two\""),
        )
        .await
        .unwrap();
    let obj: InterfacePolicy = serde_json::from_value(json!({
        "apiVersion": "netwarden.io/v1alpha1", "kind": "InterfacePolicy",
        "metadata": {"name": "edge", "uid": "1", "generation": 2, "finalizers": [FINALIZER]},
        "spec": {"nodeSelector": {"matchLabels": {"pool": "edge"}}, "interfaces": {"include": ["eth*"]}},
    }))
    .unwrap();
    let path = "/apis/netwarden.io/v1alpha1/interfacepolicies/edge/status";
    let run = |obj: InterfacePolicy, steps: Vec<Step>| {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let ctx = Context::with_reporters(
            Client::new(service, "default"),
            h.stores.clone(),
            rx.clone(),
        );
        let server = api_server(handle, steps);
        async move {
            let result = tokio::time::timeout(
                Duration::from_secs(10),
                reconcile(Arc::new(obj), ctx.clone()),
            )
            .await
            .expect("reconcile hangs");
            let bodies = tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("steps left")
                .unwrap();
            (result, bodies, ctx)
        }
    };
    let echo = serde_json::to_value(&obj).unwrap();
    let steps = vec![
        status_step(
            path.into(),
            |body| {
                let status = &body["status"];
                assert_eq!(status["appliedNodes"], "1/2");
                assert_eq!(
                    (
                        status["appliedCount"].as_u64(),
                        status["reportedCount"].as_u64()
                    ),
                    (Some(1), Some(1))
                );
                assert_eq!(
                    status["errors"],
                    Value::Null,
                    "node-gone is not expected: {status}"
                );
                let applied = condition(body, "Applied");
                assert_eq!(applied["status"], "False");
                assert_eq!(applied["reason"], "PartiallyApplied");
                assert_eq!(
                    applied["message"],
                    "applied on 1/2, 1 still on an older generation"
                );
                assert_eq!(applied["observedGeneration"], 2);
            },
            echo,
        ),
        event_step("default", "Normal", "Published"),
    ];
    let (result, bodies, ctx) = run(obj.clone(), steps).await;
    result.unwrap();
    assert_eq!(ctx.metrics.malformed_reports.get(), 1);
    assert!(
        ctx.metrics
            .encode()
            .contains("netwarden_operator_malformed_status_reports_total 1")
    );

    // The same object, now carrying that status: nothing to write, no event.
    let mut again = obj;
    again.status = Some(serde_json::from_value(bodies[0]["status"].clone()).unwrap());
    let (result, bodies, _) = run(again, vec![]).await;
    result.unwrap();
    assert!(bodies.is_empty());
}
