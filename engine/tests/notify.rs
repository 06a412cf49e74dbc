//! Notifications delivered to real receivers on loopback: an HTTP server recording Slack,
//! Teams, Discord, Telegram and webhook requests, aiosmtpd (a real SMTP server) receiving the
//! email digest, and UDP/TCP syslog listeners parsing RFC 5424 and the ECS JSON. Also: retries
//! after a failure, the SSRF guard, secret resolution and rotation, filters and dedup, and a
//! hanging receiver that cannot stall the engine.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{KeyInit as _, Mac as _};
use netwarden_api::alert::{Alert, AlertState, Entity, Roles, Severity};
use netwarden_api::crd::{
    Batching, ConfigEntry, EndpointType, NotificationEndpointSpec, NotificationFilters,
    SecretKeyRef, Severity as MinSeverity,
};
use netwarden_api::flow::{FlowRecord, ip_to_bytes};
use netwarden_engine::notify::guard::Guard;
use netwarden_engine::notify::metrics::{DropLabels, EndpointLabels, NotifyMetrics};
use netwarden_engine::notify::secrets::SecretStore;
use netwarden_engine::notify::{Notifier, NotifyConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};

/// One request the recorder saw.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An HTTP receiver on 127.0.0.1 that records every request and answers the statuses queued
/// in `script` (200 once it is empty).
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Recorder {
    async fn start() -> (Self, String) {
        let rec = Self::default();
        let r = rec.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                r.seen.lock().unwrap().push(Recorded {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rec, format!("http://{addr}"))
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    fn at(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A flow alert: 10.0.0.5:40000 (attacker) → 192.168.1.9:443 (victim), score 120 (error).
fn alert(key: &str, score: u32) -> Alert {
    Alert {
        key: key.into(),
        alert_type: "tls_selfsigned_certificate".into(),
        entity: Entity::Flow,
        entity_value: "10.0.0.5:40000 -> 192.168.1.9:443 tcp".into(),
        severity: Severity::from_score(score),
        score,
        client_score: score,
        server_score: 0,
        roles: Roles {
            client_attacker: true,
            server_victim: true,
            ..Roles::default()
        },
        observation_point: "node-a/eth0".into(),
        first_seen_ns: 1_764_259_200_000_000_000,
        last_seen_ns: 1_764_259_201_000_000_000,
        count: 1,
        state: AlertState::Past,
        message: "self-signed <b>certificate</b> & more".into(),
        flow: Some(Box::new(FlowRecord {
            client_ip: ip_to_bytes("10.0.0.5".parse().unwrap()),
            server_ip: ip_to_bytes("192.168.1.9".parse().unwrap()),
            client_port: 40000,
            server_port: 443,
            l4_proto: 6,
            ..FlowRecord::default()
        })),
        anomaly: None,
    }
}

fn endpoint(name: &str, kind: EndpointType, secret: &str) -> ConfigEntry<NotificationEndpointSpec> {
    ConfigEntry {
        api_version: "netwarden.io/v1alpha1".into(),
        kind: "NotificationEndpoint".into(),
        namespace: Some("ops".into()),
        name: name.into(),
        generation: 1,
        spec: NotificationEndpointSpec {
            endpoint_type: kind,
            secret_key_ref: SecretKeyRef {
                name: secret.into(),
                key: "target".into(),
            },
            filters: NotificationFilters::default(),
            rate_limit: None,
            batching: None,
        },
    }
}

fn labels(name: &str, kind: &str) -> EndpointLabels {
    EndpointLabels {
        endpoint: format!("ops/{name}"),
        kind: kind.into(),
    }
}

/// Writes `DIR/<name>/<key>` as a mounted Secret would.
fn secret(dir: &Path, name: &str, key: &str, value: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join(key), value).unwrap();
}

/// A notifier reading secrets from `dir`, loopback allowed by an explicit CIDR allow, fast
/// retries.
fn notifier(dir: &Path, extra: impl FnOnce(&mut NotifyConfig)) -> Notifier {
    let mut config = NotifyConfig {
        secrets: SecretStore::new(Some(dir.to_owned())),
        public_url: Some("https://netwarden.example/".parse().unwrap()),
        guard: Guard {
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            ..Guard::default()
        },
        timeout: Duration::from_secs(2),
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        hostname: "engine-0".into(),
        ..NotifyConfig::default()
    };
    extra(&mut config);
    Notifier::new(config, Arc::new(NotifyMetrics::default())).unwrap()
}

fn json(r: &Recorded) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn chat_and_webhook_payloads_reach_a_real_http_receiver() {
    let (rec, base) = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "slack", "target", &format!("{base}/slack\n"));
    secret(dir.path(), "teams", "target", &format!("{base}/teams"));
    secret(dir.path(), "discord", "target", &format!("{base}/discord"));
    secret(dir.path(), "tg", "target", "123456:ABC-def_ghi:-100200300");
    let userinfo = base.replace("http://", "http://hook:s3cret@");
    secret(dir.path(), "hook", "target", &format!("{userinfo}/webhook"));
    secret(dir.path(), "hook", "target.signing-secret", "sign-me");
    let telegram: url::Url = format!("{base}/tgapi/").parse().unwrap();
    let n = notifier(dir.path(), |c| c.telegram_api = telegram);
    n.apply(vec![
        endpoint("slack", EndpointType::Slack, "slack"),
        endpoint("teams", EndpointType::Teams, "teams"),
        endpoint("discord", EndpointType::Discord, "discord"),
        endpoint("telegram", EndpointType::Telegram, "tg"),
        endpoint("hook", EndpointType::Webhook, "hook"),
    ]);
    n.on_alert(&alert("flow:1:tls", 120));
    wait_for("five deliveries", || rec.requests().len() >= 5).await;

    let slack = json(&rec.at("/slack")[0]);
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("error tls_selfsigned_certificate")
    );
    let att = &slack["attachments"][0];
    assert_eq!(att["color"], "#e01e5a", "error is red");
    let blocks = att["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let fields = blocks[1]["fields"].to_string();
    assert!(fields.contains("*Attacker*\\n10.0.0.5:40000"), "{fields}");
    assert!(fields.contains("*Victim*\\n192.168.1.9:443"), "{fields}");
    assert!(fields.contains("*Score*\\n120"), "{fields}");
    assert_eq!(
        blocks[1]["text"]["text"], "self-signed &lt;b&gt;certificate&lt;/b&gt; &amp; more",
        "traffic text is escaped for mrkdwn"
    );
    assert_eq!(
        blocks[2]["elements"][0]["url"],
        "https://netwarden.example/api/v2/alerts/flow:1:tls"
    );

    let teams = json(&rec.at("/teams")[0]);
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(
        card["content"]["body"]
            .to_string()
            .contains("10.0.0.5:40000")
    );
    assert_eq!(card["content"]["actions"][0]["type"], "Action.OpenUrl");

    let discord = json(&rec.at("/discord")[0]);
    assert_eq!(discord["embeds"][0]["color"], 0x00E0_1E5A);
    assert_eq!(discord["embeds"][0]["fields"][1]["value"], "10.0.0.5:40000");
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));

    let tg = rec.at("/tgapi/bot123456:ABC-def_ghi/sendMessage");
    assert_eq!(
        tg.len(),
        1,
        "telegram's bot API path: {:?}",
        rec.requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );
    let tg = json(&tg[0]);
    assert_eq!(tg["chat_id"], "-100200300");
    assert_eq!(tg["parse_mode"], "HTML");
    assert!(
        tg["text"]
            .as_str()
            .unwrap()
            .contains("&lt;b&gt;certificate&lt;/b&gt; &amp; more")
    );

    let hook = &rec.at("/webhook")[0];
    let body = json(hook);
    assert_eq!(body["source"], "netwarden");
    assert_eq!(body["alerts"][0]["key"], "flow:1:tls");
    assert_eq!(body["alerts"][0]["score"], 120);
    assert_eq!(
        body["alerts"][0]["link"],
        "https://netwarden.example/api/v2/alerts/flow:1:tls"
    );
    let sig = hook.headers["x-netwarden-signature"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"sign-me").unwrap();
    mac.update(&hook.body);
    let expected = netwarden_engine::notify::format::webhook::hex(&mac.finalize().into_bytes());
    assert_eq!(
        sig,
        format!("sha256={expected}"),
        "HMAC over the exact body"
    );
    assert_eq!(
        hook.headers["authorization"], "Basic aG9vazpzM2NyZXQ=",
        "basic auth from the URL's user info (hook:s3cret)"
    );
    for r in rec.requests() {
        assert!(r.headers.get("x-netwarden-signature").is_none() || r.path == "/webhook");
    }
    let m = n.metrics();
    assert_eq!(m.sent.get_or_create(&labels("slack", "slack")).get(), 1);
    assert_eq!(
        m.sent.get_or_create(&labels("telegram", "telegram")).get(),
        1
    );
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff() {
    let (rec, base) = Recorder::start().await;
    rec.script.lock().unwrap().extend([503, 500]);
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "hook", "target", &format!("{base}/hook"));
    let n = notifier(dir.path(), |_| {});
    n.apply(vec![endpoint("hook", EndpointType::Webhook, "hook")]);
    n.on_alert(&alert("k1", 120));
    let l = labels("hook", "webhook");
    wait_for("a delivery after two failures", || {
        n.metrics().sent.get_or_create(&l).get() == 1
    })
    .await;
    assert_eq!(rec.requests().len(), 3, "503, 500, then 200");
    assert_eq!(n.metrics().retries.get_or_create(&l).get(), 2);
    assert_eq!(n.metrics().failed.get_or_create(&l).get(), 0);

    // A 4xx is not retried; the alert is counted as failed.
    rec.script.lock().unwrap().extend([400]);
    n.on_alert(&alert("k2", 120));
    wait_for("the failure", || {
        n.metrics().failed.get_or_create(&l).get() == 1
    })
    .await;
    assert_eq!(rec.requests().len(), 4);
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_and_metadata_unless_allowed() {
    let (rec, base) = Recorder::start().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "loop", "target", &format!("{base}/loop"));
    secret(
        dir.path(),
        "name",
        "target",
        &format!("http://localhost:{port}/name"),
    );
    secret(
        dir.path(),
        "meta",
        "target",
        "http://169.254.169.254/latest/meta-data/",
    );
    secret(
        dir.path(),
        "sys",
        "target",
        &format!("udp://127.0.0.1:{port}"),
    );
    let guarded = notifier(dir.path(), |c| c.guard = Guard::default());
    guarded.apply(vec![
        endpoint("loop", EndpointType::Webhook, "loop"),
        endpoint("name", EndpointType::Slack, "name"),
        endpoint("meta", EndpointType::Webhook, "meta"),
        endpoint("sys", EndpointType::Syslog, "sys"),
    ]);
    guarded.on_alert(&alert("k", 120));
    let m = guarded.metrics();
    let failed = |name: &str, kind: &str| m.failed.get_or_create(&labels(name, kind)).get();
    wait_for("four refusals", || {
        failed("loop", "webhook")
            + failed("name", "slack")
            + failed("meta", "webhook")
            + failed("sys", "syslog")
            == 4
    })
    .await;
    assert_eq!(rec.requests().len(), 0, "nothing reached the receiver");
    for (name, kind) in [
        ("loop", "webhook"),
        ("name", "slack"),
        ("meta", "webhook"),
        ("sys", "syslog"),
    ] {
        assert_eq!(
            m.retries.get_or_create(&labels(name, kind)).get(),
            0,
            "{name}: a refusal is not retried"
        );
    }

    // The same targets with the engine's explicit allow.
    let open = notifier(dir.path(), |c| c.guard.allow_private = true);
    open.apply(vec![
        endpoint("loop", EndpointType::Webhook, "loop"),
        endpoint("name", EndpointType::Slack, "name"),
    ]);
    open.on_alert(&alert("k", 120));
    wait_for("both delivered", || rec.requests().len() == 2).await;
}

