//! The harness of the cluster test (`tests/cluster.rs`): two network namespaces joined by veth
//! pairs, the real binaries started as processes (nats-server, `netwarden-engine run` replicas,
//! `netwarden-sensor run` inside the namespaces, softflowd, tcpdump, traffic generators), and
//! guards that kill every process and delete every namespace they made, also when the test
//! panics.
//!
//! Topology (`N` = 100 + pid % 100, `M` = (pid / 100 % 50) × 5, so concurrent runs differ):
//!
//! ```text
//!   namespace nwe-<pid>-a                         namespace nwe-<pid>-b
//!   lan0 10.N.M.1/24     <── veth ──>            lan0 10.N.M.2/24      (captured by both sensors)
//!   lan1 10.N.M+1.1/24   <── veth ──>            lan1 10.N.M+1.2/24    (softflowd in a → NetFlow)
//!   mgmt 10.N.M+2.2/30  <─ veth ─> root: nwe<pid>a 10.N.M+2.1 (nats-server listens here)
//!                                  root: nwe<pid>b 10.N.M+2.5 <─ veth ─> mgmt 10.N.M+2.6/30
//! ```
//!
//! Sensors run inside the namespaces (`ip netns exec`) and reach NATS over `mgmt`; engines run
//! in the root namespace on loopback ports. IPv6 is off on every link so the only traffic is
//! what the test generates (and ARP, which carries no IP).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Namespace name prefix; leftovers of dead runs carrying it are deleted at start.
pub const PREFIX: &str = "nwe-";

/// Runs a command, `Err(stderr)` when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(|_| ())
}

