//! How long the UI's server takes to render its heaviest pages from a large engine: 10,000
//! hosts and 100,000 flow alerts (every flow carries a risk, so the alerts, scores and score
//! contributions are the engine's own, not hand-made rows). Measured, not asserted:
//!
//!   cargo test -p netwarden-engine --release --test ui_bench -- --ignored --nocapture
//!
//! Results go to docs/PERFORMANCE.md ("Web UI").
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use netwarden_api::bus::MemoryBus;
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowUpdate, ObservationPoint, ip_to_bytes};
use netwarden_engine::Engine;
use netwarden_engine::api::ApiState;
use netwarden_engine::auth::Auth;
use netwarden_engine::metrics::EngineMetrics;
use netwarden_engine::state::StateConfig;
use netwarden_engine::ui::{UiHandle, routes};
use tower::ServiceExt as _;

const S: u64 = 1_000_000_000;
const HOSTS: u32 = 10_000;
const SERVERS: u32 = 100;
const FLOWS: u32 = 100_000;

fn record(i: u32, risk: u16) -> FlowRecord {
    let clients = HOSTS - SERVERS;
    let client = std::net::Ipv4Addr::from(0x0a00_0000 + (i % clients));
    let server = std::net::Ipv4Addr::from(0xc0a8_0000 + (i % SERVERS));
    let t = 1_764_230_400 * S + u64::from(i) * 20_000_000;
    let mut r = FlowRecord {
        flow_id: u64::from(i),
        observation_point: Some(ObservationPoint {
            sensor: "bench".into(),
            interface: "eth0".into(),
            ..Default::default()
        }),
        client_ip: ip_to_bytes(client.into()),
        server_ip: ip_to_bytes(server.into()),
        client_port: 10_000 + (i % 50_000),
        server_port: 443,
        l4_proto: 6,
        first_seen_ns: t,
        last_seen_ns: t + S,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 10,
            bytes: 1_000,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 10,
            bytes: 5_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    r.set_risk(risk, Some("bench".into()));
    r
}

/// Median and maximum of `n` GETs of `path`.
async fn time(
    app: &axum::Router,
    cookie: &str,
    path: &str,
    n: usize,
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let req = Request::get(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        times.push(t.elapsed());
        size = body.len();
    }
    times.sort();
    (times[n / 2], times[n - 1], size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (docs/PERFORMANCE.md); run with --release --ignored --nocapture"]
async fn render_times_with_10k_hosts_and_100k_alerts() {
    let engine = Engine::new(
        &StateConfig {
            max_hosts: 20_000,
            ..StateConfig::default()
        },
        Arc::new(EngineMetrics::default()),
    );
    let risk = netwarden_api::risk::by_key("tls_selfsigned_certificate")
        .unwrap()
        .id;
    let t = Instant::now();
    {
        let mut st = engine.state.write().unwrap();
        for chunk in (0..FLOWS).collect::<Vec<_>>().chunks(1000) {
            st.apply_batch(chunk.iter().map(|i| record(*i, risk)).collect());
        }
        eprintln!(
            "loaded {} hosts, {} alerts, {} flows in {:?}",
            st.hosts.len(),
            st.analysis.store.len(),
            st.totals.flows,
            t.elapsed()
        );
        assert_eq!(st.hosts.len(), HOSTS as usize);
        assert!(
            st.analysis.store.len() >= 99_000,
            "{}",
            st.analysis.store.len()
        );
    }
    let app = routes(
        ApiState {
            engine: engine.clone(),
            bus: Arc::new(MemoryBus::default()),
            registry: Arc::new(prometheus_client::registry::Registry::default()),
        },
        Arc::new(Auth::open()),
        UiHandle::default(),
    );
    // Open mode: the first visit makes the session.
    let resp = app
        .clone()
        .oneshot(Request::get("/ui/points").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let paths = [
        "/",
        "/ui/overview.json",
        "/ui/alerts",
        "/ui/alerts?severity=warning&state=past&offset=50000",
        "/ui/alerts?host=10.0.0.7",
        "/ui/hosts",
        "/ui/hosts/10.0.0.7",
        "/ui/flows",
    ];
    println!("| page | median | max | HTML/JSON size |");
    println!("| --- | --- | --- | --- |");
    for p in paths {
        let (median, max, size) = time(&app, &cookie, p, 15).await;
        println!(
            "| `{p}` | {:.1} ms | {:.1} ms | {} KB |",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            size / 1000
        );
    }
}