#[tokio::test]
async fn filters_dedup_and_secret_rotation() {
    let (rec, base) = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path(), |_| {});
    let mut ep = endpoint("hook", EndpointType::Webhook, "hook");
    ep.spec.filters = NotificationFilters {
        min_severity: MinSeverity::Error,
        entities: vec!["flow".into()],
        attacker_only: true,
        ..NotificationFilters::default()
    };
    n.apply(vec![ep.clone()]);
    let l = labels("hook", "webhook");

    // The Secret is not there yet: retried, then failed; nothing is lost silently.
    n.on_alert(&alert("early", 120));
    wait_for("the failure without a secret", || {
        n.metrics().failed.get_or_create(&l).get() == 1
    })
    .await;

    secret(dir.path(), "hook", "target", &format!("{base}/one"));
    n.on_alert(&alert("low", 60)); // warning: below the minimum
    let mut host = alert("host", 150);
    host.entity = Entity::Host;
    n.on_alert(&host); // entity filtered
    let mut victim_only = alert("victim", 150);
    victim_only.roles = Roles {
        client_victim: true,
        ..Roles::default()
    };
    n.on_alert(&victim_only); // no attacker
    n.on_alert(&alert("a", 120));
    n.on_alert(&alert("a", 130)); // same key within the window
    wait_for("one delivery", || rec.requests().len() == 1).await;
    assert_eq!(n.metrics().deduplicated.get_or_create(&l).get(), 1);

    // Rotation: the Secret's new value is used for the next delivery, no restart.
    secret(dir.path(), "hook", "target", &format!("{base}/two"));
    n.on_alert(&alert("b", 120));
    wait_for("delivery to the rotated target", || {
        rec.at("/two").len() == 1
    })
    .await;
    assert_eq!(rec.at("/one").len(), 1);
    let sent = json(&rec.at("/one")[0]);
    assert_eq!(sent["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(sent["alerts"][0]["key"], "a");

    // Removing the endpoint stops it.
    n.apply(vec![]);
    assert!(n.endpoint_names().is_empty());
}

#[tokio::test]
async fn a_hanging_receiver_fills_only_its_own_queue() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let (rec, base) = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "hang", "target", &format!("http://{addr}/"));
    secret(dir.path(), "ok", "target", &format!("{base}/ok"));
    let n = notifier(dir.path(), |c| {
        c.queue = 8;
        c.attempts = 1;
        c.dedup_window = Duration::ZERO;
    });
    let mut ok = endpoint("ok", EndpointType::Webhook, "ok");
    ok.spec.batching = Some(Batching {
        max_alerts: 100,
        linger_seconds: 1,
    });
    n.apply(vec![endpoint("hang", EndpointType::Webhook, "hang"), ok]);
    for i in 0..40 {
        n.on_alert(&alert(&format!("k{i}"), 120));
        // Lets the healthy endpoint's worker drain its queue; the hanging one cannot.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let m = n.metrics();
    let dropped = m
        .dropped
        .get_or_create(&DropLabels {
            endpoint: "ops/hang".into(),
            reason: "queue_full".into(),
        })
        .get();
    assert!(
        dropped >= 40 - 8 - 1,
        "the hanging endpoint's overflow is dropped and counted: {dropped}"
    );
    assert!(
        m.queue_depth
            .get_or_create(&labels("hang", "webhook"))
            .get()
            >= 7
    );
    // The healthy endpoint got everything, batched.
    wait_for("the healthy endpoint's batch", || {
        rec.at("/ok")
            .iter()
            .map(|r| json(r)["alerts"].as_array().unwrap().len())
            .sum::<usize>()
            == 40
    })
    .await;
    assert!(rec.at("/ok").len() < 40, "batched into few messages");
    // The hanging one times out and counts a failure.
    wait_for("the timeout", || {
        m.failed.get_or_create(&labels("hang", "webhook")).get() >= 1
    })
    .await;
}