/// A built binary of the workspace (`target/<profile>/NAME`, next to this test's `deps/`),
/// or `$NW_E2E_BIN_DIR/NAME`.
///
/// # Panics
/// When it is missing (build it with `cargo build --bins`; `cargo test` of the workspace does).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("NW_E2E_BIN_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().expect("current exe");
            // target/debug/deps/cluster-HASH → target/debug
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --bins` (the workspace's `cargo test` builds it)",
        path.display()
    );
    path
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A process the test started; killed (SIGKILL) and reaped on drop. Its stdout and stderr go
/// to `<logs>/<name>.log`.
pub struct Proc {
    /// Short name (log file name).
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with its output in `logs/name.log`.
    ///
    /// # Panics
    /// When it cannot be started.
    pub fn spawn(name: &str, cmd: &mut Command, logs: &Path) -> Self {
        let log = logs.join(format!("{name}.log"));
        let file = File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
            status: None,
        }
    }

    /// Its pid (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.status = Some(status);
                self.child = None;
                false
            }
            _ => false,
        }
    }

    /// Sends `signal` (`TERM`, `INT`…) with kill(1).
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-s", signal, &c.id().to_string()])
                .status();
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.status = c.wait().ok();
        }
    }

    /// Waits up to `timeout` for it to exit; its status, `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.status
    }

    /// SIGTERM, then up to `timeout` for a clean exit; SIGKILL after that. The exit status.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let status = self.wait_exit(timeout);
        if status.is_none() {
            self.kill9();
        }
        status
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its output contains `needle` (while it runs).
    ///
    /// # Panics
    /// When it exits first or `timeout` passes.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return;
            }
            assert!(
                self.alive(),
                "{} exited before printing {needle:?}:\n{}",
                self.name,
                tail(&self.output(), 40)
            );
            assert!(
                Instant::now() < deadline,
                "{} did not print {needle:?} within {timeout:?}:\n{}",
                self.name,
                tail(&self.output(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Why the cluster test cannot run here (not root, or namespaces refused), if so.
pub fn netns_unavailable() -> Option<String> {
    let probe = format!("{PREFIX}probe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(e),
    }
}

/// Deletes namespaces (and root-side links) of earlier runs whose process is gone.
pub fn remove_leftovers() {
    let Ok(out) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_none_or(|p| !pid_alive(p)) {
            kill_namespace_pids(name);
            let _ = ip(&["netns", "del", name]);
            eprintln!("e2e: removed leftover namespace {name}");
        }
    }
    if let Ok(out) = run("ip", &["-o", "link", "show"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: nwe1234a@if11: <...>"
            let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
                continue;
            };
            let Some(rest) = name.strip_prefix("nwe") else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(pid) = digits.parse::<u32>()
                && !pid_alive(pid)
            {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn kill_namespace_pids(ns: &str) {
    if let Ok(out) = run("ip", &["netns", "pids", ns]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

/// The two namespaces and their links; deleted (with every process left inside) on drop.
pub struct Topology {
    /// Namespace of the client side (`a`).
    pub ns_a: String,
    /// Namespace of the server side (`b`).
    pub ns_b: String,
    /// `lan0` address in `a`.
    pub lan_a: Ipv4Addr,
    /// `lan0` address in `b`.
    pub lan_b: Ipv4Addr,
    /// `lan1` address in `a` (NetFlow-only link).
    pub flow_a: Ipv4Addr,
    /// `lan1` address in `b`.
    pub flow_b: Ipv4Addr,
    /// Root-side address NATS listens on (reachable from both namespaces).
    pub nats_ip: Ipv4Addr,
    /// A /24 that only appears inside replayed packets (rewritten corpus copies).
    pub replay_net: [u8; 3],
    root_links: Vec<String>,
    namespaces: Vec<String>,
}

impl Topology {
    /// Creates the namespaces, links, addresses and routes.
    ///
    /// # Panics
    /// When a step fails (after what was made is removed by the guard).
    pub fn create() -> Self {
        let pid = std::process::id();
        let second = 100 + (pid % 100) as u8;
        let third = ((pid / 100) % 50 * 5) as u8;
        let mut topo = Self {
            ns_a: format!("{PREFIX}{pid}-a"),
            ns_b: format!("{PREFIX}{pid}-b"),
            lan_a: Ipv4Addr::new(10, second, third, 1),
            lan_b: Ipv4Addr::new(10, second, third, 2),
            flow_a: Ipv4Addr::new(10, second, third + 1, 1),
            flow_b: Ipv4Addr::new(10, second, third + 1, 2),
            nats_ip: Ipv4Addr::new(10, second, third + 2, 1),
            replay_net: [10, second, third + 3],
            root_links: Vec::new(),
            namespaces: Vec::new(),
        };
        let (ns_a, ns_b) = (topo.ns_a.clone(), topo.ns_b.clone());
        let root_a = format!("nwe{pid}a");
        let root_b = format!("nwe{pid}b");
        let mgmt = |last: u8| format!("10.{second}.{}.{last}", third + 2);
        for ns in [&ns_a, &ns_b] {
            ip(&["netns", "add", ns]).expect("ip netns add");
            topo.namespaces.push(ns.clone());
            // No IPv6 (router solicitations, MLD): only the generated traffic is on the links.
            for key in ["all", "default"] {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                    ],
                )
                .expect("sysctl in namespace");
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]).expect("lo up");
        }
        for link in ["lan0", "lan1"] {
            ip(&[
                "link", "add", link, "netns", &ns_a, "type", "veth", "peer", "name", link, "netns",
                &ns_b,
            ])
            .expect("veth between the namespaces");
        }
        for (root, ns) in [(&root_a, &ns_a), (&root_b, &ns_b)] {
            ip(&[
                "link", "add", root, "type", "veth", "peer", "name", "mgmt", "netns", ns,
            ])
            .expect("management veth");
            topo.root_links.push(root.clone());
            let _ = run(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{root}.disable_ipv6=1")],
            );
        }
        let addrs = [
            (&ns_a, "lan0", topo.lan_a.to_string() + "/24"),
            (&ns_b, "lan0", topo.lan_b.to_string() + "/24"),
            (&ns_a, "lan1", topo.flow_a.to_string() + "/24"),
            (&ns_b, "lan1", topo.flow_b.to_string() + "/24"),
            (&ns_a, "mgmt", mgmt(2) + "/30"),
            (&ns_b, "mgmt", mgmt(6) + "/30"),
        ];
        for (ns, dev, addr) in &addrs {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]).expect("address");
            ip(&["-n", ns, "link", "set", dev, "up"]).expect("link up");
        }
        ip(&["addr", "add", &(mgmt(1) + "/30"), "dev", &root_a]).expect("root address a");
        ip(&["addr", "add", &(mgmt(5) + "/30"), "dev", &root_b]).expect("root address b");
        ip(&["link", "set", &root_a, "up"]).expect("root link up");
        ip(&["link", "set", &root_b, "up"]).expect("root link up");
        // b reaches the NATS address (local to the root namespace) through its own link.
        ip(&[
            "-n",
            &ns_b,
            "route",
            "add",
            &(mgmt(1) + "/32"),
            "via",
            &mgmt(5),
        ])
        .expect("route to NATS");
        topo
    }

    /// `ip netns exec NS program args…`.
    pub fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Runs a command in a namespace to completion.
    pub fn run_in(&self, ns: &str, program: &str, args: &[&str]) -> Result<Output, String> {
        let mut all = vec!["netns", "exec", ns, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_namespace_pids(ns);
            let _ = ip(&["netns", "del", ns]);
        }
        for link in &self.root_links {
            let _ = ip(&["link", "del", link]);
        }
    }
}

/// A nats-server with JetStream listening on one address, restartable on the same port and
/// store.
pub struct Nats {
    /// The process.
    pub proc: Proc,
    addr: SocketAddr,
    store: PathBuf,
    logs: PathBuf,
    starts: u32,
}

impl Nats {
    /// Starts it on `ip` (a free port probed on loopback) with its store under `dir`.
    pub fn start(ip: Ipv4Addr, dir: &Path, logs: &Path) -> Self {
        let port = netwarden_testkit::free_port();
        let store = dir.join("jetstream");
        std::fs::create_dir_all(&store).expect("store dir");
        let addr = SocketAddr::from((ip, port));
        let proc = Self::spawn(addr, &store, logs, 0);
        Self {
            proc,
            addr,
            store,
            logs: logs.to_path_buf(),
            starts: 1,
        }
    }

    fn spawn(addr: SocketAddr, store: &Path, logs: &Path, n: u32) -> Proc {
        let mut proc = Proc::spawn(
            &format!("nats-{n}"),
            Command::new(netwarden_testkit::nats_server_binary())
                .args(["-a", &addr.ip().to_string()])
                .args(["-p", &addr.port().to_string(), "-js", "-sd"])
                .arg(store),
            logs,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                proc.alive(),
                "nats-server exited: {}",
                tail(&proc.output(), 20)
            );
            assert!(Instant::now() < deadline, "nats-server never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        proc
    }

    /// `nats://IP:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// `kill -9`, then a new server on the same port and store.
    pub fn restart(&mut self) {
        self.proc.kill9();
        std::thread::sleep(Duration::from_millis(500));
        self.proc = Self::spawn(self.addr, &self.store, &self.logs, self.starts);
        self.starts += 1;
    }
}

/// A `netwarden-engine run` replica on a loopback port.
pub struct Engine {
    /// Its replica name.
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The process.
    pub proc: Proc,
}

impl Engine {
    /// Starts a replica with `shards` shards and a `ttl`-second lease.
    pub fn start(nats: &str, name: &str, shards: u32, ttl: u64, logs: &Path) -> Self {
        let port = netwarden_testkit::free_port();
        let proc = Proc::spawn(
            name,
            Command::new(binary("netwarden-engine"))
                .args(["run", "--insecure-no-auth", "--log-level", "warn"])
                .args(["--nats", nats, "--replica", name])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--shards", &shards.to_string()])
                .args(["--lease-ttl", &ttl.to_string(), "--snapshot-interval", "1"]),
            logs,
        );
        Self {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            proc,
        }
    }
}

/// What `netwarden-sensor run` printed at exit: its run summary and JetStream counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SensorReport {
    /// Frames captured.
    pub packets: u64,
    /// Records published.
    pub records_exported: u64,
    /// Records lost (queue full or batch dropped).
    pub records_dropped: u64,
    /// NetFlow/IPFIX records collected.
    pub collected_records: u64,
    /// JetStream publishes acknowledged.
    pub acked: u64,
    /// JetStream publishes given up.
    pub failed: u64,
}

impl SensorReport {
    /// Parses the sensor's end-of-run output (`None` when it has none).
    pub fn parse(output: &str) -> Option<Self> {
        let field = |text: &str, key: &str| -> Option<u64> {
            let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
            text[at..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let js = output.lines().find_map(|l| l.strip_prefix("jetstream: "))?;
        Some(Self {
            packets: field(output, "packets")?,
            records_exported: field(output, "records_exported")?,
            records_dropped: field(output, "records_dropped")?,
            collected_records: field(output, "collected_records")?,
            acked: field(js, "acked")?,
            failed: field(js, "failed")?,
        })
    }
}

/// Host totals by (address, VLAN): `[bytes sent, bytes received, packets sent, packets received]`.
pub type Totals = BTreeMap<(String, u64), [u64; 4]>;

/// Adds one flow record (JSON, as the API and `netwarden-sensor flows` print it) to `totals`.
pub fn add_flow(totals: &mut Totals, flow: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let vlan = n(&flow["vlan"]);
    let (Some(client), Some(server)) = (flow["client_ip"].as_str(), flow["server_ip"].as_str())
    else {
        return;
    };
    let (c2s, s2c) = (&flow["c2s"], &flow["s2c"]);
    let c = totals.entry((client.to_owned(), vlan)).or_default();
    c[0] += n(&c2s["bytes"]);
    c[1] += n(&s2c["bytes"]);
    c[2] += n(&c2s["packets"]);
    c[3] += n(&s2c["packets"]);
    let s = totals.entry((server.to_owned(), vlan)).or_default();
    s[0] += n(&s2c["bytes"]);
    s[1] += n(&c2s["bytes"]);
    s[2] += n(&s2c["packets"]);
    s[3] += n(&c2s["packets"]);
}

/// What was on the wire of a capture, per host: the sensor's own offline reading of the pcap
/// (`netwarden-sensor flows --no-timeouts`). Host totals do not depend on how a live sensor
/// split the flows in time, so a live sensor that lost or doubled nothing gives the same.
pub fn pcap_totals(pcap: &Path) -> Totals {
    let out = Command::new(binary("netwarden-sensor"))
        .args(["flows", "--format", "jsonl", "--no-timeouts", "--pcap"])
        .arg(pcap)
        .output()
        .expect("netwarden-sensor flows");
    assert!(
        out.status.success(),
        "netwarden-sensor flows {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut totals = Totals::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Ok(flow) = serde_json::from_str::<Value>(line) {
            add_flow(&mut totals, &flow);
        }
    }
    totals
}

/// Sums two sets of totals.
pub fn sum(into: &mut Totals, more: &Totals) {
    for (k, v) in more {
        let e = into.entry(k.clone()).or_default();
        for i in 0..4 {
            e[i] += v[i];
        }
    }
}

/// Renders the differences of two totals (for assertion messages).
pub fn diff(want: &Totals, got: &Totals) -> String {
    let mut out = String::new();
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            g => {
                let _ = writeln!(out, "  {k:?}: want {w:?}, got {g:?}");
            }
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            let _ = writeln!(out, "  {k:?}: unexpected {g:?}");
        }
    }
    out
}

/// The hop header replicas use among themselves: a request carrying it is answered by the
/// replica it reaches from its own shards, never forwarded or gathered (docs/api.md).
pub const LOCAL_ONLY: (&str, &str) = ("x-netwarden-forwarded-by", "e2e-test");

/// GET `url` as JSON, answered by that replica alone ([`LOCAL_ONLY`]); `None` on any error or
/// non-2xx.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    get_json_as(http, url, true).await
}

