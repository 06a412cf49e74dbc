//! Flow collection end to end with a real exporter: `netwarden-engine standalone --netflow`
//! receives softflowd's NetFlow v9 export of an nDPI capture on loopback, and the REST API
//! serves those flows under the exporter's observation point, with the totals softflowd
//! exported (endpoints and counters, compared with the committed decode of the same export;
//! softflowd's times are its clock's, so they are not compared).
//! Fails loudly when softflowd is missing (`scripts/bootstrap --test` installs it).
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netwarden_testkit::{free_port, softflowd, testdata};
use serde_json::Value;

/// Frames of `testdata/ndpi/iphone.pcap`.
const IPHONE_PACKETS: u64 = 500;
const SENSOR: &str = "nf-node";

/// A flow as (lower endpoint, higher endpoint, protocol, packets, bytes): direction-free, so
/// the engine's client/server choice and softflowd's one-way records compare.
type Conv = ((String, u64), (String, u64), u64, u64, u64);

fn conv(a: (String, u64), b: (String, u64), proto: u64, packets: u64, bytes: u64) -> Conv {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo, hi, proto, packets, bytes)
}

/// What softflowd exported when `testdata/netflow/generated/softflowd-v9.pcap` was made.
fn expected() -> Vec<Conv> {
    let path = testdata("netflow/generated/softflowd-v9.expected.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out: Vec<Conv> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["records"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            conv(
                (
                    r["src"].as_str().unwrap().to_owned(),
                    r["sport"].as_u64().unwrap(),
                ),
                (
                    r["dst"].as_str().unwrap().to_owned(),
                    r["dport"].as_u64().unwrap(),
                ),
                r["proto"].as_u64().unwrap(),
                r["packets"].as_u64().unwrap(),
                r["octets"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(url: &str) -> Option<Value> {
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_collects_softflowd_netflow9() {
    let want = expected();
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = free_port();
    let base = format!("http://127.0.0.1:{api}");
    let mut engine = Engine(
        Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
            .args(["standalone", "--report", "json", "--netflow"])
            .arg(format!("127.0.0.1:{udp}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{api}"))
            .env("NODE_NAME", SENSOR)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&format!("{base}/api/v2/observation-points"))
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "the engine API did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pcap = testdata("ndpi/iphone.pcap");
    tokio::task::spawn_blocking(move || {
        softflowd::export(&pcap, IPHONE_PACKETS, udp, &["-v", "9", "-6"]);
    })
    .await
    .unwrap();

    let want_hosts = want
        .iter()
        .flat_map(|c| [c.0.0.as_str(), c.1.0.as_str()])
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    // The observation point of the exporter, once every flow is applied.
    let name = format!("{SENSOR}/127.0.0.1/0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let point = loop {
        let points = get(&format!("{base}/api/v2/observation-points"))
            .await
            .unwrap();
        let found = points["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .cloned();
        // Server copies travel in other shards' batches: hosts may lag the flow count.
        if let Some(p) = found.filter(|p| {
            p["flows"].as_u64() == Some(want.len() as u64)
                && p["hosts"].as_u64() == Some(want_hosts as u64)
        }) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "observation point {name} did not reach {} flows and {want_hosts} hosts: {points}",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(point["exporter"], "127.0.0.1");
    assert_eq!(point["domain_id"], 0);
    assert_eq!(point["sensor"], SENSOR);
    assert_eq!(point["interface"], "");
    let sum = |i: usize| {
        want.iter()
            .map(|c| if i == 3 { c.3 } else { c.4 })
            .sum::<u64>()
    };
    assert_eq!(point["packets"].as_u64(), Some(sum(3)), "{point}");
    assert_eq!(point["bytes"].as_u64(), Some(sum(4)), "{point}");

    // Every flow of that point, as softflowd exported it.
    let flows = get(&format!(
        "{base}/api/v2/flows?observation_point={name}&limit=1000"
    ))
    .await
    .unwrap();
    let items = flows["items"].as_array().unwrap();
    let mut got: Vec<Conv> = items
        .iter()
        .map(|f| {
            assert_eq!(f["source"], "netflow9", "{f}");
            assert_eq!(f["observation_point"]["exporter"], "127.0.0.1", "{f}");
            let n = |v: &Value| v.as_u64().unwrap_or(0);
            conv(
                (
                    f["client_ip"].as_str().unwrap().to_owned(),
                    n(&f["client_port"]),
                ),
                (
                    f["server_ip"].as_str().unwrap().to_owned(),
                    n(&f["server_port"]),
                ),
                n(&f["l4_proto"]),
                n(&f["c2s"]["packets"]) + n(&f["s2c"]["packets"]),
                n(&f["c2s"]["bytes"]) + n(&f["s2c"]["bytes"]),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "flows served differ from softflowd's export");

    // Drill-down: the point's busiest host and its protocols.
    let detail = get(&format!("{base}/api/v2/observation-points/{name}"))
        .await
        .unwrap();
    assert_eq!(detail["point"]["name"], name.as_str(), "{detail}");
    assert_eq!(detail["flows_kept"], 85, "{detail}");
    let mut per_host: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for c in &want {
        *per_host.entry(c.0.0.as_str()).or_default() += c.4;
        *per_host.entry(c.1.0.as_str()).or_default() += c.4;
    }
    let busiest = per_host.iter().max_by_key(|(_, b)| **b).unwrap();
    assert_eq!(detail["top_hosts"][0]["ip"], *busiest.0, "{detail}");
    assert_eq!(detail["top_hosts"][0]["bytes"], *busiest.1, "{detail}");
    let l4_flows: u64 = detail["l4_protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["flows"].as_u64().unwrap())
        .sum();
    assert_eq!(l4_flows, 85, "{detail}");
    let missing = reqwest::get(format!(
        "{base}/api/v2/observation-points/nowhere/1.2.3.4/0"
    ))
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);

    // The sensor's collection metrics (added every second) are served by the engine.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("netwarden_sensor_collect_records_total{exporter=\"127.0.0.1\"} 85") {
            break;
        }
        assert!(Instant::now() < deadline, "no collection metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // SIGTERM: the report (JSON on stdout) counts the collected records, and the run ends.
    let pid = engine.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let child = std::mem::replace(&mut engine.0, Command::new("true").spawn().unwrap());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["flows"], 85, "{report}");
    assert_eq!(report["sensor"]["records_exported"], 85, "{report}");
    assert_eq!(report["sensor"]["records_dropped"], 0, "{report}");
    assert_eq!(
        report["observation_points"][0]["name"],
        name.as_str(),
        "{report}"
    );
}