/// Parses an RFC 5424 message: (PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID,
/// STRUCTURED-DATA, MSG).
fn parse_5424(m: &str) -> (u16, Vec<String>, String, String) {
    let rest = m.strip_prefix('<').expect("PRI");
    let (pri, rest) = rest.split_once('>').expect("PRI end");
    let pri: u16 = pri.parse().expect("PRI number");
    assert!(pri < 192);
    let mut fields = Vec::new();
    let mut rest = rest;
    for _ in 0..6 {
        let (f, r) = rest.split_once(' ').expect("header field");
        assert!(
            !f.is_empty() && f.chars().all(|c| c.is_ascii_graphic()),
            "{f:?}"
        );
        fields.push(f.to_owned());
        rest = r;
    }
    assert_eq!(fields[0], "1", "VERSION");
    // STRUCTURED-DATA: one element here, `]` inside values escaped.
    assert!(rest.starts_with('['), "SD: {rest}");
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ']' if !escaped => {
                end = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    let end = end.expect("SD end");
    let sd = rest[..=end].to_owned();
    let msg = rest[end + 1..]
        .strip_prefix(' ')
        .expect("SP before MSG")
        .to_owned();
    (pri, fields, sd, msg)
}

#[tokio::test]
async fn syslog_over_udp_and_tcp_carries_rfc5424_and_ecs() {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    secret(
        dir.path(),
        "udp",
        "target",
        &format!("udp://{}", udp.local_addr().unwrap()),
    );
    secret(
        dir.path(),
        "tcp",
        "target",
        &format!("tcp://{}?format=plain", tcp.local_addr().unwrap()),
    );
    let n = notifier(dir.path(), |_| {});
    n.apply(vec![
        endpoint("udp", EndpointType::Syslog, "udp"),
        endpoint("tcp", EndpointType::Syslog, "tcp"),
    ]);
    n.on_alert(&alert("flow:9:tls", 120));

    let mut buf = vec![0u8; 65536];
    let len = tokio::time::timeout(Duration::from_secs(10), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let (pri, fields, sd, msg) = parse_5424(std::str::from_utf8(&buf[..len]).unwrap());
    assert_eq!(pri, 4 * 8 + 3, "facility auth, severity error");
    assert_eq!(fields[2], "engine-0");
    assert_eq!(fields[3], "netwarden");
    assert_eq!(fields[5], "tls_selfsigned_certificate");
    assert!(
        sd.starts_with("[netwarden@32473 key=\"flow:9:tls\""),
        "{sd}"
    );
    let ecs: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(ecs["ecs"]["version"], "8.11.0");
    assert_eq!(ecs["event"]["kind"], "alert");
    assert_eq!(ecs["event"]["id"], "flow:9:tls");
    assert_eq!(ecs["rule"]["name"], "tls_selfsigned_certificate");
    assert_eq!(ecs["source"]["ip"], "10.0.0.5");
    assert_eq!(ecs["source"]["port"], 40000);
    assert_eq!(ecs["destination"]["ip"], "192.168.1.9");
    assert_eq!(ecs["network"]["transport"], "tcp");
    assert_eq!(ecs["netwarden"]["attacker"], "10.0.0.5:40000");
    assert_eq!(ecs["@timestamp"], "2025-11-27T16:00:01.000000Z");

    // TCP: octet-counted frames (RFC 6587).
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), tcp.accept())
        .await
        .unwrap()
        .unwrap();
    let mut reader = tokio::io::BufReader::new(&mut stream);
    let mut len = Vec::new();
    reader.read_until(b' ', &mut len).await.unwrap();
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    let mut frame = vec![0u8; len];
    reader.read_exact(&mut frame).await.unwrap();
    let (_, _, _, msg) = parse_5424(std::str::from_utf8(&frame).unwrap());
    assert!(msg.starts_with("error tls_selfsigned_certificate score=120 attacker=10.0.0.5:40000 victim=192.168.1.9:443"), "{msg}");
}

