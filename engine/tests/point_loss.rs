//! Per-observation-point loss in the engine API: export datagrams with sequence gaps reach a
//! sensor's flow listener, the sensor publishes its per-point statistics (`nw.stats.<sensor>`)
//! and `GET /api/v2/observation-points[/{name}]` shows the lost datagrams and records.
//!
//! * Cluster path: a real nats-server, the sensor pipeline of `netwarden-sensor run --netflow`
//!   (in process, `pipeline::run`) and the engine on the same server.
//! * Standalone: `netwarden-engine standalone --netflow ... --ipfix-tcp ...` (the binary),
//!   same datagrams, same numbers; the IPFIX-over-TCP listener's connection counters show on
//!   `/metrics` after a connection with a bad frame.
//!
//! Datagrams are built here byte by byte: NetFlow v5 (records counted by `flow_sequence`: 100
//! then 105 with one record each = 4 records lost) and sFlow v5 without samples (datagram
//! sequence 1, 2, 6 = 3 datagrams lost, point named by the agent address in the datagram).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, NatsBus, Publisher};
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use netwarden_testkit::{NatsServer, free_port};
use serde_json::Value;
use tokio::sync::watch;

mod common;

use common::wait_for;

/// A NetFlow v5 datagram with one TCP record 10.1.1.1:40000 -> 10.2.2.2:443 and `sequence`.
fn netflow5(sequence: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&5u16.to_be_bytes()); // version
    d.extend_from_slice(&1u16.to_be_bytes()); // count
    d.extend_from_slice(&10_000u32.to_be_bytes()); // sys_uptime ms
    d.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // unix_secs
    d.extend_from_slice(&0u32.to_be_bytes()); // unix_nsecs
    d.extend_from_slice(&sequence.to_be_bytes()); // flow_sequence
    d.extend_from_slice(&[0, 0]); // engine type, id
    d.extend_from_slice(&0u16.to_be_bytes()); // sampling
    d.extend_from_slice(&[10, 1, 1, 1, 10, 2, 2, 2, 0, 0, 0, 0]); // src, dst, next hop
    d.extend_from_slice(&[0, 1, 0, 2]); // input, output
    d.extend_from_slice(&3u32.to_be_bytes()); // packets
    d.extend_from_slice(&300u32.to_be_bytes()); // octets
    d.extend_from_slice(&9_000u32.to_be_bytes()); // first
    d.extend_from_slice(&9_500u32.to_be_bytes()); // last
    d.extend_from_slice(&40_000u16.to_be_bytes());
    d.extend_from_slice(&443u16.to_be_bytes());
    d.extend_from_slice(&[0, 0x1b, 6, 0]); // pad, flags, proto, tos
    d.extend_from_slice(&[0; 8]); // AS, masks, pad
    assert_eq!(d.len(), 24 + 48);
    d
}

/// An sFlow v5 datagram of agent 192.0.2.7, sub-agent 1, with no samples.
fn sflow(sequence: u32) -> Vec<u8> {
    let mut d = Vec::new();
    for w in [
        5u32,
        1,
        u32::from_be_bytes([192, 0, 2, 7]),
        1,
        sequence,
        1000,
        0,
    ] {
        d.extend_from_slice(&w.to_be_bytes());
    }
    d
}

