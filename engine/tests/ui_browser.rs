//! The web UI in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven over
//! WebDriver with fantoccini): the real engine binary runs standalone on the demo capture plus
//! a generated capture carrying script payloads in an HTTP Host, a DNS name, an SSDP response
//! and a TLS certificate CN, with API tokens. The test logs in with a token, opens every page,
//! filters alerts, follows an alert to its flow and host, acknowledges and excludes; every page
//! must run no injected script (`window.__xss` stays undefined, no dialog opens), show the
//! payloads as text, and log no console error (a CSP violation is one).
//!
//! `scripts/screenshots` runs the ignored `screenshots` test, which saves one PNG per page.
#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::too_many_arguments,
    clippy::many_single_char_names
)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

mod common;

const S: u64 = 1_000_000_000;
/// Generated capture start: right after the demo capture (2025-11-27 08:46:35 UTC).
const T0: u64 = 1_764_233_300 * S;

/// The payloads, one per carrier (each would set `window.__xss` if it ever ran).
const HTTP_HOST: &str = "h\"><img src=x onerror=\"window.__xss='http'\">";
const DNS_NAME: &str = "d\"><script>window.__xss='dns'</script>";
const SSDP_HOST: &str = "s\"><svg onload=\"window.__xss='ssdp'\">";
const SSDP_SERVER: &str = "<script>window.__xss='ssdp-server'</script>";
const CERT_CN: &str = "c<script>window.__xss='cert'</script>";

/// A classic libpcap file (microsecond timestamps, Ethernet) built in memory.
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        for v in [0u32, 0, 65_535, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        Self(b)
    }

    fn push(&mut self, t_ns: u64, frame: &[u8]) {
        let len = frame.len() as u32;
        for v in [(t_ns / S) as u32, ((t_ns % S) / 1000) as u32, len, len] {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self.0.extend_from_slice(frame);
    }
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64_240);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if !data.is_empty() {
        b = b.psh();
    }
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

/// A TCP connection: handshake, then `flights` (client to server when `true`), then FIN.
fn tcp_session(
    p: &mut Pcap,
    t: &mut u64,
    c: [u8; 4],
    s: [u8; 4],
    sport: u16,
    dport: u16,
    flights: &[(bool, Vec<u8>)],
) {
    let mut step = || {
        *t += 1_000_000;
        *t
    };
    p.push(step(), &tcp(c, sport, s, dport, 999, None, true, &[]));
    p.push(
        step(),
        &tcp(s, dport, c, sport, 4999, Some(1000), true, &[]),
    );
    p.push(
        step(),
        &tcp(c, sport, s, dport, 1000, Some(5000), false, &[]),
    );
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    for (from_client, bytes) in flights {
        for chunk in bytes.chunks(1400) {
            let frame = if *from_client {
                let f = tcp(c, sport, s, dport, cseq, Some(sseq), false, chunk);
                cseq = cseq.wrapping_add(chunk.len() as u32);
                f
            } else {
                let f = tcp(s, dport, c, sport, sseq, Some(cseq), false, chunk);
                sseq = sseq.wrapping_add(chunk.len() as u32);
                f
            };
            p.push(step(), &frame);
        }
    }
}

/// A DNS query for `name`, type A (RFC 1035 §4.1): labels are raw bytes, as on the wire.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The capture with the payloads (hosts 10.66.0.x).
fn xss_pcap(dir: &Path) -> PathBuf {
    let mut p = Pcap::new();
    let mut t = T0;
    let (c, web, dns, tls) = (
        v4("10.66.0.2"),
        v4("10.66.0.80"),
        v4("10.66.0.53"),
        v4("10.66.0.43"),
    );
    let req = format!("GET /index.html HTTP/1.1\r\nHost: {HTTP_HOST}\r\nUser-Agent: test\r\n\r\n");
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    tcp_session(
        &mut p,
        &mut t,
        c,
        web,
        40_001,
        80,
        &[(true, req.into_bytes()), (false, resp)],
    );
    t += S;
    p.push(t, &udp(c, 40_002, dns, 53, &dns_query(0x4242, DNS_NAME)));
    t += S;
    let ssdp = format!(
        "HTTP/1.1 200 OK\r\nHOST: {SSDP_HOST}\r\nSERVER: {SSDP_SERVER}\r\nST: upnp:rootdevice\r\nUSN: uuid:1::upnp:rootdevice\r\n\r\n"
    );
    p.push(t, &udp(v4("10.66.0.9"), 1900, c, 40_003, ssdp.as_bytes()));
    t += S;
    tcp_session(
        &mut p,
        &mut t,
        c,
        tls,
        40_004,
        443,
        &common::tls::tls_session("xss.test", Some(CERT_CN)),
    );
    let path = dir.join("xss.pcap");
    std::fs::write(&path, &p.0).unwrap();
    path
}

