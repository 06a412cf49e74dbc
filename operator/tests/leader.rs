//! Leader election against kube-rs's mocked API service: method, path and body of each request.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use netwarden_operator::leader::LeaderLock;
use serde_json::{Value, json};
use tower_test::mock;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/netwarden/leases";

async fn expect(
    handle: &mut mock::Handle<Request<Body>, Response<Body>>,
    method: Method,
    path: &str,
    status: StatusCode,
    respond: Option<Value>,
) -> Value {
    let (request, send) = handle.next_request().await.expect("request");
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().path(), path);
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let out = respond.unwrap_or_else(|| body.clone());
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&out).unwrap()))
            .unwrap(),
    );
    body
}

fn lock() -> (LeaderLock, mock::Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        LeaderLock::new(
            client,
            "netwarden",
            "netwarden-operator",
            "operator-0",
            Duration::from_secs(15),
        ),
        handle,
    )
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
}

#[tokio::test]
async fn the_first_candidate_creates_the_lease() {
    let (lock, mut handle) = lock();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            &format!("{LEASES}/netwarden-operator"),
            StatusCode::NOT_FOUND,
            Some(not_found()),
        )
        .await;
        let body = expect(&mut handle, Method::POST, LEASES, StatusCode::CREATED, None).await;
        assert_eq!(body["metadata"]["name"], "netwarden-operator");
        assert_eq!(body["spec"]["holderIdentity"], "operator-0");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    });
    assert!(lock.try_acquire().await.unwrap());
    server.await.unwrap();
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "netwarden-operator", "namespace": "netwarden", "resourceVersion": "42"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed, "leaseTransitions": 3}})
}

#[tokio::test]
async fn a_live_leader_is_left_alone_and_an_expired_one_is_replaced() {
    let (lock, mut handle) = lock();
    let fresh = k8s_openapi::jiff::Timestamp::now().to_string();
    let server = tokio::spawn(async move {
        let path = format!("{LEASES}/netwarden-operator");
        expect(
            &mut handle,
            Method::GET,
            &path,
            StatusCode::OK,
            Some(lease("operator-1", &fresh)),
        )
        .await;
        // Second attempt: the other leader stopped renewing long ago.
        expect(
            &mut handle,
            Method::GET,
            &path,
            StatusCode::OK,
            Some(lease("operator-1", "2020-01-01T00:00:00.000000Z")),
        )
        .await;
        let body = expect(&mut handle, Method::PUT, &path, StatusCode::OK, None).await;
        assert_eq!(
            body["metadata"]["resourceVersion"], "42",
            "optimistic concurrency"
        );
        assert_eq!(body["spec"]["holderIdentity"], "operator-0");
        assert_eq!(body["spec"]["leaseTransitions"], 4);
        // Third attempt: someone else won the race (409): not the leader.
        expect(
            &mut handle,
            Method::GET,
            &path,
            StatusCode::OK,
            Some(lease("operator-1", "2020-01-01T00:00:00.000000Z")),
        )
        .await;
        expect(
            &mut handle,
            Method::PUT,
            &path,
            StatusCode::CONFLICT,
            Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409})),
        )
        .await;
    });
    assert!(
        !lock.try_acquire().await.unwrap(),
        "a live leader keeps the lease"
    );
    assert!(
        lock.try_acquire().await.unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !lock.try_acquire().await.unwrap(),
        "a lost race is not leadership"
    );
    server.await.unwrap();
}