/// aiosmtpd, started by the test on a free port; prints one JSON line per message received.
struct SmtpServer {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    port: u16,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SMTP_SCRIPT: &str = r#"
import json, sys, email, ssl
from email import policy
from aiosmtpd.controller import Controller
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        print(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                          "subject": str(msg["subject"]), "body": msg.get_content()}), flush=True)
        return "250 OK"
tls = {}
if len(sys.argv) > 3:
    # STARTTLS required: MAIL before STARTTLS is refused, so a delivery proves TLS was used.
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    tls = {"tls_context": ctx, "require_starttls": True}
c = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]), **tls)
c.start()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.read()
c.stop()
"#;

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python")
}

fn start_smtp() -> SmtpServer {
    start_smtp_with(&[])
}

fn start_smtp_with(tls: &[&Path]) -> SmtpServer {
    let py = python();
    assert!(
        py.exists(),
        "{} is missing: run scripts/bootstrap --test",
        py.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(py)
        .args(["-c", SMTP_SCRIPT, &port.to_string()])
        .args(tls)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("aiosmtpd did not start (is it installed? scripts/bootstrap --test)");
    assert!(ready.contains("ready"), "{ready}");
    SmtpServer { child, lines, port }
}

#[tokio::test]
async fn email_digest_reaches_a_real_smtp_server() {
    let server = start_smtp();
    let dir = tempfile::tempdir().unwrap();
    secret(
        dir.path(),
        "mail",
        "target",
        "oncall@example.org, sec@example.org",
    );
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let n = notifier(dir.path(), |c| {
        c.smtp = Some(netwarden_engine::notify::deliver::smtp::SmtpConfig {
            url: netwarden_engine::notify::secrets::SecretValue::new(url),
            from: "Netwarden <netwarden@example.org>".into(),
        });
    });
    let mut ep = endpoint("mail", EndpointType::Email, "mail");
    ep.spec.batching = Some(Batching {
        max_alerts: 3,
        linger_seconds: 30,
    });
    n.apply(vec![ep]);
    n.on_alert(&alert("m1", 60));
    n.on_alert(&alert("m2", 120));
    n.on_alert(&alert("m3", 210));
    let line = tokio::task::spawn_blocking(move || {
        let l = server.lines.recv_timeout(Duration::from_secs(20));
        drop(server);
        l
    })
    .await
    .unwrap()
    .expect("no email arrived");
    let mail: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(mail["from"], "netwarden@example.org");
    assert_eq!(
        mail["to"],
        serde_json::json!(["oncall@example.org", "sec@example.org"])
    );
    assert_eq!(mail["subject"], "[Netwarden] 3 alerts, highest: critical");
    let body = mail["body"].as_str().unwrap();
    for needle in [
        "1. tls_selfsigned_certificate (warning, score 60)",
        "3. tls_selfsigned_certificate (critical, score 210)",
        "attacker: 10.0.0.5:40000",
        "https://netwarden.example/api/v2/alerts/m2",
    ] {
        assert!(body.contains(needle), "{needle:?} not in {body}");
    }
    let _ = std::io::stdout().flush();
}

#[tokio::test]
async fn syslog_over_tls_checks_the_receivers_certificate() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate fails the handshake here.
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut all = Vec::new();
                    let _ = tls.read_to_end(&mut all).await;
                    let _ = tx.send(all).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "tls", "target", &format!("tls://{addr}"));

    // Without the receiver's CA: the handshake fails, nothing is delivered.
    let untrusting = notifier(dir.path(), |_| {});
    untrusting.apply(vec![endpoint("tls", EndpointType::Syslog, "tls")]);
    untrusting.on_alert(&alert("t0", 120));
    let l = labels("tls", "syslog");
    wait_for("the refused handshake", || {
        untrusting.metrics().failed.get_or_create(&l).get() == 1
    })
    .await;

    // With it (`--notify-ca-file`): an octet-counted RFC 5424 message over TLS.
    let trusting = notifier(dir.path(), |c| c.extra_roots = vec![cert]);
    trusting.apply(vec![endpoint("tls", EndpointType::Syslog, "tls")]);
    trusting.on_alert(&alert("t1", 120));
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let text = std::str::from_utf8(&got).unwrap();
    let (len, msg) = text.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), msg.len());
    let (pri, _, sd, msg) = parse_5424(msg);
    assert_eq!(pri, 35);
    assert!(sd.contains("key=\"t1\""));
    let ecs: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(ecs["event"]["id"], "t1");
    assert_eq!(trusting.metrics().sent.get_or_create(&l).get(), 1);
}

