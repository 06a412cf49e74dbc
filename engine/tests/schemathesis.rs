//! The real engine binary driven by schemathesis (PyPI, installed into `.tools/venv` by
//! `scripts/bootstrap --test`) from its own `/api/v2/openapi.json`: `standalone` on the demo
//! capture with a persistent store and an admin token, a bounded number of generated requests
//! per operation (fixed seed), and every check but "schema-valid requests are accepted"
//! (parameters are documented as strings where the API validates their content): no 5xx,
//! every status, content type, header and body as documented, invalid input rejected, auth
//! enforced. The engine's own request counter must show no 5xx either.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netwarden-engine");
/// Generated requests per operation and phase: keeps the run well under a minute.
const MAX_EXAMPLES: &str = "25";

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/schemathesis");
    assert!(
        p.exists(),
        "{} is missing: run scripts/bootstrap --test",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_5xx_and_no_schema_violation() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    let out = Command::new(BIN)
        .args(["token", "--tokens"])
        .arg(&tokens)
        .args(["create", "--name", "schemathesis", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // An exclusion and a notification endpoint (to a closed local port: deliveries fail and
    // are retried in the background), so the configuration routes have something to list.
    let config = dir.path().join("config");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(secrets.join("hook")).unwrap();
    std::fs::write(secrets.join("hook/url"), "http://127.0.0.1:9/hook\n").unwrap();
    std::fs::write(
        config.join("config.yaml"),
        "apiVersion: netwarden.io/v1alpha1
kind: AlertExclusion
metadata: {name: lab}
spec:
  hosts: [{cidr: 10.9.0.0/16, side: client}]
  alertTypes: [all]
  reason: lab scanner
---
apiVersion: netwarden.io/v1alpha1
kind: NotificationEndpoint
metadata: {name: soc}
spec:
  type: webhook
  secretKeyRef: {name: hook, key: url}
",
    )
    .unwrap();

    let mut child = Child(
        Command::new(BIN)
            .args(["standalone", "--pcap"])
            .arg(netwarden_testkit::testdata("demo/demo.pcap"))
            .arg("--tokens")
            .arg(&tokens)
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("--secrets-dir")
            .arg(&secrets)
            .arg("--notify-allow-private")
            // The token bucket would answer 429 to most of the run.
            .args([
                "--listen",
                "127.0.0.1:0",
                "--api-rate-per-minute",
                "10000000",
                "--api-rate-burst",
                "1000000",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The log names the address; keep draining it so the engine never blocks on stderr.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("API listening")
                && let Some(addr) = line.split("addr=").nth(1)
            {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the engine did not start listening");
    let base = format!("http://{addr}");

    // Wait until the capture is in: hosts are known.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .get(format!("{base}/api/v2/hosts?limit=1"))
            .bearer_auth(&token)
            .send()
            .await;
        if let Ok(r) = r
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["total"].as_u64().unwrap_or(0) > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the engine holds no host");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The configuration in force is listed (and no secret).
    for (route, name) in [("config/exclusions", "lab"), ("config/endpoints", "soc")] {
        let text = http
            .get(format!("{base}/api/v2/{route}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["total"], 1, "{route}: {text}");
        assert!(
            v["items"][0]["name"].as_str().unwrap().ends_with(name),
            "{text}"
        );
        assert!(!text.contains("127.0.0.1:9"), "a secret was listed: {text}");
    }
    let doc: serde_json::Value = http
        .get(format!("{base}/api/v2/openapi.json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            ["get", "put", "post", "delete", "patch"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();

    // From a file with `--url`: loaded from its URL, schemathesis would leave the document's
    // own route out of the run.
    let schema = dir.path().join("openapi.json");
    std::fs::write(&schema, serde_json::to_vec(&doc).unwrap()).unwrap();

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let url = base.clone();
        let header = format!("Authorization: Bearer {token}");
        let cwd = dir.path().to_owned();
        let schema = schema.clone();
        move || {
            Command::new(st)
                .current_dir(cwd)
                .arg("run")
                .arg(&schema)
                .args(["--url", &url, "-H", &header])
                .args(["--max-examples", MAX_EXAMPLES, "--seed", "1", "--no-shrink"])
                // One worker: with two, hypothesis parses lambda sources in two threads at
                // once and CPython 3.11.7's parser fails ("AST constructor recursion depth
                // mismatch", an interpreter race, CPython gh-106905), failing a run at random.
                .args(["--workers", "1", "--request-timeout", "10"])
                .args([
                    "--checks",
                    "all",
                    "--exclude-checks",
                    "positive_data_acceptance",
                ])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ran for {:.1} s:\n{text}",
        started.elapsed().as_secs_f64()
    );
    assert!(!text.contains(&token[12..]), "the token secret was printed");
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(
        text.contains(&format!("{operations} selected / {operations} total")),
        "not every documented operation ({operations}) was selected:\n{text}"
    );
    // "N generated, N passed[, N skipped]": cases actually ran, and all passed.
    let cases = text
        .lines()
        .find_map(|l| {
            let mut parts = l.trim().split(", ");
            let generated = parts.next()?.strip_suffix(" generated")?;
            let passed = parts.next()?.strip_suffix(" passed")?;
            Some((generated.parse::<u64>().ok()?, passed.parse::<u64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no test-case count:\n{text}"));
    assert!(
        cases.0 >= 10 * operations as u64 && cases.0 == cases.1,
        "{cases:?}"
    );

    // The engine's own count agrees: no request was answered with a 5xx.
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("netwarden_engine_http_requests_total{"))
        .collect();
    assert!(served.len() > operations, "{metrics}");
    let errors: Vec<&&str> = served.iter().filter(|l| l.contains("status=\"5")).collect();
    assert!(errors.is_empty(), "5xx served: {errors:?}");
}
