//! Telemetry end to end with the real binary on the demo capture (which raises alerts):
//! `/metrics` parsed by a Prometheus text-format parser agrees with `/api/v2`; OTLP over gRPC
//! (a tonic server from `opentelemetry-proto`) and over HTTP/protobuf (an axum endpoint
//! decoding the bodies) receives the same numbers with the Kubernetes resource attributes and
//! every alert as a log record; a receiver that never answers does not stall the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use serde_json::Value;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_netwarden-engine");

/// The engine process, killed when the test ends however it ends.
struct Engine {
    child: std::process::Child,
    addr: String,
    served: std::sync::mpsc::Receiver<()>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Engine {
    /// `standalone --pcap demo.pcap` with `args`; returns once the API address is known.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["standalone", "--pcap"])
            .arg(netwarden_testkit::testdata("demo/demo.pcap"))
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(args)
            .env("POD_NAME", "engine-0")
            .env("POD_NAMESPACE", "netwarden")
            .env("NODE_NAME", "node-a")
            .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
            .env_remove("OTEL_SERVICE_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (served_tx, served) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("API on http://") {
                    let _ = addr_tx.send(a.trim().to_owned());
                }
                if line.starts_with("serving http://") {
                    let _ = served_tx.send(());
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the engine printed no API address");
        Self {
            child,
            addr,
            served,
        }
    }

    /// Waits until the capture is applied and the report printed.
    fn wait_served(&self) {
        self.served
            .recv_timeout(Duration::from_secs(120))
            .expect("the engine did not finish the capture");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then the exit status (bounded wait: a hang fails the test).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the engine did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn get_json(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// `ip|vlan`, how the tests key hosts.
fn host_key(ip: &str, vlan: &str) -> String {
    format!("{ip}|{vlan}")
}

/// Every host (paged), by `ip|vlan`.
async fn api_hosts(e: &Engine) -> BTreeMap<String, Value> {
    let mut hosts = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = get_json(&e.url(&format!("/api/v2/hosts?limit=1000&offset={offset}"))).await;
        let items = page["items"].as_array().unwrap();
        for h in items {
            hosts.insert(
                host_key(h["ip"].as_str().unwrap(), &h["vlan"].to_string()),
                h.clone(),
            );
        }
        offset += items.len();
        if items.is_empty() || offset >= page["total"].as_u64().unwrap() as usize {
            return hosts;
        }
    }
}

/// A host's score values from `/api/v2/hosts/{ip}/score` (`key`: `ip|vlan`).
async fn api_score(e: &Engine, key: &str) -> Value {
    let (ip, vlan) = key.split_once('|').unwrap();
    get_json(&e.url(&format!("/api/v2/hosts/{ip}/score?vlan={vlan}"))).await["score"].clone()
}

/// The expected top `n`: by score total, then bytes, then address.
async fn expected_top(e: &Engine, hosts: &BTreeMap<String, Value>, n: usize) -> BTreeSet<String> {
    let mut ranked = Vec::new();
    for (ip, h) in hosts {
        let score = api_score(e, ip).await["total"].as_u64().unwrap();
        let bytes = h["bytes_sent"].as_u64().unwrap() + h["bytes_rcvd"].as_u64().unwrap();
        ranked.push((score, bytes, ip.clone()));
    }
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    // Ties at the cut are allowed either way: keep only hosts strictly inside it.
    let cut = ranked.get(n).map(|r| (r.0, r.1));
    ranked
        .into_iter()
        .take(n)
        .filter(|r| Some((r.0, r.1)) != cut)
        .map(|r| r.2)
        .collect()
}

fn label<'a>(s: &'a prometheus_parse::Sample, k: &str) -> &'a str {
    s.labels.get(k).unwrap_or("")
}

fn value(s: &prometheus_parse::Sample) -> u64 {
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v as u64,
        _ => panic!("unexpected type for {}", s.metric),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_carries_business_metrics_that_agree_with_the_api() {
    const TOP: usize = 5;
    let e = Engine::start(&["--metrics-top-hosts", &TOP.to_string()]);
    e.wait_served();
    let text = reqwest::get(e.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let of = |name: &str| -> Vec<&prometheus_parse::Sample> {
        scrape.samples.iter().filter(|s| s.metric == name).collect()
    };
    // The pipeline's own metrics are still there, beside the business ones.
    let engine_hosts = value(of("netwarden_engine_hosts")[0]);
    let hosts = api_hosts(&e).await;
    assert_eq!(engine_hosts, hosts.len() as u64);
    assert_eq!(value(of("netwarden_hosts_known")[0]), hosts.len() as u64);
    assert!(
        hosts.len() > TOP,
        "the capture has more hosts than the top N"
    );

    // Hosts: exactly the top N, every value as the API has it.
    let sent = of("netwarden_host_bytes_total");
    let exported: BTreeSet<String> = sent
        .iter()
        .map(|s| host_key(label(s, "ip"), label(s, "vlan")))
        .collect();
    assert_eq!(exported.len(), TOP, "bounded to the top N");
    assert_eq!(value(of("netwarden_hosts_exported")[0]), TOP as u64);
    let expected = expected_top(&e, &hosts, TOP).await;
    assert!(
        expected.is_subset(&exported),
        "top by score then bytes: {expected:?} in {exported:?}"
    );
    let mut scored = 0;
    for ip in &exported {
        let h = &hosts[ip];
        let score = api_score(&e, ip).await;
        for s in scrape
            .samples
            .iter()
            .filter(|s| host_key(label(s, "ip"), label(s, "vlan")) == *ip)
        {
            let want = match (s.metric.as_str(), label(s, "direction"), label(s, "role")) {
                ("netwarden_host_bytes_total", "sent", _) => h["bytes_sent"].clone(),
                ("netwarden_host_bytes_total", "rcvd", _) => h["bytes_rcvd"].clone(),
                ("netwarden_host_packets_total", "sent", _) => h["packets_sent"].clone(),
                ("netwarden_host_packets_total", "rcvd", _) => h["packets_rcvd"].clone(),
                ("netwarden_host_flows_total", _, "client") => h["flows_as_client"].clone(),
                ("netwarden_host_flows_total", _, "server") => h["flows_as_server"].clone(),
                ("netwarden_host_score", _, _) => {
                    score[format!("{}_{}", label(s, "side"), label(s, "kind"))].clone()
                }
                (other, ..) => panic!("unexpected host series {other}"),
            };
            assert_eq!(Some(value(s)), want.as_u64(), "{} {:?}", s.metric, s.labels);
        }
        scored += u64::from(score["total"].as_u64().unwrap() > 0);
    }
    assert!(scored > 0, "the demo capture scores some hosts");

    // Observation points and interfaces.
    let points = get_json(&e.url("/api/v2/observation-points?limit=1000")).await;
    let points = points["items"].as_array().unwrap();
    assert!(!points.is_empty());
    let mut by_interface: BTreeMap<(String, String), u64> = BTreeMap::new();
    for p in points {
        let name = p["name"].as_str().unwrap();
        let s = of("netwarden_point_bytes_total")
            .into_iter()
            .find(|s| label(s, "point") == name)
            .unwrap_or_else(|| panic!("no series for point {name}"));
        assert_eq!(Some(value(s)), p["bytes"].as_u64());
        let s = of("netwarden_point_flows_total")
            .into_iter()
            .find(|s| label(s, "point") == name)
            .unwrap();
        assert_eq!(Some(value(s)), p["flows"].as_u64());
        *by_interface
            .entry((
                p["sensor"].as_str().unwrap().to_owned(),
                p["interface"].as_str().unwrap().to_owned(),
            ))
            .or_default() += p["bytes"].as_u64().unwrap();
    }
    for ((sensor, interface), bytes) in &by_interface {
        let s = of("netwarden_interface_bytes_total")
            .into_iter()
            .find(|s| label(s, "sensor") == sensor && label(s, "interface") == interface)
            .unwrap();
        assert_eq!(value(s), *bytes);
    }

    // Alerts by type and severity, as the summary counts them.
    let summary = get_json(&e.url("/api/v2/alerts/summary")).await;
    assert!(summary["total"].as_u64().unwrap() > 0);
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, u64> = BTreeMap::new();
    for s in of("netwarden_alerts") {
        *by_type.entry(label(s, "type").to_owned()).or_default() += value(s);
        *by_severity
            .entry(label(s, "severity").to_owned())
            .or_default() += value(s);
    }
    let want: BTreeMap<String, u64> = serde_json::from_value(summary["by_type"].clone()).unwrap();
    assert_eq!(by_type, want);
    let want: BTreeMap<String, u64> =
        serde_json::from_value(summary["by_severity"].clone()).unwrap();
    assert_eq!(by_severity, want);
}

/// What a receiver got.
#[derive(Clone, Default)]
struct Received {
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .add_service(MetricsServiceServer::new(received.clone()))
        .add_service(LogsServiceServer::new(received.clone()));
    tokio::spawn(router.serve_with_incoming(tokio_stream(listener)));
    (format!("http://{addr}"), received)
}

/// The listener's connections as a stream (what tonic's server takes).
fn tokio_stream(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

async fn http_receiver() -> (String, Received) {
    let received = Received::default();
    let (m, l) = (received.clone(), received.clone());
    let app = axum::Router::new()
        .route(
            "/otlp/v1/metrics",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let m = m.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    let req = ExportMetricsServiceRequest::decode(body).unwrap();
                    m.metrics.lock().unwrap().push(req);
                    ExportMetricsServiceResponse::default().encode_to_vec()
                }
            }),
        )
        .route(
            "/otlp/v1/logs",
            axum::routing::post(move |body: Bytes| {
                let l = l.clone();
                async move {
                    let req = ExportLogsServiceRequest::decode(body).unwrap();
                    l.logs.lock().unwrap().push(req);
                    ExportLogsServiceResponse::default().encode_to_vec()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/otlp"), received)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> &'a str {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => s,
        other => panic!("attribute {key}: {other:?}"),
    }
}

fn attr_int(attrs: &[KeyValue], key: &str) -> i64 {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => *i,
        other => panic!("attribute {key}: {other:?}"),
    }
}

/// Runs the engine against `endpoint` and checks what `received` got against the API.
async fn otlp_round(protocol: &str, endpoint: &str, received: &Received) {
    const TOP: usize = 7;
    let mut e = Engine::start(&[
        "--otlp-endpoint",
        endpoint,
        "--otlp-protocol",
        protocol,
        "--otlp-interval",
        "3600",
        "--otlp-top-hosts",
        &TOP.to_string(),
    ]);
    e.wait_served();
    let hosts = api_hosts(&e).await;
    let summary = get_json(&e.url("/api/v2/alerts/summary")).await;
    let alerts = get_json(&e.url("/api/v2/alerts?limit=1000")).await;
    let metrics_text = reqwest::get(e.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut scores = BTreeMap::new();
    for ip in hosts.keys() {
        scores.insert(ip.clone(), api_score(&e, ip).await);
    }
    // Shutdown flushes once more: the last metrics and every alert arrive.
    let status = e.terminate();
    assert!(status.success(), "{status:?}");
    let scrape =
        prometheus_parse::Scrape::parse(metrics_text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let ok = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "netwarden_telemetry_otlp_exports_total"
                && label(s, "signal") == "metrics"
                && label(s, "result") == "ok"
        })
        .map_or(0, value);
    assert!(ok >= 1, "the export at start is counted as ok");

    let metrics = received.metrics.lock().unwrap().clone();
    let last = metrics.last().expect("no metrics arrived");
    let rm = &last.resource_metrics[0];
    let resource = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr_str(resource, "service.name"), "netwarden-engine");
    assert_eq!(attr_str(resource, "k8s.pod.name"), "engine-0");
    assert_eq!(attr_str(resource, "k8s.namespace.name"), "netwarden");
    assert_eq!(attr_str(resource, "k8s.node.name"), "node-a");
    assert_eq!(attr_str(resource, "deployment.environment"), "test");
    assert_eq!(attr_str(resource, "netwarden.mode"), "standalone");
    let all = &rm.scope_metrics[0].metrics;
    let find = |name: &str| {
        all.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let bytes = find("netwarden.host.bytes");
    assert_eq!(bytes.unit, "By");
    let Some(metric::Data::Sum(sum)) = &bytes.data else {
        panic!("host.bytes is a sum")
    };
    assert!(sum.is_monotonic);
    let mut exported = BTreeSet::new();
    for p in &sum.data_points {
        let ip = &host_key(
            attr_str(&p.attributes, "ip"),
            attr_str(&p.attributes, "vlan"),
        );
        exported.insert(ip.clone());
        let key = match attr_str(&p.attributes, "direction") {
            "sent" => "bytes_sent",
            _ => "bytes_rcvd",
        };
        assert_eq!(
            p.value,
            Some(number_data_point::Value::AsInt(
                hosts[ip][key].as_i64().unwrap()
            )),
            "{ip} {key}"
        );
    }
    assert_eq!(exported.len(), TOP.min(hosts.len()));
    let Some(metric::Data::Gauge(score)) = &find("netwarden.host.score").data else {
        panic!("host.score is a gauge")
    };
    for p in &score.data_points {
        let ip = &host_key(
            attr_str(&p.attributes, "ip"),
            attr_str(&p.attributes, "vlan"),
        );
        let key = format!(
            "{}_{}",
            attr_str(&p.attributes, "side"),
            attr_str(&p.attributes, "kind")
        );
        assert_eq!(
            p.value,
            Some(number_data_point::Value::AsInt(
                scores[ip][&key].as_i64().unwrap()
            )),
            "{ip} {key}"
        );
    }
    let Some(metric::Data::Gauge(counts)) = &find("netwarden.alerts").data else {
        panic!("alerts is a gauge")
    };
    let total: i64 = counts
        .data_points
        .iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(total, summary["total"].as_i64().unwrap());
    assert!(all.iter().any(|m| m.name == "netwarden.point.bytes"));
    assert!(all.iter().any(|m| m.name == "netwarden.interface.flows"));

    // Every alert exactly once as a log record, with its attributes.
    let logs = received.logs.lock().unwrap().clone();
    let records: Vec<_> = logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .inspect(|rl| {
            let res = &rl.resource.as_ref().unwrap().attributes;
            assert_eq!(attr_str(res, "k8s.pod.name"), "engine-0");
        })
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .collect();
    let by_id: BTreeMap<i64, _> = records
        .iter()
        .map(|r| (attr_int(&r.attributes, "netwarden.alert.id"), *r))
        .collect();
    assert_eq!(by_id.len(), records.len(), "each alert once");
    assert_eq!(records.len() as u64, summary["total"].as_u64().unwrap());
    let mut with_attacker = 0;
    for a in alerts["items"].as_array().unwrap() {
        let r = by_id[&a["id"].as_i64().unwrap()];
        assert_eq!(attr_str(&r.attributes, "netwarden.alert.type"), a["type"]);
        assert_eq!(r.severity_text, a["severity"].as_str().unwrap());
        let number = match r.severity_text.as_str() {
            "none" => 1,
            "info" => 9,
            "notice" => 10,
            "warning" => 13,
            "error" => 17,
            "critical" => 21,
            _ => 24,
        };
        assert_eq!(r.severity_number, number);
        assert_eq!(
            attr_int(&r.attributes, "netwarden.alert.score"),
            a["score"].as_i64().unwrap()
        );
        assert_eq!(
            attr_str(&r.attributes, "netwarden.alert.entity"),
            a["entity"]
        );
        match &r.body.as_ref().unwrap().value {
            Some(any_value::Value::StringValue(body)) => {
                assert_eq!(body, a["message"].as_str().unwrap());
            }
            other => panic!("body {other:?}"),
        }
        if a["roles"]["client_attacker"] == true || a["roles"]["server_attacker"] == true {
            with_attacker += 1;
            assert!(!attr_str(&r.attributes, "netwarden.alert.attacker").is_empty());
        }
        if a["roles"]["client_victim"] == true || a["roles"]["server_victim"] == true {
            assert!(!attr_str(&r.attributes, "netwarden.alert.victim").is_empty());
        }
    }
    assert!(with_attacker > 0, "some alert names an attacker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_receiver_gets_metrics_and_alert_logs() {
    let (endpoint, received) = grpc_receiver().await;
    otlp_round("grpc", &endpoint, &received).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_receiver_gets_metrics_and_alert_logs() {
    let (endpoint, received) = http_receiver().await;
    otlp_round("http", &endpoint, &received).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_stall_the_engine() {
    // Accepts connections and never answers (nor reads).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held: Arc<Mutex<Vec<tokio::net::TcpStream>>> = Arc::default();
    let h = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    for protocol in ["grpc", "http"] {
        let endpoint = format!("http://{addr}");
        let mut e = Engine::start(&[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            protocol,
            "--otlp-interval",
            "1",
            "--otlp-timeout",
            "1",
        ]);
        e.wait_served();
        // The API answers while exports hang, and the failures are counted.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let hosts = get_json(&e.url("/api/v2/hosts?limit=1")).await;
            assert!(hosts["total"].as_u64().unwrap() > 0);
            let text = reqwest::get(e.url("/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let scrape =
                prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
            let timeouts: u64 = scrape
                .samples
                .iter()
                .filter(|s| {
                    s.metric == "netwarden_telemetry_otlp_exports_total"
                        && label(s, "result") == "timeout"
                })
                .map(value)
                .sum();
            let failures = scrape
                .samples
                .iter()
                .find(|s| s.metric == "netwarden_telemetry_otlp_export_failures_total")
                .map_or(0, value);
            if timeouts >= 2 && failures >= timeouts {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{protocol}: export timeouts not counted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = e.terminate();
        assert!(status.success(), "{protocol}: {status:?}");
    }
    assert!(!held.lock().unwrap().is_empty(), "the engine did connect");
}

/// Measurement (`--ignored --nocapture`): snapshot and `/metrics` encoding cost with a large
/// host table. Prints the numbers; asserts only the bound on the series.
#[test]
#[ignore = "measurement"]
fn scrape_cost_with_many_hosts() {
    use netwarden_engine::telemetry::snapshot::Snapshot;
    const HOSTS: u32 = 100_000;
    let config = netwarden_engine::state::StateConfig {
        max_hosts: 2 * HOSTS as usize,
        max_active_flows: 2 * HOSTS as usize,
        ..Default::default()
    };
    let engine = netwarden_engine::Engine::new(
        &config,
        Arc::new(netwarden_engine::metrics::EngineMetrics::default()),
    );
    {
        let mut state = engine.state.write().unwrap();
        let records: Vec<_> = (0..HOSTS)
            .map(|i| {
                let client = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
                common::syn(
                    u64::from(i),
                    &client,
                    "192.168.0.1",
                    443,
                    1_700_000_000_000_000_000 + u64::from(i),
                )
            })
            .collect();
        state.apply_batch(records);
    }
    let telemetry = netwarden_engine::telemetry::Telemetry::new(
        netwarden_engine::telemetry::TelemetryArgs::default(),
        "run",
    )
    .unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.register(&mut registry);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let _exporter = rt.block_on(async { telemetry.start(engine.clone(), rx) });
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        let s = Snapshot::take(&engine, 100);
        assert_eq!(s.hosts.len(), 100);
    }
    let snapshot = t.elapsed() / n;
    let t = Instant::now();
    let mut text = String::new();
    for _ in 0..n {
        text.clear();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    }
    let scrape = t.elapsed() / n;
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 2_000, "{series} series");
    println!(
        "{HOSTS} hosts: snapshot (top 100) {snapshot:?}, full /metrics encode {scrape:?}, \
         {series} series, {} bytes",
        text.len()
    );
}
