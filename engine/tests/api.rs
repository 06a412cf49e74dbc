//! The REST API over real HTTP: records go through an in-process bus into the engine, then
//! every route is queried with an HTTP client.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use netwarden_api::bus::{Bus, MemoryBus, Publisher};
use netwarden_api::flow::{
    DirectionStats, FlowBatch, FlowRecord, FlowUpdate, L7Info, ObservationPoint, Role, ip_to_bytes,
};
use netwarden_api::names::{DEFAULT_SHARDS, flows_subject, shard_of};
use serde_json::Value;
use tokio::sync::watch;

mod common;

struct Flow {
    id: u64,
    client: &'static str,
    server: &'static str,
    sport: u32,
    dport: u32,
    l4: u32,
    app: &'static str,
    vlan: u32,
    iface: &'static str,
    /// Cumulative (c2s bytes, s2c bytes) per record; the flow ends when `ended`.
    steps: &'static [(u64, u64)],
    ended: bool,
    first_seen_s: u64,
}

fn records(f: &Flow) -> Vec<FlowRecord> {
    let base = 1_700_000_000_000_000_000 + f.first_seen_s * 1_000_000_000;
    f.steps
        .iter()
        .enumerate()
        .map(|(i, &(c2s, s2c))| {
            let last = i + 1 == f.steps.len();
            FlowRecord {
                flow_id: f.id,
                observation_point: Some(ObservationPoint {
                    sensor: "node-a".into(),
                    interface: f.iface.into(),
                    ..Default::default()
                }),
                sampling_rate: 1,
                vlan: f.vlan,
                ip_version: if f.client.contains(':') { 6 } else { 4 },
                client_ip: ip_to_bytes(f.client.parse().unwrap()),
                server_ip: ip_to_bytes(f.server.parse().unwrap()),
                client_port: f.sport,
                server_port: f.dport,
                l4_proto: f.l4,
                first_seen_ns: base,
                last_seen_ns: base + (i as u64 + 1) * 1_000_000_000,
                update: if last && f.ended {
                    FlowUpdate::Final
                } else {
                    FlowUpdate::Periodic
                } as i32,
                c2s: Some(DirectionStats {
                    packets: c2s.div_ceil(100),
                    bytes: c2s,
                    ..Default::default()
                }),
                s2c: Some(DirectionStats {
                    packets: s2c.div_ceil(100),
                    bytes: s2c,
                    ..Default::default()
                }),
                l7: Some(L7Info {
                    master_protocol: f.app.split('.').next().unwrap().into(),
                    app_protocol: f.app.into(),
                    ..Default::default()
                }),
                update_seq: i as u32,
                ..Default::default()
            }
        })
        .collect()
}

const FLOWS: &[Flow] = &[
    Flow {
        id: 1,
        client: "10.0.0.1",
        server: "93.184.216.34",
        sport: 40001,
        dport: 443,
        l4: 6,
        app: "TLS.Google",
        vlan: 0,
        iface: "eth0",
        steps: &[(1000, 5000), (2000, 30000)],
        ended: true,
        first_seen_s: 0,
    },
    Flow {
        id: 2,
        client: "10.0.0.1",
        server: "10.0.0.53",
        sport: 50000,
        dport: 53,
        l4: 17,
        app: "DNS",
        vlan: 0,
        iface: "eth0",
        steps: &[(80, 160)],
        ended: true,
        first_seen_s: 1,
    },
    Flow {
        id: 3,
        client: "10.0.0.2",
        server: "93.184.216.34",
        sport: 40002,
        dport: 80,
        l4: 6,
        app: "HTTP",
        vlan: 0,
        iface: "eth0",
        steps: &[(500, 700), (900, 9000)],
        ended: false,
        first_seen_s: 2,
    },
    Flow {
        id: 4,
        client: "10.0.0.3",
        server: "10.0.0.1",
        sport: 40003,
        dport: 22,
        l4: 6,
        app: "SSH",
        vlan: 0,
        iface: "eth1",
        steps: &[(3000, 3000)],
        ended: false,
        first_seen_s: 3,
    },
    Flow {
        id: 5,
        client: "2001:db8::1",
        server: "2001:db8::2",
        sport: 0,
        dport: 0,
        l4: 58,
        app: "ICMPV6",
        vlan: 0,
        iface: "eth1",
        steps: &[(100, 100)],
        ended: true,
        first_seen_s: 4,
    },
    Flow {
        id: 6,
        client: "10.0.0.1",
        server: "10.0.0.53",
        sport: 50001,
        dport: 53,
        l4: 17,
        app: "DNS",
        vlan: 7,
        iface: "eth0",
        steps: &[(90, 180)],
        ended: true,
        first_seen_s: 5,
    },
];