/// GET `url` as JSON, local to the replica (`local`) or as any client asks (forwarded or
/// gathered for the whole cluster where the engine does so).
pub async fn get_json_as(http: &reqwest::Client, url: &str, local: bool) -> Option<Value> {
    let mut req = http.get(url).timeout(Duration::from_secs(10));
    if local {
        req = req.header(LOCAL_ONLY.0, LOCAL_ONLY.1);
    }
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// The host totals one replica gives a client that does not say it is a replica (the whole
/// cluster's when the replica gathers `/api/v2/hosts`, its own otherwise).
pub async fn totals_as_client(http: &reqwest::Client, base: &str) -> Result<Totals, String> {
    let page = get_json_as(http, &format!("{base}/api/v2/hosts?limit=1000"), false)
        .await
        .ok_or_else(|| format!("{base}/api/v2/hosts did not answer"))?;
    if page.get("unreachable").is_some() {
        return Err(format!("partial page: {}", page["unreachable"]));
    }
    let mut totals = Totals::new();
    for h in page["items"].as_array().cloned().unwrap_or_default() {
        let n = |k: &str| h[k].as_u64().unwrap_or(0);
        let key = (h["ip"].as_str().unwrap_or_default().to_owned(), n("vlan"));
        totals.insert(
            key,
            [
                n("bytes_sent"),
                n("bytes_rcvd"),
                n("packets_sent"),
                n("packets_rcvd"),
            ],
        );
    }
    Ok(totals)
}

/// Every item of a paged `/api/v2` list of one replica.
pub async fn all_items(http: &reqwest::Client, base: &str, path: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = get_json(
            http,
            &format!("{base}{path}{sep}limit=1000&offset={}", out.len()),
        )
        .await?;
        let items = page["items"].as_array()?.clone();
        let total = usize::try_from(page["total"].as_u64()?).ok()?;
        let empty = items.is_empty();
        out.extend(items);
        if out.len() >= total || empty {
            return Some(out);
        }
    }
}

