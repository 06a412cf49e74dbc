//! A scripted Kubernetes API behind kube-rs's mocked service (`tower_test::mock`) that speaks
//! the list + watch protocol, so the production watchers (kube-rs `watcher`, `Controller`) run
//! unchanged: a GET on a watched collection answers the current list; a GET with `watch=true`
//! waits for the next batch of watch events the test sends, answers it as one streamed body
//! (newline-delimited JSON), and the watcher re-watches from the last resourceVersion. Any
//! other request (PATCH, POST…) is recorded and answered with its own body.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test binaries

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock;

/// One request the fake API server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query, URL-decoded.
    pub query: String,
    /// The `Accept` header.
    pub accept: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

type WatchQueue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<Value>>>>;

/// The server and the test's handles on it.
#[derive(Clone)]
pub struct FakeApi {
    lists: Arc<Mutex<HashMap<String, Value>>>,
    senders: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Vec<Value>>>>>,
    queues: Arc<Mutex<HashMap<String, WatchQueue>>>,
    /// Every request, in arrival order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    rv: Arc<std::sync::atomic::AtomicU64>,
}

fn decode(query: &str) -> String {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

impl FakeApi {
    /// A client talking to a new fake API server.
    pub fn start() -> (Client, Self) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let api = Self {
            lists: Arc::default(),
            senders: Arc::default(),
            queues: Arc::default(),
            seen: Arc::default(),
            rv: Arc::new(std::sync::atomic::AtomicU64::new(100)),
        };
        tokio::spawn(api.clone().serve(handle));
        (Client::new(service, "default"), api)
    }

    fn next_rv(&self) -> String {
        self.rv
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string()
    }

    /// Sets what a list of `path` (e.g. `/api/v1/pods`) answers: `items` with a fresh
    /// resourceVersion each. `list_kind` is e.g. `PodList`.
    pub fn set_list(&self, path: &str, list_kind: &str, items: Vec<Value>) {
        let items: Vec<Value> = items.into_iter().map(|o| self.stamp(o)).collect();
        let list = json!({"kind": list_kind, "apiVersion": "v1",
            "metadata": {"resourceVersion": self.next_rv()}, "items": items});
        self.lists.lock().unwrap().insert(path.to_string(), list);
        self.queue(path);
    }

    fn stamp(&self, mut object: Value) -> Value {
        object["metadata"]["resourceVersion"] = Value::from(self.next_rv());
        object
    }

    fn queue(&self, path: &str) -> mpsc::UnboundedSender<Vec<Value>> {
        let mut senders = self.senders.lock().unwrap();
        senders
            .entry(path.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                self.queues
                    .lock()
                    .unwrap()
                    .insert(path.to_string(), Arc::new(tokio::sync::Mutex::new(rx)));
                tx
            })
            .clone()
    }

    /// Sends one batch of watch events (`(type, object)`: `ADDED`, `MODIFIED`, `DELETED`) to
    /// the watchers of `path`; answered to the next watch request as one response.
    pub fn watch_events(&self, path: &str, events: Vec<(&str, Value)>) {
        let batch = events
            .into_iter()
            .map(|(t, o)| json!({"type": t, "object": self.stamp(o)}))
            .collect();
        self.queue(path).send(batch).unwrap();
    }

    /// Ends the current watch of `path` with `410 Gone` (the watcher lists again).
    pub fn expire_watch(&self, path: &str) {
        let status = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "message": "too old resource version",
            "reason": "Expired", "code": 410}});
        self.queue(path).send(vec![status]).unwrap();
    }

    /// Requests seen so far with `method` on `path`.
    pub fn requests(&self, method: &Method, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .cloned()
            .collect()
    }

    /// The listed object a `<collection>/<name>/status` path names.
    fn find(&self, path: &str) -> Option<Value> {
        let object_path = path.strip_suffix("/status")?;
        let (collection, name) = object_path.rsplit_once('/')?;
        // Namespaced objects are listed cluster-wide: `/apis/g/v/namespaces/ns/kind` → `/apis/g/v/kind`.
        let cluster_wide = match collection.split_once("/namespaces/") {
            Some((prefix, rest)) => format!("{prefix}/{}", rest.split_once('/')?.1),
            None => collection.to_string(),
        };
        let lists = self.lists.lock().unwrap();
        lists.get(&cluster_wide)?["items"]
            .as_array()?
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
    }

    async fn serve(self, mut handle: mock::Handle<Request<Body>, Response<Body>>) {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let query = decode(request.uri().query().unwrap_or_default());
            let accept = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            self.seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                accept,
                body: body.clone(),
            });
            let respond = |status: StatusCode, body: Vec<u8>| {
                Response::builder()
                    .status(status)
                    .body(Body::from(body))
                    .unwrap()
            };
            let is_watch = query.split('&').any(|p| p == "watch=true");
            let list = self.lists.lock().unwrap().get(&path).cloned();
            match (method, list) {
                (Method::GET, Some(_)) if is_watch => {
                    let queue = self.queues.lock().unwrap().get(&path).cloned().unwrap();
                    tokio::spawn(async move {
                        // Hold the watch open until the test has events for it.
                        let batch = queue.lock().await.recv().await;
                        let Some(batch) = batch else {
                            std::future::pending::<()>().await;
                            return;
                        };
                        let mut body = Vec::new();
                        for event in batch {
                            serde_json::to_writer(&mut body, &event).unwrap();
                            body.push(b'\n');
                        }
                        send.send_response(respond(StatusCode::OK, body));
                    });
                }
                (Method::GET, Some(list)) => {
                    send.send_response(respond(StatusCode::OK, serde_json::to_vec(&list).unwrap()));
                }
                (Method::GET, None) => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": format!("{path} not found")});
                    send.send_response(respond(
                        StatusCode::NOT_FOUND,
                        serde_json::to_vec(&status).unwrap(),
                    ));
                }
                (Method::PATCH, None) if path.ends_with("/status") => {
                    // A status patch: answer the listed object carrying the patched status.
                    let object = self.find(&path).map(|mut o| {
                        o["status"] = body["status"].clone();
                        o
                    });
                    let out = object.unwrap_or(body);
                    send.send_response(respond(StatusCode::OK, serde_json::to_vec(&out).unwrap()));
                }
                _ => send.send_response(respond(StatusCode::OK, bytes.to_vec())),
            }
        }
    }
}
