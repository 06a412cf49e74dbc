//! The binary end to end: `standalone --config DIR` with a `NotificationEndpoint` document and
//! `--secrets-dir` delivers the demo capture's alerts to a webhook receiver on loopback; the
//! `token` command prints a token once and never lists it; `run` refuses to start without
//! tokens.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_netwarden-engine");

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn standalone_notifies_a_webhook_from_its_config_dir() {
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let b = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let b = Arc::clone(&b);
            async move {
                b.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(secrets.join("hook")).unwrap();
    std::fs::write(secrets.join("hook/url"), format!("http://{addr}/hook\n")).unwrap();
    std::fs::write(
        config.join("notify.yaml"),
        "apiVersion: netwarden.io/v1alpha1
kind: NotificationEndpoint
metadata: {name: soc}
spec:
  type: webhook
  secretKeyRef: {name: hook, key: url}
  filters: {minSeverity: notice}
  batching: {maxAlerts: 500, lingerSeconds: 1}
",
    )
    .unwrap();
    let pcap = netwarden_testkit::testdata("demo/demo.pcap");
    let child = Child(
        Command::new(BIN)
            .args(["standalone", "--pcap"])
            .arg(&pcap)
            .arg("--config")
            .arg(&config)
            .arg("--secrets-dir")
            .arg(&secrets)
            .args([
                "--notify-allow-private",
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                "https://nw.example/",
                "--report",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while bodies.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no notification arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child);
    let first: Value = serde_json::from_slice(&bodies.lock().unwrap()[0]).unwrap();
    let alerts = first["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty());
    for a in alerts {
        assert!(
            a["score"].as_u64().unwrap() >= 10,
            "minSeverity notice: {a}"
        );
        let key = a["key"].as_str().unwrap();
        assert!(
            a["link"]
                .as_str()
                .unwrap()
                .starts_with("https://nw.example/api/v2/alerts/"),
            "{key}"
        );
    }
}

#[test]
fn token_command_prints_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let out = Command::new(BIN)
        .args(["token", "--tokens"])
        .arg(&file)
        .args([
            "create",
            "--name",
            "ci",
            "--scope",
            "read,write",
            "--expires-in",
            "90d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        token.starts_with("nw_") && token.len() == 3 + 8 + 1 + 64,
        "{token}"
    );
    let secret = &token[12..];
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(secret));
    let list = Command::new(BIN)
        .args(["token", "--tokens"])
        .arg(&file)
        .arg("list")
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("ci") && list.contains("read,write"), "{list}");
    assert!(!list.contains(secret));
    let revoke = Command::new(BIN)
        .args(["token", "--tokens"])
        .arg(&file)
        .args(["revoke", "ci"])
        .output()
        .unwrap();
    assert!(revoke.status.success());
    let list = Command::new(BIN)
        .args(["token", "--tokens"])
        .arg(&file)
        .arg("list")
        .output()
        .unwrap();
    assert!(!String::from_utf8(list.stdout).unwrap().contains("ci "));
}

#[test]
fn run_refuses_to_start_without_tokens() {
    let out = Command::new(BIN)
        .args([
            "run",
            "--nats",
            "nats://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("NETWARDEN_TOKENS_FILE")
        .env_remove("NETWARDEN_INSECURE_NO_AUTH")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure-no-auth"), "{err}");
}
