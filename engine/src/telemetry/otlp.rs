//! OTLP export: the business metrics as OTLP metrics and alerts as OTLP log records, over gRPC
//! (tonic, `opentelemetry-proto`'s generated client) or HTTP/protobuf (`POST /v1/metrics`,
//! `/v1/logs`). Every request is bounded by a timeout: a receiver that hangs costs one timeout
//! per interval, never a stalled engine.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::snapshot::{Family, Kind, clean, severity_name};
use netwarden_api::alert::Severity;

use crate::alerts::store::StoredAlert;

/// OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    #[value(alias = "http/protobuf")]
    Http,
}

/// A string attribute.
pub fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "netwarden-engine".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

/// Wall clock in ns since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Clamps a counter into OTLP's signed integer.
fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The metrics request of `families`, stamped `now` (cumulative sums start at `start`).
pub fn metrics_request(
    resource: &[KeyValue],
    families: &[Family],
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter(|f| !f.points.is_empty())
        .map(|f| {
            let data_points: Vec<NumberDataPoint> = f
                .points
                .iter()
                .map(|(labels, v)| NumberDataPoint {
                    attributes: labels.iter().map(|(k, v)| kv(k, v.clone())).collect(),
                    start_time_unix_nano: if f.kind == Kind::Counter { start } else { 0 },
                    time_unix_nano: now,
                    value: Some(number_data_point::Value::AsInt(as_i64(*v))),
                    ..NumberDataPoint::default()
                })
                .collect();
            let data = match f.kind {
                Kind::Counter => metric::Data::Sum(Sum {
                    data_points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                Kind::Gauge => metric::Data::Gauge(Gauge { data_points }),
            };
            Metric {
                name: format!("netwarden.{}", f.name),
                description: f.help.to_owned(),
                unit: f.unit.to_owned(),
                data: Some(data),
                ..Metric::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// OTLP severity of an alert severity.
pub const fn severity_number(s: Severity) -> SeverityNumber {
    match s {
        Severity::None => SeverityNumber::Trace,
        Severity::Info => SeverityNumber::Info,
        Severity::Notice => SeverityNumber::Info2,
        Severity::Warning => SeverityNumber::Warn,
        Severity::Error => SeverityNumber::Error,
        Severity::Critical => SeverityNumber::Fatal,
        Severity::Emergency => SeverityNumber::Fatal4,
    }
}

/// One alert as a log record: severity, the message as body, and its attributes (type, id,
/// entity, score, attacker and victim when the alert names them).
pub fn log_record(row: &StoredAlert, observed: u64) -> LogRecord {
    let a = &row.alert;
    let mut attributes = vec![
        kv("netwarden.alert.type", clean(&a.alert_type)),
        kv_int("netwarden.alert.id", as_i64(row.id)),
        kv("netwarden.alert.key", clean(&a.key)),
        kv("netwarden.alert.entity", a.entity.as_str()),
        kv("netwarden.alert.entity_value", clean(&a.entity_value)),
        kv("netwarden.alert.severity", severity_name(a.severity)),
        kv_int("netwarden.alert.score", i64::from(a.score)),
        kv_int("netwarden.alert.client_score", i64::from(a.client_score)),
        kv_int("netwarden.alert.server_score", i64::from(a.server_score)),
        kv_int("netwarden.alert.count", as_i64(a.count)),
    ];
    if !a.observation_point.is_empty() {
        attributes.push(kv(
            "netwarden.observation_point",
            clean(&a.observation_point),
        ));
    }
    let (client, server) = a
        .flow
        .as_ref()
        .map_or((None, None), |f| (f.client_addr(), f.server_addr()));
    let r = a.roles;
    for (flag, addr, key) in [
        (r.client_attacker, client, "netwarden.alert.attacker"),
        (r.server_attacker, server, "netwarden.alert.attacker"),
        (r.client_victim, client, "netwarden.alert.victim"),
        (r.server_victim, server, "netwarden.alert.victim"),
    ] {
        if flag {
            // A host alert names its host as the entity, not through a flow.
            let who = addr.map_or_else(|| clean(&a.entity_value), |ip| ip.to_string());
            if !attributes.iter().any(|k| k.key == key) {
                attributes.push(kv(key, who));
            }
        }
    }
    if let Some(f) = &a.flow {
        if let Some(c) = client {
            attributes.push(kv("client.address", c.to_string()));
        }
        if let Some(s) = server {
            attributes.push(kv("server.address", s.to_string()));
        }
        attributes.push(kv_int("client.port", i64::from(f.client_port)));
        attributes.push(kv_int("server.port", i64::from(f.server_port)));
    }
    LogRecord {
        time_unix_nano: a.last_seen_ns,
        observed_time_unix_nano: observed,
        severity_number: severity_number(a.severity) as i32,
        severity_text: severity_name(a.severity).to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(clean_body(&a.message))),
        }),
        attributes,
        event_name: "netwarden.alert".to_owned(),
        ..LogRecord::default()
    }
}

/// Messages are bounded too (a message may quote names from the wire).
fn clean_body(s: &str) -> String {
    s.chars()
        .take(2048)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The logs request of `records`.
pub fn logs_request(resource: &[KeyValue], records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The receiver did not answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection or protocol failure.
    #[error("{0}")]
    Transport(String),
    /// The receiver answered with an error status.
    #[error("receiver answered {0}")]
    Status(String),
}

/// A client of one OTLP receiver.
pub enum Client {
    /// gRPC over a lazily connected tonic channel.
    Grpc {
        /// Metrics service.
        metrics: Box<MetricsServiceClient<tonic::transport::Channel>>,
        /// Logs service.
        logs: Box<LogsServiceClient<tonic::transport::Channel>>,
        /// Per-request timeout.
        timeout: Duration,
    },
    /// HTTP/1.1 POST of protobuf bodies.
    Http {
        /// `host:port` to connect to.
        authority: String,
        /// Path prefix (the endpoint's path, without a trailing `/`).
        base: String,
        /// Per-request timeout (connect + send + answer).
        timeout: Duration,
    },
}

impl Client {
    /// A client of `endpoint` (`http://host:port[/path]`; TLS is left to a local collector).
    pub fn new(endpoint: &str, protocol: Protocol, timeout: Duration) -> Result<Self, String> {
        let url = url::Url::parse(endpoint).map_err(|e| format!("--otlp-endpoint: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "--otlp-endpoint: scheme {} is not supported (use http:// to a collector; TLS \
                 belongs to the collector's exporters)",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| "--otlp-endpoint: no host".to_owned())?;
        let port = url.port_or_known_default().unwrap_or(match protocol {
            Protocol::Grpc => 4317,
            Protocol::Http => 4318,
        });
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match protocol {
            Protocol::Grpc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
                        .map_err(|e| format!("--otlp-endpoint: {e}"))?
                        .connect_timeout(timeout)
                        .timeout(timeout)
                        .connect_lazy();
                Ok(Self::Grpc {
                    metrics: Box::new(MetricsServiceClient::new(channel.clone())),
                    logs: Box::new(LogsServiceClient::new(channel)),
                    timeout,
                })
            }
            Protocol::Http => Ok(Self::Http {
                authority,
                base: url.path().trim_end_matches('/').to_owned(),
                timeout,
            }),
        }
    }

    /// Sends metrics.
    pub async fn metrics(&mut self, req: ExportMetricsServiceRequest) -> Result<(), ExportError> {
        match self {
            Self::Grpc {
                metrics, timeout, ..
            } => {
                bounded(*timeout, async {
                    metrics
                        .export(req)
                        .await
                        .map(drop)
                        .map_err(|s| grpc_error(&s))
                })
                .await
            }
            Self::Http {
                authority,
                base,
                timeout,
            } => {
                let path = format!("{base}/v1/metrics");
                bounded(*timeout, post(authority, &path, req.encode_to_vec())).await
            }
        }
    }

    /// Sends log records.
    pub async fn logs(&mut self, req: ExportLogsServiceRequest) -> Result<(), ExportError> {
        match self {
            Self::Grpc { logs, timeout, .. } => {
                bounded(*timeout, async {
                    logs.export(req).await.map(drop).map_err(|s| grpc_error(&s))
                })
                .await
            }
            Self::Http {
                authority,
                base,
                timeout,
            } => {
                let path = format!("{base}/v1/logs");
                bounded(*timeout, post(authority, &path, req.encode_to_vec())).await
            }
        }
    }
}

fn grpc_error(s: &tonic::Status) -> ExportError {
    if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown {
        ExportError::Transport(clean(s.message()))
    } else {
        ExportError::Status(format!("{:?}", s.code()))
    }
}

async fn bounded(
    timeout: Duration,
    f: impl Future<Output = Result<(), ExportError>>,
) -> Result<(), ExportError> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(ExportError::Timeout))
}

async fn post(authority: &str, path: &str, body: Vec<u8>) -> Result<(), ExportError> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| ExportError::Transport(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ExportError::Transport(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ExportError::Transport(e.to_string()))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ExportError::Transport(e.to_string()))?;
        let status = resp.status();
        // Read (and drop) a bounded answer so the connection ends cleanly.
        let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Status(status.as_u16().to_string()))
        }
    }
    .await;
    conn.abort();
    result
}