/// A child process killed (by its own id) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(bin: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(bin);
    assert!(
        p.exists(),
        "{bin} is missing: install Debian's {package} (scripts/bootstrap --test)"
    );
    p
}

fn engine_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netwarden-engine"))
}

/// Creates a token with `scope` in `file`; returns it.
fn token(file: &Path, name: &str, scope: &str) -> String {
    let out = Command::new(engine_bin())
        .args(["token", "--tokens"])
        .arg(file)
        .args(["create", "--name", name, "--scope", scope])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The standalone engine on `pcaps` with tokens from `tokens` and `--config config`; waits for
/// its report (the pcaps are consumed) and the API.
fn start_engine(pcaps: &[PathBuf], tokens: &Path, config: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(engine_bin());
    cmd.arg("standalone").arg("--pcap").args(pcaps);
    cmd.arg("--tokens").arg(tokens).arg("--config").arg(config);
    cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    let log = std::fs::File::create(config.parent().unwrap().join("engine.log")).unwrap();
    let child = Proc(cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the engine did not come up");
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            if r.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// chromedriver on a free port and a headless Chromium session.
async fn browser(profile: &Path) -> (Proc, Client) {
    let chromium = need("/usr/bin/chromium", "chromium");
    let driver = need("/usr/bin/chromedriver", "chromium-driver");
    let port = netwarden_testkit::free_port();
    let proc = Proc(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--window-size=1400,1000", "--force-dark-mode",
                     format!("--user-data-dir={}", profile.display())],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "chromedriver: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    (proc, client)
}

/// chromedriver's browser log (`POST /session/{id}/se/log`), drained at each call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_owned()),
        )
    }
}

/// Console errors logged since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let v = c.issue_cmd(BrowserLog).await.unwrap();
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asserts the page ran no injected script and opened no dialog, and logged no error.
async fn assert_clean(c: &Client, what: &str) {
    let marker = c
        .execute(
            "return typeof window.__xss === 'undefined' ? null : String(window.__xss);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(marker, Value::Null, "{what}: an injected script ran");
    assert!(
        c.get_alert_text().await.is_err(),
        "{what}: a dialog is open"
    );
    let errors = console_errors(c).await;
    assert!(errors.is_empty(), "{what}: console errors: {errors:?}");
}

async fn body_text(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Opens `path` and waits until its charts (if any) are drawn.
async fn open(c: &Client, base: &str, path: &str) {
    let t = Instant::now();
    c.goto(&format!("{base}{path}")).await.unwrap();
    eprintln!("goto {path}: {:?}", t.elapsed());
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("body[data-charts='ready']"))
        .await
        .unwrap_or_else(|e| panic!("{path}: charts never ready: {e}"));
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/ui/alerts?severity=error"))
        .await
        .unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/ui/login",
        "an anonymous visit goes to the login page"
    );
    let form = c
        .form(Locator::Css("form[action='/ui/login']"))
        .await
        .unwrap();
    form.set_by_name("token", token)
        .await
        .unwrap()
        .submit()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("form.filters"))
        .await
        .unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(
        (url.path(), url.query()),
        ("/ui/alerts", Some("severity=error")),
        "back where the visit started"
    );
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
    token: String,
    _engine: Proc,
    _driver: Proc,
    client: Client,
}