/// Sends the datagrams with gaps to `to`.
fn send_gaps(to: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in [netflow5(100), netflow5(105), sflow(1), sflow(2), sflow(6)] {
        s.send_to(&d, to).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

async fn get(base: &str, path: &str) -> Option<Value> {
    let resp = reqwest::get(format!("{base}{path}")).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The point `name` of the list, once it shows `field` = `want`.
async fn wait_point(base: &str, name: &str, field: &str, want: u64) -> Value {
    let mut found = Value::Null;
    wait_for(
        &format!("{name} to show {field} = {want}"),
        Duration::from_secs(30),
        async || {
            let Some(points) = get(base, "/api/v2/observation-points").await else {
                return false;
            };
            if let Some(p) = points["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
            {
                found = p.clone();
            }
            found[field].as_u64() == Some(want)
        },
    )
    .await;
    found
}

/// What both tests check once the datagrams are in.
async fn check_points(base: &str, sensor: &str) {
    let v5 = wait_point(base, &format!("{sensor}/127.0.0.1/0"), "lost_records", 4).await;
    assert_eq!(v5["datagrams"], 2, "{v5}");
    assert_eq!(v5["lost_datagrams"], 0, "{v5}");
    assert_eq!(v5["flows"], 2, "the records themselves are there too: {v5}");
    let sf = wait_point(base, &format!("{sensor}/192.0.2.7/1"), "lost_datagrams", 3).await;
    assert_eq!(sf["datagrams"], 3, "{sf}");
    assert_eq!(sf["lost_records"], 0, "{sf}");
    assert_eq!(sf["flows"], 0, "{sf}");
    assert_eq!(sf["exporter"], "192.0.2.7", "{sf}");
    // The drill-down serves the same totals.
    let detail = get(
        base,
        &format!("/api/v2/observation-points/{sensor}/192.0.2.7/1"),
    )
    .await
    .unwrap();
    assert_eq!(detail["point"]["lost_datagrams"], 3, "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_travels_over_nats_to_the_observation_points() {
    let nats = NatsServer::start();
    let connect = async |name: &str| {
        NatsBus::connect(NatsOptions {
            wait_for_connection: true,
            ..NatsOptions::new(nats.url(), name)
        })
        .await
        .unwrap()
    };
    let engine_bus = connect("engine-test").await;
    let (tx, rx) = watch::channel(false);
    let launched = common::launch_engine(Arc::new(engine_bus.clone()), rx.clone()).await;
    engine_bus.flush().await.unwrap();
    let base = format!("http://{}", launched.addr);

    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = SensorConfig {
        sensor_name: "loss-node".into(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    };
    let sensor_bus: Arc<dyn Bus> = Arc::new(connect("sensor-test").await);
    let sensor = tokio::spawn(pipeline::run(
        vec![Input::Netflow(listen)],
        config,
        sensor_bus,
        Arc::new(SensorMetrics::default()),
        rx,
    ));
    // The listener is bound once the run has started: a probe of another agent is sent until
    // its point shows, so the datagrams under test are not sent into nothing.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut probe_datagram = sflow(1);
    probe_datagram[11] = 99;
    wait_for("the listener", Duration::from_secs(30), async || {
        probe.send_to(&probe_datagram, listen).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let points = get(&base, "/api/v2/observation-points").await;
        points.is_some_and(|p| p.to_string().contains("loss-node/192.0.2.99/1"))
    })
    .await;
    tokio::task::spawn_blocking(move || send_gaps(listen))
        .await
        .unwrap();
    check_points(&base, "loss-node").await;
    tx.send(true).unwrap();
    let summary = sensor.await.unwrap().unwrap();
    assert!(summary.collected_datagrams >= 5, "{summary:?}");
    launched.engine.close().await;
}

struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_shows_the_same_loss_and_tcp_counters() {
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tcp, api) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{api}");
    let _engine = Engine(
        Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
            .args(["standalone", "--report", "json", "--netflow"])
            .arg(format!("127.0.0.1:{udp}"))
            .arg("--ipfix-tcp")
            .arg(format!("127.0.0.1:{tcp}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{api}"))
            .env("NODE_NAME", "solo")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for("the API", Duration::from_secs(20), async || {
        get(&base, "/api/v2/observation-points").await.is_some()
    })
    .await;
    let to: SocketAddr = format!("127.0.0.1:{udp}").parse().unwrap();
    tokio::task::spawn_blocking(move || send_gaps(to))
        .await
        .unwrap();
    check_points(&base, "solo").await;

    // IPFIX over TCP: one connection that sends HTTP (a bad frame) is closed by the collector.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let listener = format!("listener=\"127.0.0.1:{tcp}\"");
    let line = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(&listener))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut text = String::new();
    wait_for(
        "the TCP counters on /metrics",
        Duration::from_secs(20),
        async || {
            text = reqwest::get(format!("{base}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            line(&text, "netwarden_sensor_collect_tcp_bad_frames_total") == Some(1)
        },
    )
    .await;
    assert_eq!(
        line(&text, "netwarden_sensor_collect_tcp_accepted_total"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        line(&text, "netwarden_sensor_collect_tcp_connections"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        line(&text, "netwarden_sensor_collect_tcp_refused_total"),
        Some(0),
        "{text}"
    );
}