/// Alerts waiting to be sent: bounded, the oldest dropped first when full.
#[derive(Debug)]
pub struct LogQueue {
    rows: VecDeque<LogRecord>,
    cap: usize,
    /// Highest alert id taken from the store.
    pub cursor: u64,
}

impl LogQueue {
    /// An empty queue of at most `cap` records.
    pub fn new(cap: usize) -> Self {
        Self {
            rows: VecDeque::new(),
            cap: cap.max(1),
            cursor: 0,
        }
    }

    /// Adds a record; returns how many were dropped to make room.
    pub fn push(&mut self, r: LogRecord) -> u64 {
        let mut dropped = 0;
        while self.rows.len() >= self.cap {
            self.rows.pop_front();
            dropped += 1;
        }
        self.rows.push_back(r);
        dropped
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Up to `n` records from the front (not removed until [`Self::commit`]).
    pub fn peek(&self, n: usize) -> Vec<LogRecord> {
        self.rows.iter().take(n).cloned().collect()
    }

    /// Removes `n` records from the front (sent).
    pub fn commit(&mut self, n: usize) {
        let n = n.min(self.rows.len());
        self.rows.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_drops_the_oldest() {
        let mut q = LogQueue::new(2);
        let r = |n: u64| LogRecord {
            time_unix_nano: n,
            ..LogRecord::default()
        };
        assert_eq!(q.push(r(1)), 0);
        assert_eq!(q.push(r(2)), 0);
        assert_eq!(q.push(r(3)), 1);
        let front: Vec<u64> = q.peek(5).iter().map(|r| r.time_unix_nano).collect();
        assert_eq!(front, vec![2, 3]);
        q.commit(1);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn endpoint_must_be_plain_http() {
        let e = Client::new(
            "https://collector:4317",
            Protocol::Http,
            Duration::from_secs(1),
        );
        assert!(e.is_err());
        assert!(Client::new("not a url", Protocol::Http, Duration::from_secs(1)).is_err());
        match Client::new(
            "http://[::1]:4318/otlp/",
            Protocol::Http,
            Duration::from_secs(1),
        ) {
            Ok(Client::Http {
                authority, base, ..
            }) => {
                assert_eq!(authority, "[::1]:4318");
                assert_eq!(base, "/otlp");
            }
            _ => panic!("expected an HTTP client"),
        }
    }

    #[test]
    fn counters_are_monotonic_sums_and_gauges_gauges() {
        let families = vec![
            Family {
                name: "host.bytes",
                help: "h",
                kind: Kind::Counter,
                unit: "By",
                points: vec![(vec![("ip", "10.0.0.1".to_owned())], 7)],
            },
            Family {
                name: "alerts",
                help: "a",
                kind: Kind::Gauge,
                unit: "",
                points: vec![(Vec::new(), 2)],
            },
        ];
        let req = metrics_request(&[kv("service.name", "x")], &families, 1, 2);
        let m = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(m[0].name, "netwarden.host.bytes");
        assert!(
            matches!(&m[0].data, Some(metric::Data::Sum(s)) if s.is_monotonic && s.data_points[0].value == Some(number_data_point::Value::AsInt(7)))
        );
        assert!(matches!(&m[1].data, Some(metric::Data::Gauge(_))));
    }
}