/// Publishes each record as the sensor does: one batch per shard with client/server copies.
async fn publish_all(bus: &MemoryBus) -> u64 {
    let mut batches = 0;
    let steps = FLOWS.iter().map(|f| f.steps.len()).max().unwrap();
    for step in 0..steps {
        for f in FLOWS {
            let Some(r) = records(f).into_iter().nth(step) else {
                continue;
            };
            let (c, s) = (r.client_addr().unwrap(), r.server_addr().unwrap());
            let (cs, ss) = (shard_of(c, DEFAULT_SHARDS), shard_of(s, DEFAULT_SHARDS));
            let mut copies = vec![(
                cs,
                FlowRecord {
                    role: Role::Client as i32,
                    ..r.clone()
                },
            )];
            if cs != ss {
                copies.push((
                    ss,
                    FlowRecord {
                        role: Role::Server as i32,
                        ..r
                    },
                ));
            }
            for (shard, rec) in copies {
                let batch = FlowBatch {
                    records: vec![rec],
                    sensor: "node-a".into(),
                    seq: batches,
                };
                bus.publish(flows_subject(shard), batch.to_bytes())
                    .await
                    .unwrap();
                batches += 1;
            }
        }
    }
    batches
}

struct Fixture {
    base: String,
    http: reqwest::Client,
    _shutdown: watch::Sender<bool>,
    engine: netwarden_engine::Engine,
}

impl Fixture {
    async fn start() -> Self {
        let bus = MemoryBus::default();
        let (tx, rx) = watch::channel(false);
        let dyn_bus: Arc<dyn Bus> = Arc::new(bus.clone());
        let launched = common::launch_engine(dyn_bus, rx).await;
        let batches = publish_all(&bus).await;
        // Garbage on a flow subject: counted, not fatal.
        bus.publish(
            flows_subject(3),
            bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x01]),
        )
        .await
        .unwrap();
        let engine = launched.engine.clone();
        common::wait_for("ingest to catch up", Duration::from_secs(30), async || {
            engine.batches_ingested() >= batches && engine.status.decode_errors() >= 1
        })
        .await;
        Self {
            base: format!("http://{}", launched.addr),
            http: reqwest::Client::new(),
            _shutdown: tx,
            engine,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, Value) {
        common::get_json(&self.http, &format!("{}{path}", self.base)).await
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, ctype, json) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {json}");
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        json
    }

    async fn problem(&self, path: &str, want: u16) -> Value {
        let (status, ctype, json) = self.get(path).await;
        assert_eq!(status, want, "{path}: {json}");
        assert_eq!(ctype, "application/problem+json", "{path}");
        assert_eq!(json["status"], want, "{path}: {json}");
        assert!(
            json["title"].is_string() && json["type"].is_string() && json["detail"].is_string(),
            "{json}"
        );
        json
    }
}

