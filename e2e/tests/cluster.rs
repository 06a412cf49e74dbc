//! The real binaries together, in network namespaces (issue 7, item 7): a real nats-server
//! 2.15, three `netwarden-engine run` replicas (JetStream ingest, shards by lease), two
//! `netwarden-sensor run` capturing live on the veth link between two namespaces while ping,
//! HTTP (curl ↔ python's http.server), DNS (a small UDP responder) and `tcpreplay` of corpus
//! pcaps cross it, one sensor also collecting IPFIX from softflowd (reading what crossed a second link); an `AlertExclusion`
//! published through the operator's library path (its `nw-config` entry, as the reconciler
//! writes it). Asserted through the engines' REST API: flows with their L7 names and exact ping
//! counts, alerts with attacker/victim, scores, the exclusion; then `kill -9` of a replica and a
//! nats-server restart while traffic flows, after which every host's totals equal what was on
//! the wire (tcpdump on the same links, read by the sensor offline): nothing lost, nothing
//! counted twice, nothing crashed. See e2e/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use netwarden_api::crd::{AlertExclusion, StatusReport, Validate, config_key, status_key};
use netwarden_e2e::cluster::{
    Engine, Nats, Proc, SensorReport, Topology, Totals, cluster_totals, diff, eventually, gather,
    get_json, netns_unavailable, pcap_totals, remove_leftovers, sum, tail, totals_as_client,
};
use netwarden_e2e::kube::FakeKube;
use serde_json::{Value, json};

const SHARDS: u32 = 16;
/// Lease TTL of the replicas, seconds (short: the takeover happens within the test).
const TTL: u64 = 2;
const WEB_NAME: &str = "web.e2e.test";
const DNS_NAME: &str = "db.e2e.test";
const SQLI: &str = "url_possible_sql_injection";

/// A UDP DNS responder: answers every A question with `argv[2]`.
const DNS_SERVER: &str = r"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
ip = bytes(int(x) for x in sys.argv[2].split('.'))
print('ready', flush=True)
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 17:
        continue
    i = 12
    while i < len(q) and q[i] != 0:
        i += 1 + q[i]
    question = q[12:i + 5]
    head = q[:2] + b'\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00'
    answer = b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + ip
    s.sendto(head + question + answer, peer)
";

/// One DNS query (new socket, so a new flow): prints the answer's address.
const DNS_CLIENT: &str = r"
import random, socket, sys
name, server = sys.argv[1], sys.argv[2]
q = random.randrange(65536).to_bytes(2, 'big') + b'\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'
q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\x00\x00\x01\x00\x01'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (server, 53))
r, _ = s.recvfrom(512)
assert r[:2] == q[:2] and r[3] & 15 == 0, r
print('.'.join(str(b) for b in r[-4:]))
";

/// Everything the test started; on a panic, the tail of every log is printed.
struct Cluster {
    procs: Vec<Proc>,
    engines: Vec<Engine>,
    nats: Nats,
    topo: Topology,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut all: Vec<&Proc> = self.procs.iter().collect();
            all.extend(self.engines.iter().map(|e| &e.proc));
            all.push(&self.nats.proc);
            for p in all {
                eprintln!("---- {} ----\n{}", p.name, tail(&p.output(), 25));
            }
        }
        // Processes first (guards), then the namespaces (Topology's guard).
        self.procs.clear();
        self.engines.clear();
        self.nats.proc.kill9();
        let _ = &self.topo;
        let _ = &self.dir;
    }
}

impl Cluster {
    fn logs(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn bases(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.base.clone()).collect()
    }

    fn names(&self) -> Vec<String> {
        self.engines.iter().map(|e| e.name.clone()).collect()
    }

    /// `netwarden-sensor run` inside `ns`, capturing `lan0` (and collecting on `netflow`).
    fn sensor(&mut self, ns: &str, name: &str, netflow: Option<u16>) -> usize {
        let mut cmd = self
            .topo
            .exec(ns, &netwarden_e2e::cluster::binary("netwarden-sensor"));
        cmd.args(["run", "--interface", "lan0", "--no-config"])
            .args(["--nats", &self.nats.url(), "--sensor-name", name])
            .args(["--shards", &SHARDS.to_string(), "--progress", "quiet"]);
        if let Some(port) = netflow {
            cmd.args(["--netflow", &format!("127.0.0.1:{port}")]);
        }
        let mut p = Proc::spawn(name, &mut cmd, &self.logs());
        p.wait_output("capture started", Duration::from_secs(30));
        if netflow.is_some() {
            p.wait_output("flow listener bound", Duration::from_secs(30));
        }
        self.procs.push(p);
        self.procs.len() - 1
    }

