//! The persistent store across a restart, through the binary: `standalone --pcap --data DIR`
//! raises alerts and ends flows, is stopped with SIGTERM, then `standalone --data DIR` with no
//! input serves the same alerts (same ids, keys, flows, acknowledgements) and the same history.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use netwarden_testkit::testdata;
use serde_json::Value;

mod common;

/// A running `standalone`, its API address, and its stderr lines.
struct Running {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `standalone --data DIR [args]` and waits until it serves (its report is done).
    fn start(data: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
            .args(["standalone", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut base = None;
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("standalone did not start serving");
            if let Some(addr) = line.strip_prefix("API on ") {
                base = Some(addr.trim().to_owned());
            }
            if line.starts_with("serving ") {
                break;
            }
        }
        Self {
            child,
            base: base.unwrap(),
            lines,
        }
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        let (status, _, json) = common::get_json(http, &format!("{}{path}", self.base)).await;
        assert_eq!(status, 200, "{path}: {json}");
        json
    }

    /// SIGTERM, then the exit status (the store is closed cleanly on the way out).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.lines.try_iter().collect();
                assert!(status.success(), "exit {status:?}\n{}", rest.join("\n"));
                assert!(
                    rest.iter().any(|l| l.contains("store closed")),
                    "{}",
                    rest.join("\n")
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ids_and_keys(page: &Value) -> Vec<(u64, String, bool)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().unwrap(),
                a["key"].as_str().unwrap().to_owned(),
                a["acknowledged"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_history_survive_a_restart_with_the_same_ids() {
    // reqwest is built without a default TLS provider in this workspace (rustls on ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let pcap = testdata("ndpi/sql_injection.pcap");

    let first = Running::start(data.path(), &["--pcap", pcap.to_str().unwrap()]);
    let alerts = first.get(&http, "/api/v2/alerts?limit=1000&sort=id").await;
    let before = ids_and_keys(&alerts);
    assert!(before.len() >= 2, "{alerts:#}");
    let sqli = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "url_possible_sql_injection")
        .unwrap()
        .clone();
    let id = sqli["id"].as_u64().unwrap();
    // Acknowledge one alert: that survives too.
    let resp = http
        .post(format!("{}/api/v2/alerts/{id}/acknowledge", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let history = first.get(&http, "/api/v2/flows/history?limit=1000").await;
    let flows = history["total"].as_u64().unwrap();
    assert!(flows > 0, "{history:#}");
    let detail = first.get(&http, &format!("/api/v2/alerts/{id}")).await;
    let drill = detail["links"]["host_flows"].as_str().unwrap().to_owned();
    let drilled = first.get(&http, &drill).await;
    assert!(
        drilled["total"].as_u64().unwrap() >= 1,
        "{drill}: {drilled:#}"
    );
    first.stop();

    // No input: what the store holds.
    let second = Running::start(data.path(), &[]);
    let alerts = second.get(&http, "/api/v2/alerts?limit=1000&sort=id").await;
    let after = ids_and_keys(&alerts);
    let expected: Vec<_> = before
        .iter()
        .map(|(i, k, a)| (*i, k.clone(), *a || *i == id))
        .collect();
    assert_eq!(after, expected);
    let again = second.get(&http, &format!("/api/v2/alerts/{id}")).await;
    assert_eq!(
        again["flow"], sqli["flow"],
        "the triggering flow is stored whole"
    );
    assert_eq!(again["links"]["host_flows"], drill.as_str());
    assert_eq!(second.get(&http, &drill).await, drilled);
    assert_eq!(
        second.get(&http, "/api/v2/flows/history?limit=1000").await,
        history
    );
    let metrics = http
        .get(format!("{}/metrics", second.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "netwarden_engine_store_rows{{table=\"flows\"}} {flows}"
        )),
        "{metrics}"
    );
    second.stop();
}