fn flow_ids(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["flow_id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn flows_route_filters_sorts_and_pages() {
    let fx = Fixture::start().await;
    let all = fx.ok("/api/v2/flows").await;
    assert_eq!(
        (
            all["total"].as_u64(),
            all["offset"].as_u64(),
            all["limit"].as_u64()
        ),
        (Some(6), Some(0), Some(100))
    );
    // Default sort: most bytes first.
    assert_eq!(flow_ids(&all), vec![1, 3, 4, 6, 2, 5]);
    let first = &all["items"][0];
    assert_eq!(first["client_ip"], "10.0.0.1");
    assert_eq!(first["server_ip"], "93.184.216.34");
    assert_eq!(first["update"], "final");
    assert_eq!(first["c2s"]["bytes"], 2000);
    assert_eq!(first["s2c"]["bytes"], 30000);
    assert_eq!(first["l7"]["app_protocol"], "TLS.Google");
    assert_eq!(first["observation_point"]["interface"], "eth0");

    let cases: &[(&str, &[u64])] = &[
        ("host=10.0.0.1", &[1, 4, 6, 2]),
        ("host=93.184.216.34&sort=first_seen", &[1, 3]),
        ("port=53&sort=first_seen", &[2, 6]),
        ("protocol=udp&sort=first_seen", &[2, 6]),
        ("protocol=6&sort=-first_seen", &[4, 3, 1]),
        ("protocol=icmpv6", &[5]),
        ("l7=google", &[1]),
        ("l7=dns&protocol=tcp", &[]),
        ("state=active", &[3, 4]),
        ("state=ended&sort=bytes", &[5, 2, 6, 1]),
        ("vlan=7", &[6]),
        ("observation_point=node-a/eth1&sort=first_seen", &[4, 5]),
        ("observation_point=node-a&limit=2", &[1, 3]),
        ("host=2001:db8::2", &[5]),
        ("sort=duration&limit=2", &[2, 4]),
        ("sort=-packets&offset=1&limit=2", &[3, 4]),
    ];
    for (query, want) in cases {
        let page = fx.ok(&format!("/api/v2/flows?{query}")).await;
        assert_eq!(flow_ids(&page), *want, "{query}");
    }
    let page = fx.ok("/api/v2/flows?offset=4&limit=5").await;
    assert_eq!(
        (page["total"].as_u64(), flow_ids(&page).len()),
        (Some(6), 2)
    );
    let page = fx.ok("/api/v2/flows?offset=100").await;
    assert_eq!(
        (page["total"].as_u64(), flow_ids(&page).len()),
        (Some(6), 0)
    );
    let page = fx.ok("/api/v2/flows?host=10.0.0.1&limit=1").await;
    assert_eq!(page["total"], 4);
}

#[tokio::test]
async fn bad_requests_are_problems() {
    let fx = Fixture::start().await;
    for path in [
        "/api/v2/flows?port=http",
        "/api/v2/flows?port=70000",
        "/api/v2/flows?host=10.0.0",
        "/api/v2/flows?protocol=carrier-pigeon",
        "/api/v2/flows?state=sleeping",
        "/api/v2/flows?sort=colour",
        "/api/v2/flows?limit=0",
        "/api/v2/flows?limit=1001",
        "/api/v2/flows?offset=-3",
        "/api/v2/flows?colour=blue",
        "/api/v2/hosts?sort=-duration",
        "/api/v2/hosts?vlan=x",
        "/api/v2/hosts/not-an-address",
    ] {
        let p = fx.problem(path, 400).await;
        assert_eq!(p["title"], "Bad Request");
    }
    let p = fx.problem("/api/v2/flows?port=http", 400).await;
    assert!(p["detail"].as_str().unwrap().contains("`port`"), "{p}");
    let p = fx.problem("/api/v2/nothing-here", 404).await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v2/nothing-here"),
        "{p}"
    );
    fx.problem("/api/v2/hosts/10.9.9.9", 404).await;
    fx.problem("/api/v2/hosts/10.0.0.1?vlan=99", 404).await;
    let resp = fx
        .http
        .post(format!("{}/api/v2/flows", fx.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn hosts_routes_sum_their_flows() {
    let fx = Fixture::start().await;
    let page = fx.ok("/api/v2/hosts?limit=1000").await;
    // 10.0.0.1 and 10.0.0.53 on VLANs 0 and 7 are four hosts; 7 addresses on VLAN 0, 2 on VLAN 7.
    assert_eq!(page["total"], 9);
    let items = page["items"].as_array().unwrap();
    let bytes: Vec<u64> = items
        .iter()
        .map(|h| h["bytes_sent"].as_u64().unwrap() + h["bytes_rcvd"].as_u64().unwrap())
        .collect();
    assert!(
        bytes.windows(2).all(|w| w[0] >= w[1]),
        "default sort is -bytes: {bytes:?}"
    );
    // Every flow's bytes are counted once at each end.
    let flow_bytes: u64 = FLOWS
        .iter()
        .map(|f| f.steps.last().map(|s| s.0 + s.1).unwrap())
        .sum();
    assert_eq!(bytes.iter().sum::<u64>(), 2 * flow_bytes);

    let h = fx.ok("/api/v2/hosts/10.0.0.1").await;
    assert_eq!(h["ip"], "10.0.0.1");
    assert_eq!(h["vlan"], 0);
    assert_eq!(h["bytes_sent"], 2000 + 80 + 3000);
    assert_eq!(h["bytes_rcvd"], 30000 + 160 + 3000);
    assert_eq!(
        (h["flows_as_client"].as_u64(), h["flows_as_server"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (
            h["active_flows_as_client"].as_u64(),
            h["active_flows_as_server"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(h["top_peers"][0]["ip"], "93.184.216.34");
    assert_eq!(h["top_peers"][0]["bytes"], 32000);
    assert_eq!(h["protocols"][0]["name"], "TLS.Google");
    assert_eq!(h["l7_protocols"][0], "TLS.Google");
    let mut points: Vec<_> = h["observation_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    points.sort_unstable();
    assert_eq!(points, vec!["node-a/eth0", "node-a/eth1"]);

    let h7 = fx.ok("/api/v2/hosts/10.0.0.1?vlan=7").await;
    assert_eq!(
        (h7["vlan"].as_u64(), h7["bytes_sent"].as_u64()),
        (Some(7), Some(90))
    );

    let by_prefix = fx.ok("/api/v2/hosts?q=10.0.0.5&sort=flows").await;
    let ips: Vec<_> = by_prefix["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ips, vec!["10.0.0.53", "10.0.0.53"]);
    let v7 = fx.ok("/api/v2/hosts?vlan=7").await;
    assert_eq!(v7["total"], 2);
    let v6 = fx.ok("/api/v2/hosts?q=2001:DB8").await;
    assert_eq!(v6["total"], 2);
    let paged = fx
        .ok("/api/v2/hosts?sort=-last_seen&offset=8&limit=5")
        .await;
    assert_eq!(
        (
            paged["total"].as_u64(),
            paged["items"].as_array().unwrap().len()
        ),
        (Some(9), 1)
    );
    let ip: IpAddr = paged["items"][0]["ip"].as_str().unwrap().parse().unwrap();
    assert!(ip.is_ipv4() || ip.is_ipv6());
}

#[tokio::test]
async fn observation_points_health_and_metrics() {
    let fx = Fixture::start().await;
    let points = fx.ok("/api/v2/observation-points").await;
    assert_eq!(points["total"], 2);
    let eth0 = &points["items"][0];
    assert_eq!(eth0["name"], "node-a/eth0");
    assert_eq!(eth0["sensor"], "node-a");
    assert_eq!(eth0["flows"], 4);
    assert_eq!(
        eth0["bytes"],
        2000 + 30000 + 80 + 160 + 900 + 9000 + 90 + 180
    );
    assert_eq!(eth0["hosts"], 6);

    assert_eq!(fx.ok("/healthz").await["status"], "ok");
    let ready = fx.ok("/readyz").await;
    assert_eq!(
        (ready["ready"].as_bool(), ready["bus"].as_str()),
        (Some(true), Some("memory"))
    );

    let resp = fx
        .http
        .get(format!("{}/metrics", fx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    let batches = fx.engine.batches_ingested();
    assert!(
        text.contains(&format!(
            "netwarden_engine_batches_ingested_total {batches}"
        )),
        "{text}"
    );
    assert!(
        text.contains("netwarden_engine_decode_errors_total 1"),
        "{text}"
    );
    assert!(text.contains("netwarden_engine_hosts 9"), "{text}");
    assert!(text.contains("netwarden_engine_active_flows 2"), "{text}");
    assert!(
        text.contains("netwarden_engine_ingest_lag_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"netwarden_engine_http_requests_total{route="/readyz",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
}