#[tokio::test]
async fn email_over_starttls_with_the_receivers_ca() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, pem("CERTIFICATE", ck.cert.der())).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", &ck.signing_key.serialize_der())).unwrap();
    let server = start_smtp_with(&[&cert, &key]);
    secret(dir.path(), "mail", "target", "oncall@example.org");
    let url = format!("smtp://127.0.0.1:{}?tls=required", server.port);
    let root = ck.cert.der().clone();
    let n = notifier(dir.path(), |c| {
        c.smtp = Some(netwarden_engine::notify::deliver::smtp::SmtpConfig {
            url: netwarden_engine::notify::secrets::SecretValue::new(url),
            from: "netwarden@example.org".into(),
        });
        c.extra_roots = vec![root];
    });
    n.apply(vec![endpoint("mail", EndpointType::Email, "mail")]);
    n.on_alert(&alert("s1", 120));
    let line = tokio::task::spawn_blocking(move || {
        let l = server.lines.recv_timeout(Duration::from_secs(20));
        drop(server);
        l
    })
    .await
    .unwrap()
    .expect("no email arrived over STARTTLS");
    let mail: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        mail["subject"],
        "[Netwarden] error tls_selfsigned_certificate alert: 10.0.0.5:40000 -> 192.168.1.9:443 tcp"
    );
    assert!(
        mail["body"]
            .as_str()
            .unwrap()
            .contains("attacker: 10.0.0.5:40000")
    );
}

/// PEM (RFC 7468) of `der`.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = netwarden_engine::notify::deliver::http::base64(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
