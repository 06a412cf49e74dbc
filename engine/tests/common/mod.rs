//! Helpers shared by the engine's integration tests (each test crate uses some of them).

#![allow(dead_code)]

pub mod shard;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use netwarden_api::bus::Bus;
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, ObservationPoint, ip_to_bytes};
use netwarden_engine::Launched;
use netwarden_engine::state::StateConfig;
use serde_json::Value;
use tokio::sync::watch;

/// Launches the engine on `bus` with the default state and the HTTP API on a free local port.
pub async fn launch_engine(bus: Arc<dyn Bus>, shutdown: watch::Receiver<bool>) -> Launched {
    netwarden_engine::launch(
        bus,
        &StateConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        |_| {},
        shutdown,
    )
    .await
    .unwrap()
}

/// Polls `done` until it holds; fails the test after `timeout`, naming `what`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `url`: the status, the content type and the body as JSON (`Null` when it is not).
pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, String, Value) {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, ctype, json)
}

/// A final record of an unanswered SYN (SYN, then RST-ACK) from `client` to `server`'s `dport`
/// at `t` (ns), seen at sensor `n`, interface `eth0`.
pub fn syn(id: u64, client: &str, server: &str, dport: u32, t: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        observation_point: Some(ObservationPoint {
            sensor: "n".into(),
            interface: "eth0".into(),
            ..Default::default()
        }),
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 40000,
        server_port: dport,
        l4_proto: 6,
        first_seen_ns: t,
        last_seen_ns: t,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 1,
            bytes: 60,
            tcp_flags: 0x02,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 1,
            bytes: 54,
            tcp_flags: 0x14,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs `netwarden-engine standalone --exit --report json` on `pcap` and returns the report
/// (the process must succeed and print one JSON document on stdout).
pub fn standalone_json_report(pcap: &std::path::Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
        .args([
            "standalone",
            "--exit",
            "--report",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--pcap",
        ])
        .arg(pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
