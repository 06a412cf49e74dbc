//! `--dpi-lists DIR` on the sensor's commands: the list-driven risks reach the records, from
//! `flows` (JSON lines) and from `run` (flow batches on a real nats-server). Reloading on
//! change is tested beside the watcher (`dpi::reload`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use futures::StreamExt as _;
use netwarden_api::flow::{FlowBatch, FlowRecord};
use netwarden_testkit::NatsServer;

const RISKY_DOMAIN: u16 = 27;
const ANONYMOUS_SUBSCRIBER: u16 = 45;

/// A list folder naming `443-curl.pcap`'s server domain risky and its client anonymous.
fn lists() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("risky_domains.txt"), "# test\nntop.org\n").unwrap();
    std::fs::write(
        dir.path().join("anonymous_subscribers.txt"),
        "192.168.1.0/24\n",
    )
    .unwrap();
    dir
}

fn pcap() -> std::path::PathBuf {
    netwarden_testkit::testdata("ndpi").join("443-curl.pcap")
}

fn tls_flow(records: &[FlowRecord]) -> &FlowRecord {
    records
        .iter()
        .find(|r| r.server_port == 443 && r.l4_proto == 6)
        .expect("the TLS flow")
}

fn flows(extra: &[&std::ffi::OsStr]) -> Vec<FlowRecord> {
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-sensor"))
        .arg("flows")
        .arg("--pcap")
        .arg(pcap())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn flows_with_lists_raise_list_risks() {
    let without = flows(&[]);
    let rec = tls_flow(&without);
    assert!(!rec.has_risk(RISKY_DOMAIN) && !rec.has_risk(ANONYMOUS_SUBSCRIBER));
    let dir = lists();
    let with = flows(&["--dpi-lists".as_ref(), dir.path().as_os_str()]);
    let rec = tls_flow(&with);
    assert!(rec.has_risk(RISKY_DOMAIN));
    assert!(rec.has_risk(ANONYMOUS_SUBSCRIBER));
}

#[test]
fn unreadable_lists_stop_the_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("risky_domains.txt")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-sensor"))
        .args(["flows", "--pcap"])
        .arg(pcap())
        .arg("--dpi-lists")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DPI lists"));
}

#[tokio::test]
async fn run_with_lists_publishes_the_risk() {
    let server = NatsServer::start();
    let (_subscriber, mut stream, _bus) = common::nats_flows(&server).await;
    let dir = lists();
    let child = Command::new(env!("CARGO_BIN_EXE_netwarden-sensor"))
        .args(["run", "--no-config", "--progress", "quiet", "--nats"])
        .arg(server.url())
        .arg("--pcap")
        .arg(pcap())
        .arg("--dpi-lists")
        .arg(dir.path())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(Some(child));
    let mut found = None;
    while found.is_none() {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await else {
            panic!("no TLS flow published");
        };
        let batch = FlowBatch::from_bytes(&m.subject, &m.payload).unwrap();
        found = batch
            .records
            .into_iter()
            .find(|r| r.server_port == 443 && r.l4_proto == 6);
    }
    let rec = found.unwrap();
    assert!(rec.has_risk(RISKY_DOMAIN));
    assert!(rec.has_risk(ANONYMOUS_SUBSCRIBER));
    let mut proc = child.0.take().unwrap();
    let wait = tokio::task::spawn_blocking(move || proc.wait());
    let status = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("sensor exits after the pcap")
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// Kills the sensor if the test fails before it exits.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
