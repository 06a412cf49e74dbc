//! End-to-end throughput of the sharded engine through NATS JetStream, R = 1, 2, 3 replicas
//! (docs/PERFORMANCE.md). Not part of the test run (`#[ignore]`); run it in release:
//!
//! ```sh
//! cargo test --release -p netwarden-engine --test shard_bench -- --ignored --nocapture
//! ```
//!
//! Flow records (2 per flow: a periodic update and the final one, ~250 hosts) are batched per
//! shard as the sensor batches them (256 KiB batches), published to `NW_FLOWS` through the
//! sensor's JetStream publisher (256 unacknowledged publishes) while `R` real
//! `netwarden-engine run` replicas consume; the clock stops when the replicas' applied record
//! copies (`netwarden_engine_records_ingested_total`, summed) reach what was published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netwarden_api::bus::NatsBus;
use netwarden_api::bus::Publisher;
use netwarden_api::bus::jetstream::{
    FlowStreamLimits, JetStreamBus, JetStreamOptions, ensure_flows_stream,
};
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::flow::{
    DirectionStats, FlowBatch, FlowRecord, FlowUpdate, MAX_BATCH_BYTES, ObservationPoint,
    ip_to_bytes,
};
use netwarden_api::names::flows_subject;
use netwarden_sensor::export::Batcher;
use netwarden_testkit::{NatsServer, free_port};

const SHARDS: u32 = 64;

struct Replica {
    base: String,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn records(flows: u64) -> Vec<FlowRecord> {
    let point = ObservationPoint {
        sensor: "bench".into(),
        interface: "eth0".into(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(flows as usize * 2);
    for i in 0..flows {
        let client: IpAddr = format!("10.2.{}.{}", i % 4, i % 61 + 1).parse().unwrap();
        let server: IpAddr = format!("172.20.{}.{}", i % 2, i % 67 + 1).parse().unwrap();
        for (step, fin) in [(1u64, false), (2, true)] {
            out.push(FlowRecord {
                flow_id: i + 1,
                observation_point: Some(point.clone()),
                ip_version: 4,
                client_ip: ip_to_bytes(client),
                server_ip: ip_to_bytes(server),
                client_port: 20_000 + (i % 40_000) as u32,
                server_port: 443,
                l4_proto: 6,
                first_seen_ns: 1_700_000_000_000_000_000 + i * 1000,
                last_seen_ns: 1_700_000_000_000_000_000 + i * 1000 + step,
                update: if fin {
                    FlowUpdate::Final
                } else {
                    FlowUpdate::Periodic
                } as i32,
                c2s: Some(DirectionStats {
                    packets: step * 3,
                    bytes: step * 400,
                    ..Default::default()
                }),
                s2c: Some(DirectionStats {
                    packets: step * 4,
                    bytes: step * 3000,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    out
}

async fn ingested(http: &reqwest::Client, replicas: &[Replica]) -> u64 {
    let mut sum = 0;
    for r in replicas {
        let Ok(resp) = http.get(format!("{}/metrics", r.base)).send().await else {
            continue;
        };
        let body = resp.text().await.unwrap_or_default();
        sum += body
            .lines()
            .find(|l| l.starts_with("netwarden_engine_records_ingested_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    sum
}

async fn run(r: usize, flows: u64) -> (f64, f64) {
    let nats = NatsServer::start();
    let replicas: Vec<Replica> = (0..r)
        .map(|i| {
            let port = free_port();
            let child = Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
                .args(["run", "--insecure-no-auth", "--log-level", "error"])
                .args(["--nats", &nats.url(), "--replica", &format!("bench-{i}")])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--shards", &SHARDS.to_string(), "--lease-ttl", "3"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            Replica {
                base: format!("http://127.0.0.1:{port}"),
                child,
            }
        })
        .collect();
    let nats_bus = NatsBus::connect(NatsOptions {
        wait_for_connection: true,
        ..NatsOptions::new(nats.url(), "bench")
    })
    .await
    .unwrap();
    ensure_flows_stream(nats_bus.client(), FlowStreamLimits::default())
        .await
        .unwrap();
    // Let the replicas agree on the table first (3 lease periods).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let recs = records(flows);
    let mut b = Batcher::new("bench", SHARDS, MAX_BATCH_BYTES, Duration::from_secs(3600));
    let mut ready = Vec::new();
    let now = Instant::now();
    for rec in &recs {
        b.add(rec.clone(), now, &mut ready);
    }
    b.flush_all(&mut ready);
    let copies: u64 = ready.iter().map(|r| r.batch.records.len() as u64).sum();
    let batches: Vec<(String, Bytes)> = ready
        .into_iter()
        .map(|r| (flows_subject(r.shard), FlowBatch::to_bytes(&r.batch)))
        .collect();
    let js = JetStreamBus::new(nats_bus, JetStreamOptions::default());
    let http = reqwest::Client::new();
    let start = Instant::now();
    for (subject, payload) in &batches {
        js.publish(subject.clone(), payload.clone()).await.unwrap();
    }
    js.flush().await.unwrap();
    let published = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while ingested(&http, &replicas).await < copies {
        assert!(Instant::now() < deadline, "the replicas never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = start.elapsed();
    let n = recs.len() as f64;
    (n / published.as_secs_f64(), n / total.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored"]
async fn throughput_by_replicas() {
    let flows: u64 = std::env::var("NW_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000);
    println!("| R | records | published into NW_FLOWS (records/s) | end to end (records/s) |");
    println!("|---|---|---|---|");
    for r in 1..=3 {
        let (publish, e2e) = run(r, flows).await;
        println!("| {r} | {} | {:.0} | {:.0} |", flows * 2, publish, e2e);
    }
}
