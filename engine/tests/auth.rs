//! API tokens over real HTTP: the real API router behind the token middleware, tokens made by
//! the `token` command's code. No token, a malformed, unknown, wrong or expired token → 401;
//! a read token on a write → 403; admin routes need admin; revocation takes effect without a
//! restart; per-token rate limit → 429; and no token secret ever reaches the log.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use netwarden_api::bus::{Bus, MemoryBus};
use netwarden_engine::Engine;
use netwarden_engine::auth::cli::{TokenArgs, TokenCommand, run};
use netwarden_engine::auth::store::TokenFile;
use netwarden_engine::auth::token::{Scope, generate};
use netwarden_engine::auth::{Auth, secure};
use netwarden_engine::metrics::EngineMetrics;
use netwarden_engine::state::StateConfig;
use serde_json::Value;

/// Everything the tracing subscriber wrote, for the "never logged" checks.
static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> Arc<Mutex<Vec<u8>>> {
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&b)))
            .init();
        buf
    })
    .clone()
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// `token create` through the command's code; returns the printed token.
fn create(file: &Path, name: &str, scope: Vec<Scope>) -> String {
    let args = TokenArgs {
        tokens: Some(file.to_owned()),
        command: TokenCommand::Create {
            name: name.into(),
            scope,
            expires_in: Some("30d".into()),
        },
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run(&args, &mut out, &mut err).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("shown once"), "{err}");
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// The real API router behind `auth`, served on a free local port.
async fn serve(auth: Auth) -> String {
    let engine = Engine::new(&StateConfig::default(), Arc::new(EngineMetrics::default()));
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    let router = netwarden_engine::api::router(netwarden_engine::api::ApiState {
        engine,
        bus,
        registry: Arc::new(prometheus_client::registry::Registry::default()),
    });
    let router = secure(router, Arc::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        // The sender lives as long as the server: dropping it would stop the server.
        let _keep = tx;
        netwarden_engine::api::serve(listener, router, rx).await
    });
    format!("http://{addr}")
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> (u16, String, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    (
        status,
        ctype,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tokens_scopes_expiry_revocation_and_no_secret_in_logs() {
    let log = log();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let read = create(&file, "grafana", vec![Scope::Read]);
    let write = create(&file, "ci-bot", vec![Scope::Write]);
    let admin = create(&file, "root", vec![Scope::Admin]);
    // An expired token, written as the command would have written it a while ago.
    let mut tokens = TokenFile::load(&file).unwrap();
    let (mut rec, expired) = generate("old", vec![Scope::Admin], 1, Some(2)).unwrap();
    rec.created_ns = 1;
    tokens.tokens.push(rec);
    tokens.save(&file).unwrap();
    let stored = std::fs::read_to_string(&file).unwrap();
    for t in [&read, &write, &admin, &expired] {
        let secret = t.rsplit('_').next().unwrap();
        assert!(!stored.contains(secret), "the file holds digests only");
    }

    let base = serve(Auth::tokens(&file).unwrap()).await;
    let http = reqwest::Client::new();
    let get = reqwest::Method::GET;
    let hosts = format!("{base}/api/v2/hosts");

    // Probes need no token; the API and /metrics do.
    assert_eq!(
        call(&http, get.clone(), &format!("{base}/healthz"), None)
            .await
            .0,
        200
    );
    // Not ready (no ingest runs here), but answered without a token.
    let (status, _, _) = call(&http, get.clone(), &format!("{base}/readyz"), None).await;
    assert!(status == 200 || status == 503, "{status}");
    assert_eq!(
        call(&http, get.clone(), &format!("{base}/metrics"), None)
            .await
            .0,
        401
    );
    let resp = http.get(&hosts).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, ctype, body) = call(&http, get.clone(), &hosts, None).await;
    assert_eq!((status, ctype.as_str()), (401, "application/problem+json"));
    assert_eq!(body["status"], 401);

    // Malformed, unknown id, right id with a wrong secret, expired: 401.
    let wrong_secret = format!("{}_{}", &read[..11], "0".repeat(64));
    let unknown = format!("nw_00000000_{}", "a".repeat(64));
    for (bad, why) in [
        ("nope", "malformed"),
        (unknown.as_str(), "unknown id"),
        (wrong_secret.as_str(), "wrong secret"),
        (expired.as_str(), "expired"),
    ] {
        let (status, ctype, body) = call(&http, get.clone(), &hosts, Some(bad)).await;
        assert_eq!(status, 401, "{why}");
        assert_eq!(ctype, "application/problem+json", "{why}");
        assert!(
            !body.to_string().contains(bad),
            "{why}: the token is not echoed"
        );
    }
    let (_, _, body) = call(&http, get.clone(), &hosts, Some(&expired)).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    // Scopes.
    assert_eq!(call(&http, get.clone(), &hosts, Some(&read)).await.0, 200);
    let alert = format!("{base}/api/v2/alerts/1");
    let (status, ctype, body) = call(&http, reqwest::Method::DELETE, &alert, Some(&read)).await;
    assert_eq!((status, ctype.as_str()), (403, "application/problem+json"));
    assert!(body["detail"].as_str().unwrap().contains("write"));
    let (status, _, _) = call(&http, reqwest::Method::DELETE, &alert, Some(&write)).await;
    assert!(
        status != 401 && status != 403,
        "a write token may delete: {status}"
    );
    let tokens_url = format!("{base}/api/v2/tokens");
    assert_eq!(
        call(&http, get.clone(), &tokens_url, Some(&write)).await.0,
        403
    );
    let (status, _, list) = call(&http, get.clone(), &tokens_url, Some(&admin)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["grafana", "ci-bot", "root", "old"]);
    assert!(
        !list.to_string().contains("sha256"),
        "no digests over the API"
    );

    // Revocation through the command reaches the running API (the file is followed).
    let args = TokenArgs {
        tokens: Some(file.clone()),
        command: TokenCommand::Revoke {
            id_or_name: "grafana".into(),
        },
    };
    run(&args, &mut Vec::new(), &mut Vec::new()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&http, get.clone(), &hosts, Some(&read)).await.0 != 401 {
        assert!(Instant::now() < deadline, "revocation not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The write was audited by token name and id; no secret was ever logged.
    let text = log_text();
    let write_id = &write[3..11];
    assert!(
        text.lines().any(|l| l.contains("API write")
            && l.contains("ci-bot")
            && l.contains(write_id)
            && l.contains("DELETE")),
        "audit line missing:\n{text}"
    );
    for t in [&read, &write, &admin, &expired, &wrong_secret] {
        let secret = t.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "a token secret reached the log");
    }
    drop(log);
}

#[tokio::test]
async fn each_token_has_its_own_rate_limit() {
    let _log = log();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let a = create(&file, "a", vec![Scope::Read]);
    let b = create(&file, "b", vec![Scope::Read]);
    let base = serve(
        Auth::tokens(&file)
            .unwrap()
            .with_rate(1, 3)
            .with_open_metrics(true),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v2/hosts");
    for _ in 0..3 {
        assert_eq!(
            call(&http, reqwest::Method::GET, &url, Some(&a)).await.0,
            200
        );
    }
    let resp = http.get(&url).bearer_auth(&a).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        call(&http, reqwest::Method::GET, &url, Some(&b)).await.0,
        200,
        "b has its own bucket"
    );
    // --open-metrics: /metrics needs no token.
    assert_eq!(
        call(
            &http,
            reqwest::Method::GET,
            &format!("{base}/metrics"),
            None
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn open_mode_lets_everything_through() {
    let _log = log();
    let base = serve(Auth::open()).await;
    let http = reqwest::Client::new();
    let (status, _, _) = call(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/v2/hosts"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}
