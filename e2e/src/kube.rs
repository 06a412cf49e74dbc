//! A small fake Kubernetes API server over plain HTTP on loopback, enough for the real
//! `netwarden-operator run` (kube-rs reads a kubeconfig pointing at it): it lists the objects
//! the test put in it, holds watches open (nothing changes after the first list), answers a
//! status patch with the object carrying the new status, and echoes event creations. Every
//! request is recorded, so the test can see what the operator wrote back.
//!
//! Not a general API server: no resourceVersion semantics, no field selectors, no watch events.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// One request the server saw: method, path (no query), query, JSON body (`Null` when none).
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PATCH`…
    pub method: String,
    /// The path.
    pub path: String,
    /// The raw query.
    pub query: String,
    /// The body as JSON.
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    /// Objects by their path (`/apis/G/V/namespaces/NS/PLURAL/NAME`).
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
}

/// The server; stops (closing held watches) on drop.
pub struct FakeKube {
    port: u16,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

impl FakeKube {
    /// Starts serving on a free loopback port.
    ///
    /// # Panics
    /// When it cannot bind.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API server");
        let port = listener.local_addr().expect("local addr").port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, s) = (inner.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (i, s) = (i.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &i, &s));
            }
        });
        Self { port, inner, stop }
    }

    /// Adds a namespaced custom object (its path derived from `plural` and its metadata).
    pub fn add(&self, plural: &str, object: Value) {
        let (group_version, ns, name) = (
            object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let path = format!("/apis/{group_version}/namespaces/{ns}/{plural}/{name}");
        self.lock().objects.insert(path, object);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Writes a kubeconfig for this server to `path`.
    ///
    /// # Panics
    /// When it cannot write.
    pub fn write_kubeconfig(&self, path: &Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: e2e\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: e2e\n    namespace: default\ncurrent-context: fake\n",
            self.port
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn respond(out: &mut TcpStream, status: &str, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// Serves one connection (keep-alive: several requests) until it closes.
fn serve(conn: TcpStream, inner: &Mutex<Inner>, stop: &AtomicBool) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (path, query) = (path.to_owned(), query.to_owned());
        let mut state = inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        if method == "GET"
            && query
                .split('&')
                .any(|q| q == "watch=true" || q == "watch=1")
        {
            drop(state);
            // Hold the watch open: nothing changes after the first list.
            if out
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
            }
            return;
        }
        let result = match method.as_str() {
            "GET" => {
                if let Some(obj) = state.objects.get(&path) {
                    respond(&mut out, "200 OK", obj)
                } else {
                    // A collection: the objects under it, across namespaces for `Api::all`.
                    let plural = path.rsplit('/').next().unwrap_or_default().to_owned();
                    let prefix = path
                        .trim_end_matches(&plural)
                        .trim_end_matches('/')
                        .to_owned();
                    let items: Vec<Value> = state
                        .objects
                        .iter()
                        .filter(|(p, _)| {
                            p.starts_with(&prefix) && p.rsplit('/').nth(1) == Some(plural.as_str())
                        })
                        .map(|(_, o)| o.clone())
                        .collect();
                    respond(
                        &mut out,
                        "200 OK",
                        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                    )
                }
            }
            "PATCH" | "PUT" => {
                let object_path = path.trim_end_matches("/status").to_owned();
                if let Some(obj) = state.objects.get_mut(&object_path) {
                    if path.ends_with("/status") {
                        obj["status"] = body["status"].clone();
                    }
                    let obj = obj.clone();
                    respond(&mut out, "200 OK", &obj)
                } else {
                    respond(&mut out, "200 OK", &body)
                }
            }
            "POST" => respond(&mut out, "201 Created", &body),
            _ => respond(
                &mut out,
                "405 Method Not Allowed",
                &json!({"kind": "Status", "status": "Failure", "code": 405}),
            ),
        };
        if result.is_err() {
            return;
        }
    }
}
