//! A sharded-engine cluster for the integration tests: `netwarden-engine run` replicas as
//! processes, and a deterministic flow corpus published as a sensor would (tests/shard.rs,
//! tests/shard_api.rs).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, ObservationPoint, ip_to_bytes};
use netwarden_api::names::flows_subject;
use netwarden_sensor::export::Batcher;
use netwarden_testkit::free_port;

pub const SHARDS: u32 = 16;
/// Lease TTL given to the replicas, seconds.
pub const TTL: u64 = 2;

/// A `netwarden-engine run` replica.
pub struct Replica {
    pub name: String,
    pub base: String,
    pub child: Option<Child>,
}

impl Replica {
    /// Starts replica `name`; `tokens`: its token file (else the API is open).
    pub fn start(nats: &str, name: &str, tokens: Option<&Path>) -> Self {
        Self::start_with(nats, name, tokens, None)
    }

    /// [`Replica::start`] with its persistent store in `data`.
    pub fn start_with(nats: &str, name: &str, tokens: Option<&Path>, data: Option<&Path>) -> Self {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_netwarden-engine"));
        cmd.args(["run", "--log-level", "warn"])
            .args(["--nats", nats, "--replica", name])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--shards", &SHARDS.to_string()])
            .args(["--lease-ttl", &TTL.to_string(), "--snapshot-interval", "1"])
            .stdout(Stdio::null());
        if let Some(dir) = data {
            cmd.arg("--data").arg(dir);
        }
        match tokens {
            Some(file) => cmd.arg("--tokens").arg(file),
            None => cmd.arg("--insecure-no-auth"),
        };
        let child = cmd.spawn().expect("start netwarden-engine run");
        Self {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        }
    }

    /// SIGTERM, then waits for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
            assert!(c.wait().unwrap().success(), "clean exit");
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A deterministic flow corpus among ~150 hosts (as tests/shard.rs): a periodic and a final
/// record per flow; every 7th flow carries a self-signed-certificate risk (an alert).
pub fn corpus(flows: u64) -> Vec<FlowRecord> {
    let point = ObservationPoint {
        sensor: "s1".into(),
        interface: "eth0".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    for i in 0..flows {
        let client: IpAddr = format!("10.1.{}.{}", i % 4, i % 29 + 1).parse().unwrap();
        let server: IpAddr = format!("172.16.{}.{}", i % 3, i % 41 + 1).parse().unwrap();
        for (step, fin) in [(1u64, false), (3, true)] {
            let mut r = FlowRecord {
                flow_id: i + 1,
                observation_point: Some(point.clone()),
                ip_version: 4,
                client_ip: ip_to_bytes(client),
                server_ip: ip_to_bytes(server),
                client_port: 30_000 + (i % 20_000) as u32,
                server_port: 443,
                l4_proto: 6,
                first_seen_ns: 1_700_000_000_000_000_000 + i * 1_000_000,
                last_seen_ns: 1_700_000_000_000_000_000 + i * 1_000_000 + step * 1000,
                update: if fin {
                    FlowUpdate::Final
                } else {
                    FlowUpdate::Periodic
                } as i32,
                c2s: Some(DirectionStats {
                    packets: step * (i % 5 + 1),
                    bytes: step * (100 + i),
                    ..Default::default()
                }),
                s2c: Some(DirectionStats {
                    packets: step * (i % 3 + 1),
                    bytes: step * (1000 + 2 * i),
                    ..Default::default()
                }),
                update_seq: step as u32,
                ..Default::default()
            };
            if i % 7 == 0 {
                r.set_risk(6, Some(format!("CN=host{i}")));
            }
            out.push(r);
        }
    }
    out
}

pub fn batches(records: &[FlowRecord]) -> Vec<(String, Bytes)> {
    let mut b = Batcher::new("s1", SHARDS, 8 * 1024, Duration::from_secs(3600));
    let mut ready = Vec::new();
    let now = Instant::now();
    for r in records {
        b.add(r.clone(), now, &mut ready);
    }
    b.flush_all(&mut ready);
    ready
        .into_iter()
        .map(|r| (flows_subject(r.shard), r.batch.to_bytes()))
        .collect()
}