async fn setup(with_xss: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let tokens = dir.path().join("tokens.json");
    let token = token(&tokens, "ops", "write");
    let mut pcaps = vec![netwarden_testkit::testdata("demo/demo.pcap")];
    if with_xss {
        pcaps.push(xss_pcap(dir.path()));
    }
    let port = netwarden_testkit::free_port();
    let engine = start_engine(&pcaps, &tokens, &config, port);
    let profile = dir.path().join("profile");
    let (driver, client) = browser(&profile).await;
    Setup {
        config,
        base: format!("http://127.0.0.1:{port}"),
        token,
        _dir: dir,
        _engine: engine,
        _driver: driver,
        client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_in_headless_chromium() {
    let s = setup(true).await;
    let (c, base) = (&s.client, s.base.as_str());

    // A wrong token is refused; the right one opens a session and goes back to the page asked.
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    let form = c
        .form(Locator::Css("form[action='/ui/login']"))
        .await
        .unwrap();
    form.set_by_name("token", "nw_wrong_token")
        .await
        .unwrap()
        .submit()
        .await
        .unwrap();
    c.wait().for_element(Locator::Css("p.error")).await.unwrap();
    let t = body_text(c).await;
    assert!(t.contains("not valid"), "{t}");
    let _ = console_errors(c).await; // the 401 of the refused login is logged by Chromium
    login(c, base, &s.token).await;
    let cookie = c.get_named_cookie("nw_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");

    // The filter kept: every row is at least an error.
    let sev: Vec<String> = {
        let mut v = Vec::new();
        for e in c
            .find_all(Locator::Css("table.alerts tbody tr td:nth-child(2) .badge"))
            .await
            .unwrap()
        {
            v.push(e.text().await.unwrap());
        }
        v
    };
    assert!(!sev.is_empty(), "the demo has error alerts");
    assert!(
        sev.iter()
            .all(|x| ["error", "critical", "emergency"].contains(&x.as_str())),
        "{sev:?}"
    );
    assert_clean(c, "alerts filtered").await;

    // Every page, charts drawn, no script from the network.
    for path in [
        "/",
        "/ui/alerts",
        "/ui/hosts",
        "/ui/flows",
        "/ui/points",
        "/ui/servicemap",
    ] {
        open(c, base, path).await;
        assert_clean(c, path).await;
    }
    open(c, base, "/").await;
    let text = body_text(c).await;
    assert!(text.contains("Who explains the score"), "{text}");
    let canvases = c
        .find_all(Locator::Css("#score-chart canvas, #alerts-chart canvas"))
        .await
        .unwrap();
    assert!(canvases.len() >= 2, "both overview charts are drawn");

    // The payloads, shown as text where flows are listed.
    open(c, base, "/ui/flows?host=10.66.0.2").await;
    let text = body_text(c).await;
    for (what, payload) in [
        ("HTTP Host", HTTP_HOST),
        ("DNS name", DNS_NAME),
        ("SSDP HOST", SSDP_HOST),
        ("certificate CN", CERT_CN),
    ] {
        assert!(
            text.contains(payload),
            "the {what} payload is shown literally:\n{text}"
        );
    }
    assert_clean(c, "flows with payloads").await;
    // Every page that names the payload hosts: their host pages and their alerts' pages.
    for ip in [
        "10.66.0.2",
        "10.66.0.80",
        "10.66.0.53",
        "10.66.0.43",
        "10.66.0.9",
    ] {
        open(c, base, &format!("/ui/hosts/{ip}")).await;
        assert_clean(c, &format!("host {ip}")).await;
    }
    // The device type with its evidence on a demo host's page (docs/devices.md).
    open(c, base, "/ui/hosts/192.168.2.17").await;
    let text = body_text(c).await;
    assert!(
        text.contains("phone (") && text.contains("Lucas-iPhone"),
        "the host page names the device type and its evidence: {text}"
    );
    assert_clean(c, "host 192.168.2.17").await;
    open(c, base, "/ui/alerts?host=10.66.0.2").await;
    let mut links = Vec::new();
    for a in c
        .find_all(Locator::Css("table.alerts tbody tr td:first-child a"))
        .await
        .unwrap()
    {
        links.push(a.attr("href").await.unwrap().unwrap());
    }
    assert!(
        !links.is_empty(),
        "the payload flows raise alerts (self-signed certificate at least)"
    );
    let mut saw_cn = false;
    for href in &links {
        open(c, base, href).await;
        saw_cn |= body_text(c).await.contains(CERT_CN);
        assert_clean(c, href).await;
    }
    assert!(saw_cn, "an alert page shows the certificate's CN literally");

    // From an alert to its flow and its host; acknowledge; exclude.
    open(c, base, "/ui/alerts?entity=flow&acknowledged=false").await;
    c.find(Locator::Css("table.alerts tbody tr td:first-child a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("section.actions"))
        .await
        .unwrap();
    let text = body_text(c).await;
    assert!(
        text.contains("Triggering flow") && text.contains("Who"),
        "{text}"
    );
    let alert_url = c.current_url().await.unwrap();
    c.find(Locator::Id("ack"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("exclude")).await.unwrap();
    assert!(
        body_text(c).await.contains("acknowledged"),
        "the alert shows as acknowledged"
    );
    assert!(
        c.find(Locator::Id("ack")).await.is_err(),
        "no second acknowledge button"
    );
    c.find(Locator::Id("exclude"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let yaml = c
        .wait()
        .for_element(Locator::Id("exclusion-yaml"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(yaml.contains("kind: AlertExclusion"), "{yaml}");
    let written: Vec<_> = std::fs::read_dir(&s.config)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(written.len(), 1, "the exclusion is written to --config");
    assert_eq!(
        std::fs::read_to_string(&written[0]).unwrap().trim(),
        yaml.trim()
    );
    assert_clean(c, "exclude").await;
    c.goto(alert_url.as_str()).await.unwrap();
    let host_link = c
        .find(Locator::Css("section h2 + p a[href^='/ui/hosts/']"))
        .await
        .unwrap();
    host_link.click().await.unwrap();
    c.wait()
        .for_element(Locator::Css("body[data-charts='ready']"))
        .await
        .unwrap();
    let text = body_text(c).await;
    assert!(
        text.contains("Score breakdown") && text.contains("Identity"),
        "{text}"
    );
    assert_clean(c, "host from alert").await;

    // A write without the session's CSRF token is refused (the browser's own fetch: same
    // origin, session cookie sent, wrong token).
    let status = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'csrf=forged'}).then(r => done(r.status));",
            vec![json!(format!("{}/acknowledge", alert_url.path()))],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    let _ = console_errors(c).await; // the 403 is logged by Chromium

    // The service map: the graph is drawn; deny an edge from its row, it turns denied.
    open(c, base, "/ui/servicemap").await;
    assert!(
        !c.find_all(Locator::Css("#map-graph canvas"))
            .await
            .unwrap()
            .is_empty(),
        "the graph is drawn"
    );
    let row = c.find(Locator::Css("table.edges tbody tr")).await.unwrap();
    let row_id = row.attr("id").await.unwrap().unwrap();
    row.find(Locator::Css("button.act-denied"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = c
        .wait()
        .for_element(Locator::Css(&format!("#{row_id} .st-denied")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status, "denied");
    assert_clean(c, "service map").await;
    // The edge's own page: its decision and the flows behind it.
    c.find(Locator::Css(&format!("#{row_id} td:nth-child(3) a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("section h2"))
        .await
        .unwrap();
    let text = body_text(c).await;
    assert!(
        text.contains("Flows behind the edge") && text.contains("denied (manual)"),
        "{text}"
    );
    assert!(
        !c.find_all(Locator::Css("section table tbody tr"))
            .await
            .unwrap()
            .is_empty(),
        "the edge page lists the flows behind it"
    );
    assert_clean(c, "service-map edge").await;
    // The export, fetched by the page with the session (a YAML answer is a download for
    // Chromium, so navigating to it would leave the previous page's text in place).
    let yaml = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch('/ui/servicemap/policy.yaml').then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let yaml = yaml.as_str().unwrap_or_default();
    assert!(
        yaml.starts_with("# ServicePolicy exported from the Netwarden service map")
            && yaml.contains("# note: edge 192.168.2.17 -> "),
        "the export (the demo has no namespaces: its edges are notes): {yaml}"
    );

    // Log out: the session is gone.
    open(c, base, "/").await;
    c.find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("form[action='/ui/login']"))
        .await
        .unwrap();
    c.goto(&format!("{base}/ui/hosts")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/login");
    s.client.clone().close().await.unwrap();
}

/// One PNG per page in `$NW_SCREENSHOTS` (default docs/screenshots): `scripts/screenshots`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run by scripts/screenshots"]
async fn screenshots() {
    let out = std::env::var_os("NW_SCREENSHOTS").map_or_else(
        || netwarden_testkit::repo_root().join("docs/screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out).unwrap();
    let s = setup(false).await;
    let (c, base) = (&s.client, s.base.as_str());
    login(c, base, &s.token).await;
    open(c, base, "/ui/alerts?severity=error").await;
    let first_alert = c
        .find(Locator::Css("table.alerts tbody tr td:first-child a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    open(c, base, "/").await;
    let top_host = c
        .find(Locator::Css("ol.scorers li a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    for (name, path) in [
        ("overview", "/"),
        ("alerts", "/ui/alerts"),
        ("alert", first_alert.as_str()),
        ("host", top_host.as_str()),
        ("flows", "/ui/flows"),
        ("points", "/ui/points"),
        ("servicemap", "/ui/servicemap"),
    ] {
        open(c, base, path).await;
        // Full-page height for the capture.
        let h = c
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(1000);
        c.set_window_size(1400, u32::try_from(h.clamp(800, 4000)).unwrap())
            .await
            .unwrap();
        open(c, base, path).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(out.join(format!("{name}.png")), png).unwrap();
        c.set_window_size(1400, 1000).await.unwrap();
    }
    s.client.clone().close().await.unwrap();
}