/// The items of `path` on every replica, each answering alone ([`LOCAL_ONLY`]),
/// concatenated (`None` when one does not answer): the cluster's view built by the test itself,
/// whatever the replicas forward or gather. Hosts are on one replica each once the shard table
/// is settled; alerts indexed from `NW_ALERTS` show once per replica.
pub async fn gather(http: &reqwest::Client, bases: &[String], path: &str) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for base in bases {
        out.extend(all_items(http, base, path).await?);
    }
    Some(out)
}

/// The hosts' totals over `bases`; `Err` when a replica does not answer or a host shows on two.
pub async fn cluster_totals(http: &reqwest::Client, bases: &[String]) -> Result<Totals, String> {
    let mut totals = Totals::new();
    for base in bases {
        let hosts = all_items(http, base, "/api/v2/hosts")
            .await
            .ok_or_else(|| format!("{base}/api/v2/hosts did not answer"))?;
        for h in hosts {
            let n = |k: &str| h[k].as_u64().unwrap_or(0);
            let key = (h["ip"].as_str().unwrap_or_default().to_owned(), n("vlan"));
            let row = [
                n("bytes_sent"),
                n("bytes_rcvd"),
                n("packets_sent"),
                n("packets_rcvd"),
            ];
            if let Some(other) = totals.insert(key.clone(), row) {
                return Err(format!(
                    "{key:?} on two replicas: {other:?} and {row:?} ({base})"
                ));
            }
        }
    }
    Ok(totals)
}

/// Polls `check` every 250 ms until it gives `Some`, for at most `timeout`.
///
/// # Panics
/// On timeout, with `what` and the last state `describe` gives.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out after {timeout:?} waiting for {what}; last state:\n{last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