    /// Stops a sensor (SIGTERM: it flushes every flow) and reads its end-of-run report.
    fn stop_sensor(&mut self, i: usize) -> SensorReport {
        let p = &mut self.procs[i];
        let status = p.stop(Duration::from_secs(60));
        let out = p.output();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not exit cleanly ({status:?}):\n{}",
            p.name,
            tail(&out, 40)
        );
        SensorReport::parse(&out)
            .unwrap_or_else(|| panic!("{}: no end-of-run report:\n{}", p.name, tail(&out, 40)))
    }

    /// Runs a command in a namespace; panics with its output when it fails.
    fn run_in(&self, ns: &str, program: &str, args: &[&str]) -> String {
        let out = self
            .topo
            .run_in(ns, program, args)
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn curl(&self) {
        let resolve = format!("{WEB_NAME}:8080:{}", self.topo.lan_b);
        let url = format!("http://{WEB_NAME}:8080/index.html");
        let body = self.run_in(
            &self.topo.ns_a,
            "curl",
            &["-sS", "--max-time", "10", "--resolve", &resolve, &url],
        );
        assert!(body.contains("netwarden e2e"), "{body}");
    }

    fn dns(&self) {
        let answer = self.run_in(
            &self.topo.ns_a,
            "python3",
            &["-c", DNS_CLIENT, DNS_NAME, &self.topo.lan_b.to_string()],
        );
        assert_eq!(answer.trim(), self.topo.lan_b.to_string());
    }

    fn ping(&self, to: Ipv4Addr, count: u32) {
        let out = self.run_in(
            &self.topo.ns_a,
            "ping",
            &[
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "5",
                &to.to_string(),
            ],
        );
        assert!(
            out.contains(&format!("{count} packets transmitted, {count} received")),
            "{out}"
        );
    }

    /// softflowd reading `pcap` (`frames` frames) inside `ns`, exporting IPFIX to
    /// `127.0.0.1:port` there, driven as `testkit::softflowd` does (TOOLS.md quirk 1): polled
    /// until every frame is read, then shut down, which exports every flow.
    fn softflowd_replay(&mut self, ns: &str, pcap: &Path, frames: u64, port: u16) {
        let ctl = self.logs().join("softflowd.ctl");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "softflowd", "-d", "-v", "10", "-r"])
            .arg(pcap)
            .args(["-n", &format!("127.0.0.1:{port}"), "-c"])
            .arg(&ctl)
            .arg("-p")
            .arg(self.logs().join("softflowd.pid"));
        let mut p = Proc::spawn("softflowd", &mut cmd, &self.logs());
        let ctl = ctl.to_str().unwrap().to_owned();
        let count = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.alive() {
            let stats = netwarden_e2e::cluster::run("softflowctl", &["-c", &ctl, "statistics"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if count(&stats, "Packets processed:") + count(&stats, "Ignored packets:") >= frames {
                let _ = netwarden_e2e::cluster::run("softflowctl", &["-c", &ctl, "shutdown"]);
                break;
            }
            assert!(Instant::now() < deadline, "softflowd stuck: {stats}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            p.wait_exit(Duration::from_secs(10)).is_some(),
            "softflowd did not exit"
        );
        self.procs.push(p);
    }

    fn tcpreplay(&self, pcap: &Path) {
        let out = self.run_in(
            &self.topo.ns_a,
            "tcpreplay",
            &["-q", "-i", "lan0", "--pps", "200"]
                .into_iter()
                .chain([pcap.to_str().unwrap()])
                .collect::<Vec<_>>(),
        );
        assert!(out.contains("Failed packets:            0"), "{out}");
    }
}

/// The JSON field `path` (`a.b.c`) of `v`.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// Leases of `nw-members`: (replica, members it sees, shards it owns).
async fn leases(kv: &async_nats::jetstream::kv::Store) -> Vec<(String, u64, Vec<u64>)> {
    let Ok(keys) = kv.keys().await else {
        return Vec::new();
    };
    let keys: Vec<String> = keys.try_collect().await.unwrap_or_default();
    let mut out = Vec::new();
    for k in keys {
        if let Ok(Some(v)) = kv.get(&k).await
            && let Ok(l) = serde_json::from_slice::<Value>(&v)
        {
            out.push((
                l["replica"].as_str().unwrap_or_default().to_owned(),
                l["members"].as_u64().unwrap_or(0),
                l["owned"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

/// Exactly `names` hold leases, each sees them all, and their shards partition `0..SHARDS`.
async fn settled(kv: &async_nats::jetstream::kv::Store, names: &[String]) -> Result<(), String> {
    let live = leases(kv).await;
    let mut seen: Vec<&str> = live.iter().map(|l| l.0.as_str()).collect();
    seen.sort_unstable();
    let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
    want.sort_unstable();
    let owned: Vec<u64> = live.iter().flat_map(|l| l.2.iter().copied()).collect();
    let distinct: BTreeSet<u64> = owned.iter().copied().collect();
    if seen == want
        && live.iter().all(|l| l.1 == names.len() as u64)
        && owned.len() == SHARDS as usize
        && distinct.len() == SHARDS as usize
    {
        Ok(())
    } else {
        Err(format!("{live:?}"))
    }
}

async fn members_kv(url: &str) -> async_nats::jetstream::kv::Store {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    eventually("nw-members", Duration::from_secs(30), async || {
        js.get_key_value("nw-members")
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

/// Flows of every replica between `a` and `b` (either way) seen at `point`.
fn flows_between<'a>(flows: &'a [Value], a: &str, b: &str, point: &str) -> Vec<&'a Value> {
    flows
        .iter()
        .filter(|f| {
            let (c, s) = (f["client_ip"].as_str(), f["server_ip"].as_str());
            ((c == Some(a) && s == Some(b)) || (c == Some(b) && s == Some(a)))
                && format!(
                    "{}/{}",
                    at(f, "observation_point.sensor").as_str().unwrap_or(""),
                    at(f, "observation_point.interface").as_str().unwrap_or("")
                ) == point
        })
        .collect()
}

/// `flows_as_server` of `ip` over the replicas (each answering for itself).
async fn flows_as_server(
    http: &reqwest::Client,
    bases: &[String],
    ip: &str,
) -> Result<u64, String> {
    let hosts = gather(http, bases, "/api/v2/hosts")
        .await
        .ok_or("no answer")?;
    Ok(hosts
        .iter()
        .filter(|h| h["ip"] == ip)
        .map(|h| h["flows_as_server"].as_u64().unwrap_or(0))
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_binaries_in_network_namespaces() {
    if let Some(why) = netns_unavailable() {
        eprintln!(
            "\n########################################################################\n\
             ## SKIPPED e2e cluster test: network namespaces are not permitted here\n\
             ## ({why}).\n\
             ## It needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW): run as root.\n\
             ########################################################################\n"
        );
        return;
    }
    for tool in [
        "tcpreplay",
        "tcprewrite",
        "tcpdump",
        "softflowd",
        "softflowctl",
        "ping",
    ] {
        netwarden_testkit::softflowd::need(tool, "tcpreplay tcpdump softflowd iputils-ping");
    }
    remove_leftovers();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let topo = Topology::create();
    let nats = Nats::start(topo.nats_ip, dir.path(), dir.path());
    let mut c = Cluster {
        procs: Vec::new(),
        engines: Vec::new(),
        nats,
        topo,
        dir,
    };
    let logs = c.logs();
    let url = c.nats.url();
    for i in 0..3 {
        c.engines.push(Engine::start(
            &url,
            &format!("engine-{i}"),
            SHARDS,
            TTL,
            &logs,
        ));
    }
    let kv = members_kv(&url).await;
    let names = c.names();
    eventually(
        "three replicas to share the shards",
        Duration::from_secs(60),
        async || settled(&kv, &names).await,
    )
    .await;

    // --- The operator (real binary) against a fake Kubernetes API holding an AlertExclusion
    // for the rewritten copy's attacker: it validates it, writes nw-config, the engines apply
    // it and report on nw-status, the operator patches the object's status. --------------------
    let [n1, n2, n3] = c.topo.replay_net;
    let excluded_attacker = format!("{n1}.{n2}.{n3}.109");
    let excluded_victim = format!("{n1}.{n2}.{n3}.107");
    let exclusion = json!({
        "apiVersion": "netwarden.io/v1alpha1",
        "kind": "AlertExclusion",
        "metadata": {
            "name": "replayed-scanner", "namespace": "e2e", "generation": 1,
            "uid": "8d0b5f7e-0000-4000-8000-000000000001", "resourceVersion": "1",
            "creationTimestamp": "2026-11-27T00:00:00Z",
            // Already carries the operator's finalizer (adding it needs a watch event).
            "finalizers": [netwarden_operator::FINALIZER]
        },
        "spec": {
            "hosts": [{"cidr": format!("{excluded_attacker}/32"), "side": "client"}],
            "alertTypes": [SQLI],
            "reason": "e2e: the rewritten copy of sql_injection.pcap is a known scanner"
        }
    });
    let parsed: AlertExclusion = serde_json::from_value(exclusion.clone()).unwrap();
    assert!(parsed.spec.validate().is_empty());
    let kube = FakeKube::start();
    kube.add("alertexclusions", exclusion);
    let kubeconfig = logs.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig);
    let mut operator = Command::new(netwarden_e2e::cluster::binary("netwarden-operator"));
    operator
        .args([
            "run",
            "--nats",
            &url,
            "--lease-namespace",
            "",
            "--directory",
            "false",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{}", netwarden_testkit::free_port()),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info,kube=warn");
    c.procs.push(Proc::spawn("operator", &mut operator, &logs));
    let client = async_nats::connect(&url).await.unwrap();
    let stores = netwarden_operator::store::Stores::nats(client)
        .await
        .unwrap();
    let key = config_key("AlertExclusion", Some("e2e"), "replayed-scanner");
    // Every replica reports it applied (nw-status), as the operator would read it.
    for name in &names {
        let report_key = status_key("AlertExclusion", Some("e2e"), "replayed-scanner", name);
        let stores = stores.clone();
        eventually(
            &format!("{name} to apply the exclusion"),
            Duration::from_secs(30),
            async || {
                let raw = stores
                    .status
                    .get(&report_key)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no report yet")?;
                let r: StatusReport = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
                if r.applied && r.generation == 1 {
                    Ok(())
                } else {
                    Err(format!("{r:?}"))
                }
            },
        )
        .await;
    }

    // The entry the operator wrote, and the status it patched back: published, applied by the
    // three replicas.
    let entry = stores
        .config
        .get(&key)
        .await
        .unwrap()
        .expect("nw-config entry");
    let entry: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["spec"]["alertTypes"], json!([SQLI]), "{entry}");
    let status = eventually(
        "the operator's status patch",
        Duration::from_secs(60),
        async || {
            let patches: Vec<Value> = kube
                .seen()
                .into_iter()
                .filter(|s| {
                    s.method == "PATCH"
                        && s.path.ends_with("/alertexclusions/replayed-scanner/status")
                })
                .map(|s| s.body)
                .collect();
            patches
                .iter()
                .rev()
                .find(|b| {
                    b.to_string().contains("\"Published\"") && b["status"]["appliedCount"] == 3
                })
                .cloned()
                .ok_or(format!("{patches:?}"))
        },
    )
    .await;
    println!("operator status patch: {status}");

    // --- Servers in b, the wire recorders, softflowd, the sensors. -------------------------
    let (ns_a, ns_b) = (c.topo.ns_a.clone(), c.topo.ns_b.clone());
    let (lan_a, lan_b) = (c.topo.lan_a.to_string(), c.topo.lan_b.to_string());
    let www = logs.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<h1>netwarden e2e</h1>\n".repeat(40),
    )
    .unwrap();
    let mut http = Command::new("ip");
    http.args([
        "netns",
        "exec",
        &ns_b,
        "python3",
        "-m",
        "http.server",
        "8080",
    ])
    .args(["--bind", &lan_b, "--directory"])
    .arg(&www);
    c.procs.push(Proc::spawn("http-server", &mut http, &logs));
    let mut dns = Command::new("ip");
    dns.args(["netns", "exec", &ns_b, "python3", "-u", "-c", DNS_SERVER])
        .args([&lan_b, &lan_b]);
    let mut dns = Proc::spawn("dns-server", &mut dns, &logs);
    dns.wait_output("ready", Duration::from_secs(20));
    c.procs.push(dns);
    // Ready checks from inside b (over its loopback: nothing crosses lan0).
    let web = format!("http://{lan_b}:8080/index.html");
    let check = c
        .topo
        .run_in(&ns_b, "python3", &["-c", DNS_CLIENT, "x.test", &lan_b]);
    assert!(check.is_ok(), "{check:?}");
    eventually("the web server", Duration::from_secs(20), async || {
        c.topo
            .run_in(&ns_b, "curl", &["-sf", "-o", "/dev/null", &web])
            .map(|_| ())
    })
    .await;

    let mut dumps = Vec::new();
    for ns in [&ns_a, &ns_b] {
        let file = logs.join(format!("{ns}.pcap"));
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            ns,
            "tcpdump",
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            "0",
        ])
        .args(["-i", "lan0", "-w"])
        .arg(&file);
        let mut p = Proc::spawn(&format!("tcpdump-{ns}"), &mut cmd, &logs);
        p.wait_output("listening on lan0", Duration::from_secs(20));
        c.procs.push(p);
        dumps.push((c.procs.len() - 1, file));
    }
    let netflow_port = netwarden_testkit::free_port();
    // lan1 is recorded; softflowd reads the recording (`-r`: a live softflowd 1.1.0 on a quiet
    // veth left the packets in libpcap's buffer) and exports IPFIX to sensor a's listener.
    let lan1_pcap = logs.join("lan1.pcap");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns_a,
        "tcpdump",
        "-n",
        "-U",
        "--immediate-mode",
        "-s",
        "0",
    ])
    .args(["-i", "lan1", "-w"])
    .arg(&lan1_pcap);
    let mut lan1_dump = Proc::spawn("tcpdump-lan1", &mut cmd, &logs);
    lan1_dump.wait_output("listening on lan1", Duration::from_secs(20));

    // --- Phase 1: traffic with every replica up. --------------------------------------------
    let sa1 = c.sensor(&ns_a, "sensor-a1", Some(netflow_port));
    let sb1 = c.sensor(&ns_b, "sensor-b1", None);
    c.ping(c.topo.lan_b, 5);
    for _ in 0..3 {
        c.curl();
    }
    for _ in 0..2 {
        c.dns();
    }
    let sqli = netwarden_testkit::testdata("ndpi/sql_injection.pcap");
    let rewritten = logs.join("sqli-rewritten.pcap");
    netwarden_e2e::cluster::run(
        "tcprewrite",
        &[
            &format!("--pnat=192.168.3.0/24:{n1}.{n2}.{n3}.0/24"),
            &format!("--infile={}", sqli.display()),
            &format!("--outfile={}", rewritten.display()),
            "--fixcsum",
        ],
    )
    .unwrap();
    c.tcpreplay(&sqli);
    c.tcpreplay(&rewritten);
    // The NetFlow-only link: 7 echo requests and replies, seen by softflowd alone.
    c.ping(c.topo.flow_b, 7);
    // Immediate mode hands every packet over at once; a moment for the last one to be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lan1_dump.stop(Duration::from_secs(10));
    let frames = lan1_dump
        .output()
        .lines()
        .find_map(|l| l.strip_suffix(" packets captured"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("tcpdump's packet count");
    c.softflowd_replay(&ns_a, &lan1_pcap, frames, netflow_port);
    let (flow_a, flow_b) = (c.topo.flow_a.to_string(), c.topo.flow_b.to_string());
    let bases = c.bases();
    let client = reqwest::Client::new();
    // The IPFIX records reach the cluster while the sensor runs (the sensor's batcher).
    eventually(
        "softflowd's flows in the cluster",
        Duration::from_secs(60),
        async || {
            let t = cluster_totals(&client, &bases).await?;
            let got = t.get(&(flow_a.clone(), 0)).copied();
            // 7 × (20 IP + 8 ICMP + 56 data) bytes each way.
            if got == Some([588, 588, 7, 7]) {
                Ok(())
            } else {
                Err(format!("{flow_a}: {got:?}"))
            }
        },
    )
    .await;
    let r_a1 = c.stop_sensor(sa1);
    let r_b1 = c.stop_sensor(sb1);
    println!("phase 1 sensors: a {r_a1:?}, b {r_b1:?}");
    for r in [&r_a1, &r_b1] {
        assert_eq!((r.failed, r.records_dropped), (0, 0), "{r:?}");
        assert!(r.acked > 0 && r.records_exported > 0, "{r:?}");
    }
    assert!(
        r_a1.collected_records >= 2,
        "IPFIX from softflowd: {r_a1:?}"
    );

    // Flows with their L7 names and exact ping counts, at both observation points.
    let flows = eventually("phase 1 flows", Duration::from_secs(60), async || {
        let flows = gather(&client, &bases, "/api/v2/flows?state=all")
            .await
            .ok_or("no answer")?;
        for point in ["sensor-a1/lan0", "sensor-b1/lan0"] {
            let icmp: Vec<_> = flows_between(&flows, &lan_a, &lan_b, point)
                .into_iter()
                .filter(|f| f["l4_proto"] == 1)
                .collect();
            let counts: Vec<(u64, u64)> = icmp
                .iter()
                .map(|f| {
                    (
                        at(f, "c2s.packets").as_u64().unwrap_or(0),
                        at(f, "s2c.packets").as_u64().unwrap_or(0),
                    )
                })
                .collect();
            if counts != [(5, 5)] || icmp[0]["client_ip"] != lan_a.as_str() {
                return Err(format!("{point}: ping flows {counts:?}"));
            }
            let between = flows_between(&flows, &lan_a, &lan_b, point);
            let web = between
                .iter()
                .filter(|f| at(f, "l7.hostname") == WEB_NAME && f["server_port"] == 8080)
                .count();
            let dns = between
                .iter()
                .filter(|f| at(f, "l7.dns.query") == DNS_NAME && f["server_port"] == 53)
                .count();
            if (web, dns) != (3, 2) {
                return Err(format!(
                    "{point}: {web} HTTP flows to {WEB_NAME}, {dns} DNS flows for {DNS_NAME}"
                ));
            }
        }
        Ok(flows)
    })
    .await;
    println!("phase 1: {} flows in the cluster", flows.len());

    // The replayed SQL injection: attacker and victim named; the excluded copy raises none.
    let alerts = eventually(
        "the SQL injection alert",
        Duration::from_secs(60),
        async || {
            let alerts = gather(&client, &bases, "/api/v2/alerts")
                .await
                .ok_or("no answer")?;
            let of = |client: &str, ty: &str| {
                alerts
                    .iter()
                    .filter(|a| a["type"] == ty && at(a, "flow.client_ip") == client)
                    .count()
            };
            if of("192.168.3.109", SQLI) >= 1 && of(&excluded_attacker, "numeric_ip_host") >= 1 {
                Ok(alerts)
            } else {
                Err(format!(
                    "{} alerts: {:?}",
                    alerts.len(),
                    alerts
                        .iter()
                        .map(|a| (&a["type"], at(a, "flow.client_ip")))
                        .collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    let sqli_alerts: Vec<&Value> = alerts.iter().filter(|a| a["type"] == SQLI).collect();
    for a in &sqli_alerts {
        assert_eq!(
            at(a, "flow.client_ip"),
            "192.168.3.109",
            "excluded host alerted: {a}"
        );
        assert_eq!(at(a, "flow.server_ip"), "192.168.3.107");
        assert_eq!(at(a, "roles.client_attacker"), true, "{a}");
        assert_eq!(at(a, "roles.server_victim"), true, "{a}");
        assert_eq!(at(a, "roles.server_attacker"), false, "{a}");
    }
    assert!(
        alerts
            .iter()
            .all(|a| !(a["type"] == SQLI && at(a, "flow.client_ip") == excluded_attacker.as_str())),
        "the AlertExclusion did not suppress the copy's alert"
    );
    // Scores: the attacker's includes the injection; the excluded copy's does not.
    let mut scores = Vec::new();
    for host in [
        "192.168.3.109",
        excluded_attacker.as_str(),
        excluded_victim.as_str(),
    ] {
        let mut found = None;
        for base in &bases {
            if let Some(s) = get_json(&client, &format!("{base}/api/v2/hosts/{host}/score")).await {
                found = Some(s);
            }
        }
        let s = found.unwrap_or_else(|| panic!("no replica has a score for {host}"));
        let types: BTreeSet<String> = s["contributions"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x["alert_type"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        scores.push((
            host.to_owned(),
            at(&s, "score.total").as_u64().unwrap_or(0),
            types,
        ));
    }
    println!("scores: {scores:?}");
    assert!(scores[0].1 > 0 && scores[0].2.contains(SQLI), "{scores:?}");
    assert!(!scores[1].2.contains(SQLI), "{scores:?}");

    // --- Phase 2: traffic while a replica is killed and NATS restarts. -----------------------
    // A ping runs all along (its flow stays active, published when the sensors stop); HTTP and
    // DNS rounds run before the kill, between the kill and the restart, and after the restart.
    let sa2 = c.sensor(&ns_a, "sensor-a2", None);
    let sb2 = c.sensor(&ns_b, "sensor-b2", None);
    let mut pinger = Command::new("ip");
    pinger
        .args([
            "netns", "exec", &ns_a, "ping", "-n", "-q", "-c", "250", "-i", "0.2",
        ])
        .arg(&lan_b);
    c.procs.push(Proc::spawn("ping-phase2", &mut pinger, &logs));
    let pinger = c.procs.len() - 1;
    let phase2 = Instant::now();
    let mut rounds = 0u64;
    let mut takeover = None;
    for i in 0..16 {
        if i == 6 {
            c.engines[1].proc.kill9();
            println!("kill -9 engine-1 after {rounds} rounds of phase 2");
            // How long the survivors take to own every shard (printed, not asserted).
            let (kv, killed_at) = (kv.clone(), Instant::now());
            let survivors = vec!["engine-0".to_owned(), "engine-2".to_owned()];
            takeover = Some(tokio::spawn(async move {
                while settled(&kv, &survivors).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                killed_at.elapsed()
            }));
        }
        c.curl();
        c.dns();
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The sensors publish an HTTP flow ~10 s after its FIN, the DNS flows when they stop: NATS
    // restarts in the busiest export, when the first rounds' HTTP flows expire while more
    // rounds run and the ping goes on. The sensors hold what they export while NATS is down
    // (bounded outage buffer) and publish it once it is back; nothing may be dropped.
    while phase2.elapsed() < Duration::from_secs(11) {
        c.curl();
        c.dns();
        rounds += 1;
    }
    assert!(
        c.procs[pinger].alive(),
        "the phase 2 ping ended before the NATS restart; make it longer"
    );
    c.nats.restart();
    println!(
        "nats-server restarted {:.1} s into phase 2 (after {rounds} rounds), with the ping and more rounds running",
        phase2.elapsed().as_secs_f64()
    );
    for _ in 0..3 {
        c.curl();
        c.dns();
        rounds += 1;
    }
    let lan_b_key = (lan_b.clone(), 0);
    let bases2: Vec<String> = [&c.engines[0], &c.engines[2]]
        .iter()
        .map(|e| e.base.clone())
        .collect();
    // Phase 1: ping, 3 HTTP and 2 DNS flows to b at each of the two points.
    let want_flows = 2 * (1 + 3 + 2) + 2 * rounds;
    eventually(
        "phase 2's closed HTTP flows in the cluster",
        Duration::from_secs(90),
        async || {
            let n = flows_as_server(&client, &bases2, &lan_b_key.0).await?;
            if n >= want_flows {
                Ok(())
            } else {
                Err(format!("{n} flows to b, want {want_flows}"))
            }
        },
    )
    .await;
    let killed_engine = c.engines.remove(1);
    let takeover = tokio::time::timeout(Duration::from_secs(60), takeover.expect("killed"))
        .await
        .expect("the survivors never owned every shard")
        .unwrap();
    println!(
        "the survivors owned every shard {:.1} s after kill -9 (lease TTL {TTL} s)",
        takeover.as_secs_f64()
    );
    c.procs[pinger].signal("INT");
    let ping = c.procs[pinger].wait_exit(Duration::from_secs(20));
    let ping_out = c.procs[pinger].output();
    assert!(
        ping.is_some() && ping_out.contains(" 0% packet loss"),
        "phase 2 ping: {ping_out}"
    );
    let survivors = c.names();
    let kv = members_kv(&url).await;
    eventually(
        "the survivors to own every shard",
        Duration::from_secs(60),
        async || settled(&kv, &survivors).await,
    )
    .await;
    let r_a2 = c.stop_sensor(sa2);
    let r_b2 = c.stop_sensor(sb2);
    println!("phase 2: {rounds} HTTP + DNS rounds; sensors: a {r_a2:?}, b {r_b2:?}");
    for r in [&r_a2, &r_b2] {
        assert_eq!(
            (r.failed, r.records_dropped),
            (0, 0),
            "lost across the NATS restart: {r:?}"
        );
    }

    // --- What was on the wire, and what the cluster counted. ---------------------------------
    let mut truth = Totals::new();
    for (i, file) in &dumps {
        let p = &mut c.procs[*i];
        p.stop(Duration::from_secs(10));
        let out = p.output();
        assert!(
            out.lines()
                .any(|l| l.trim() == "0 packets dropped by kernel"),
            "{}: {out}",
            p.name
        );
        sum(&mut truth, &pcap_totals(file));
    }
    // Each sensor saw every lan0 packet once: the hosts count them at two observation points.
    truth.insert((flow_a.clone(), 0), [588, 588, 7, 7]);
    truth.insert((flow_b.clone(), 0), [588, 588, 7, 7]);
    let bases = c.bases();
    let got = eventually(
        "every host's totals to equal the wire's",
        Duration::from_secs(120),
        async || {
            let got = cluster_totals(&client, &bases).await?;
            if got == truth {
                Ok(got)
            } else {
                Err(diff(&truth, &got))
            }
        },
    )
    .await;
    // And it stays so (nothing applied twice later).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster_totals(&client, &bases).await, Ok(got.clone()));
    // Alerts after the takeover and the replay: no replica lists an alert key twice (keys are
    // idempotent), and the injection's alert is still known to the cluster.
    let sqli_key = sqli_alerts[0]["key"].as_str().unwrap().to_owned();
    let mut holders = 0;
    for base in &bases {
        let keys: Vec<String> = gather(&client, std::slice::from_ref(base), "/api/v2/alerts")
            .await
            .expect("alerts")
            .iter()
            .filter_map(|a| a["key"].as_str().map(str::to_owned))
            .collect();
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(
            distinct.len(),
            keys.len(),
            "{base} lists an alert key twice"
        );
        holders += usize::from(distinct.contains(&sqli_key));
    }
    println!("the injection's alert is listed by {holders} of the 2 survivors");
    // Asked as a client, each replica answers for the whole cluster (gathered) — or, with an
    // engine that does not gather yet, for its own shards.
    for base in &bases {
        let as_client = totals_as_client(&client, base).await.unwrap();
        let own = cluster_totals(&client, std::slice::from_ref(base))
            .await
            .unwrap();
        if as_client == got {
            println!("{base} answers /api/v2/hosts for the whole cluster");
        } else {
            assert_eq!(
                as_client, own,
                "{base}: neither the cluster's nor its own hosts"
            );
            println!("{base} answers /api/v2/hosts for its own shards only");
        }
    }
    for e in &mut c.engines {
        assert!(
            e.proc.alive(),
            "{} died:\n{}",
            e.name,
            tail(&e.proc.output(), 30)
        );
    }
    assert!(c.nats.proc.alive());
    drop(killed_engine);
    let packets: u64 = got.values().map(|v| v[2]).sum();
    println!(
        "e2e: {} hosts, {packets} packets counted exactly once across kill -9 and a NATS restart; {:.0} s in all",
        got.len(),
        started.elapsed().as_secs_f64()
    );
}
