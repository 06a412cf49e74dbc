//! The engine's analysis core without I/O: flow records straight into `State::apply_batch`
//! (flow checks, host updates, host checks, score, DES sampling, alert outbox), one thread.
//!
//! ```sh
//! cargo bench -p netwarden-engine --bench analysis            # 2,000,000 records
//! cargo bench -p netwarden-engine --bench analysis -- 500000  # fewer
//! ```
//!
//! Prints records/s for a realistic mix and for the worst case (every record a new spoofed
//! host), the flow checks alone, and the memory a tracked host costs (struct sizes and resident
//! memory growth per host), the per-record cost of the service map and periodicity (off vs on) and
//! the memory per edge. Results go to docs/PERFORMANCE.md ("Engine analysis core",
//! "Service map and periodicity").
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use netwarden_api::flow::{
    DirectionStats, DnsInfo, FlowRecord, FlowUpdate, L7Info, ObservationPoint, TlsInfo, ip_to_bytes,
};
use netwarden_engine::alerts::{Analysis, AnalysisConfig, HostSeries};
use netwarden_engine::checks::host::HostCheckState;
use netwarden_engine::checks::{ChecksConfig, flow};
use netwarden_engine::hosts::{Host, HostKey, PointKey, Side};
use netwarden_engine::score::HostScore;
use netwarden_engine::servicemap::{ServiceMap, ServiceMapConfig};
use netwarden_engine::state::{State, StateConfig};
use netwarden_engine::store::FlowKey;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
const BATCH: usize = 1000;

/// A small deterministic generator (xorshift64*), so every run sees the same records.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn point() -> ObservationPoint {
    ObservationPoint {
        sensor: "node-1".into(),
        interface: "eth0".into(),
        ..Default::default()
    }
}

/// Record `i` of the realistic mix: 20,000 local clients, 2,000 servers (a quarter remote),
/// TLS with SNI, DNS with queries, HTTP, some unanswered SYNs and some risks; one final record
/// per flow, 20,000 flows per second of flow time.
fn mixed(i: u64, rng: &mut Rng) -> FlowRecord {
    let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + rng.below(20_000) as u32));
    let s = rng.below(2_000) as u32;
    let server = if s.is_multiple_of(4) {
        IpAddr::V4(Ipv4Addr::from(0x5db8_0000 + s))
    } else {
        IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + s))
    };
    let kind = rng.below(100);
    let t = T0 + i * S / 20_000;
    let (port, proto, l7) = match kind {
        0..=49 => (
            443,
            6,
            Some(L7Info {
                master_protocol: "TLS".into(),
                app_protocol: "Google".into(),
                category: "Web".into(),
                hostname: format!("h{}.example.com", rng.below(5_000)),
                tls: Some(TlsInfo {
                    version: 0x0304,
                    sni: String::new(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
        50..=79 => (
            53,
            17,
            Some(L7Info {
                master_protocol: "DNS".into(),
                category: "Network".into(),
                dns: Some(DnsInfo {
                    query: format!("q{}.example.org", rng.below(10_000)),
                    query_type: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        ),
        80..=94 => (
            80,
            6,
            Some(L7Info {
                master_protocol: "HTTP".into(),
                category: "Web".into(),
                hostname: "intranet.local".into(),
                ..Default::default()
            }),
        ),
        _ => (1 + rng.below(1024) as u32, 6, None),
    };
    let unanswered = kind >= 95;
    let mut r = FlowRecord {
        flow_id: i,
        observation_point: Some(point()),
        ip_version: 4,
        client_ip: ip_to_bytes(client),
        server_ip: ip_to_bytes(server),
        client_port: 32_768 + rng.below(28_000) as u32,
        server_port: port,
        l4_proto: proto,
        first_seen_ns: t.saturating_sub(S / 2),
        last_seen_ns: t,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 6,
            bytes: 900,
            goodput_bytes: 500,
            tcp_flags: if proto == 6 { 0x1b } else { 0 },
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: if unanswered { 0 } else { 8 },
            bytes: if unanswered { 0 } else { 6_000 },
            goodput_bytes: if unanswered { 0 } else { 5_400 },
            tcp_flags: if proto == 6 && !unanswered { 0x1b } else { 0 },
            ..Default::default()
        }),
        l7,
        ..Default::default()
    };
    if unanswered {
        r.c2s.as_mut().unwrap().tcp_flags = 0x02;
    }
    // 2% with a risk (numeric IP host, 10 points): alerts, score and outbox traffic.
    if rng.below(50) == 0 {
        r.set_risk(12, None);
    }
    r
}

/// Record `i` of the worst case: a new spoofed source every record, to one victim.
fn spoofed(i: u64) -> FlowRecord {
    FlowRecord {
        flow_id: i,
        observation_point: Some(point()),
        ip_version: 4,
        client_ip: ip_to_bytes(IpAddr::V4(Ipv4Addr::from(0x2000_0000 + i as u32))),
        server_ip: ip_to_bytes(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        client_port: 40_000,
        server_port: 80,
        l4_proto: 6,
        first_seen_ns: T0 + i * S / 100_000,
        last_seen_ns: T0 + i * S / 100_000,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 1,
            bytes: 60,
            tcp_flags: 0x02,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Applies `records` in batches, draining the outbox after each (as ingest does); returns
/// records per wall second and per CPU second.
fn run(state: &mut State, records: Vec<FlowRecord>) -> (f64, f64) {
    let n = records.len() as u64;
    let mut batches: Vec<Vec<FlowRecord>> = Vec::new();
    let mut it = records.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(BATCH).collect());
    }
    rates(n, || {
        for b in batches {
            black_box(state.apply_batch(b));
            black_box(state.analysis.drain_outbox());
        }
    })
}

/// CPU time this process used, seconds (Linux `/proc/self/stat` utime + stime, 10 ms ticks):
/// on a shared machine, rates per CPU-second are steadier than wall-clock rates.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Runs `f` over `n` items; returns (items per wall second, items per CPU second).
fn rates(n: u64, f: impl FnOnce()) -> (f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_secs());
    f();
    let (w, c) = (wall.elapsed().as_secs_f64(), cpu_secs() - cpu);
    (n as f64 / w, if c > 0.0 { n as f64 / c } else { 0.0 })
}

/// Resident memory, bytes (Linux `/proc/self/statm`; 0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    // `-- core`: only the flow checks, the analysis and the whole core (for profiling).
    let core_only = std::env::args().any(|a| a == "core");
    // Memory per service-map edge first, on a fresh heap: unique edges between hosts, each
    // with its periodicity pair (the map stays alive so later figures are not its reuse).
    let edges = if core_only { 0 } else { n.min(300_000) };
    let analysis = Analysis::default();
    let mut servicemap = ServiceMap::new(
        ServiceMapConfig {
            max_edges: 1_000_000,
            ..ServiceMapConfig::default()
        },
        0,
    );
    let edge_records: Vec<FlowRecord> = (0..edges).map(spoofed).collect();
    let before = rss();
    for r in &edge_records {
        black_box(servicemap.observe(r, "HTTP", true, &analysis));
    }
    let per_edge = (rss().saturating_sub(before)) as f64 / servicemap.edges.len() as f64;
    drop(edge_records);

    // Worst case first (a fresh heap, so the resident-set growth is this table's): every
    // record a new host; memory per host from the resident-set growth.
    let hosts = n.min(1_000_000);
    let spoof: Vec<FlowRecord> = (0..hosts).map(spoofed).collect();
    let mut state = State::new(&StateConfig {
        max_hosts: 2_000_000,
        max_active_flows: 1024,
        history: 1024,
        ..StateConfig::default()
    });
    let before = rss();
    let spoof_rate = run(&mut state, spoof);
    let per_host = (rss().saturating_sub(before)) as f64 / state.hosts.len() as f64;
    println!(
        "spoofed: {} hosts tracked ({} scored)",
        state.hosts.len(),
        state.analysis.scores.hosts().count()
    );

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mixed_records: Vec<FlowRecord> = (0..n).map(|i| mixed(i, &mut rng)).collect();

    // Flow checks alone.
    let cfg = ChecksConfig::default();
    let mut alerts = 0usize;
    let checks_rate = rates(n, || {
        for r in &mixed_records {
            alerts += flow::run(black_box(r), &cfg).len();
        }
    });

    // Flow checks, host checks, score and alert outbox (the analysis), without the host table,
    // the flow store and the per-protocol totals.
    let mut an = Analysis::new(AnalysisConfig::default(), 1_000_000, 1_000_000);
    let analysis_rate = rates(n, || {
        for (i, r) in mixed_records.iter().enumerate() {
            let alerts = an.check_flow(r);
            let flow = FlowKey {
                point: PointKey(1),
                flow_id: r.flow_id,
            };
            for (side, ip) in [
                (Side::Server, r.server_addr()),
                (Side::Client, r.client_addr()),
            ] {
                let host = HostKey {
                    ip: ip.unwrap(),
                    vlan: 0,
                };
                an.apply_flow_side(r, &alerts, flow, side, host, true, 6);
            }
            if i % BATCH == 0 {
                black_box(an.drain_outbox());
            }
        }
    });
    drop(an);

    // Service map and periodicity (docs/servicemap.md): the same part of the mix through the
    // whole core with them off, then on, alternating, best of three per CPU-second each.
    let m = (n as usize).min(500_000);
    let sm_off = StateConfig {
        servicemap: ServiceMapConfig {
            enabled: false,
            ..ServiceMapConfig::default()
        },
        ..StateConfig::default()
    };
    // The mix makes a new edge of nearly every flow (random client x server pairs): the worst
    // case. The steady variant keeps its services between 200 clients and 50 servers, so
    // edges are reused as in a real network.
    let steady: Vec<FlowRecord> = mixed_records[..m]
        .iter()
        .enumerate()
        .map(|(i, r)| FlowRecord {
            client_ip: ip_to_bytes(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % 200) as u32))),
            server_ip: ip_to_bytes(IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + (i % 50) as u32))),
            ..r.clone()
        })
        .collect();
    let mut sm_rates = [(0.0f64, 0.0f64); 4];
    let mut sm_edges = [0; 2];
    for _ in 0..if core_only { 0 } else { 3 } {
        for (k, cfg) in [(0, &sm_off), (1, &StateConfig::default())] {
            for (w, records) in [(0, &mixed_records[..m]), (1, &steady[..])] {
                let mut st = State::new(cfg);
                let r = run(&mut st, records.to_vec());
                if r.1 > sm_rates[w * 2 + k].1 {
                    sm_rates[w * 2 + k] = r;
                }
                if k == 1 {
                    sm_edges[w] = st.servicemap.edges.len();
                }
            }
        }
    }
    // The service map alone (`observe` + `add_traffic`, as `State` calls them for the client
    // copy of each record): its absolute cost per record, best of three per CPU-second.
    let mut sm_alone = [0.0f64; 2];
    for _ in 0..if core_only { 0 } else { 3 } {
        for (w, records) in [(0, &mixed_records[..m]), (1, &steady[..])] {
            // The L7 name `State` passes (application, else master, else `Unknown`).
            let l7s: Vec<String> = records
                .iter()
                .map(|r| {
                    let l = r.l7.as_ref();
                    let app = l.map_or("", |l| l.app_protocol.as_str());
                    let master = l.map_or("", |l| l.master_protocol.as_str());
                    let name = if app.is_empty() { master } else { app };
                    if name.is_empty() { "Unknown" } else { name }.to_owned()
                })
                .collect();
            let cfg = StateConfig::default();
            let mut sm = ServiceMap::new(cfg.servicemap, cfg.max_active_flows);
            let an = Analysis::default();
            let r = rates(records.len() as u64, || {
                for (r, l7) in records.iter().zip(&l7s) {
                    let o = sm.observe(r, l7, true, &an);
                    if let Some(id) = o.edge {
                        sm.add_traffic(id, netwarden_engine::hosts::Counters::of(r));
                    }
                    black_box(o.alerts.len());
                }
            });
            sm_alone[w] = sm_alone[w].max(r.1);
        }
    }

    // The whole core, realistic mix (a warm-up pass first so tables are at their working size).
    let mut state = State::default();
    run(&mut state, mixed_records[..(n as usize / 4)].to_vec());
    let mut state = State::default();
    let mixed_rate = run(&mut state, mixed_records);
    let a = &state.analysis.counters;
    println!(
        "mixed: {n} records, {} hosts, {} flow alerts, {} host alerts engaged, {} anomalies",
        state.hosts.len(),
        a.flow_alerts,
        a.host_alerts_engaged,
        a.anomalies
    );
    drop(state);

    println!("records/s                                 wall    per CPU-second");
    for (what, (wall, cpu)) in [
        ("flow checks alone", checks_rate),
        ("analysis (checks, host checks, score)", analysis_rate),
        ("core (State::apply_batch), realistic mix", mixed_rate),
        ("core, a new host per record", spoof_rate),
    ] {
        println!("{what:<42} {wall:>10.0} {cpu:>10.0}");
    }
    println!("flow alerts raised by the checks alone: {alerts}");
    println!(
        "size_of: Host {} B, HostCheckState {} B, HostScore {} B, HostSeries {} B (+ {} B of samples when full)",
        size_of::<Host>(),
        size_of::<HostCheckState>(),
        size_of::<HostScore>(),
        size_of::<HostSeries>(),
        7 * netwarden_engine::alerts::SERIES_LEN
            * size_of::<netwarden_engine::alerts::SeriesSample>()
    );
    println!("resident memory per tracked host (spoofed, one flow each): {per_host:.0} B");
    for (w, what) in [(0, "mix, a new edge per flow"), (1, "steady, edges reused")] {
        let (off, on) = (sm_rates[w * 2], sm_rates[w * 2 + 1]);
        println!(
            "service map + periodicity, {what}: {m} records, {} edges held: off {:.0}/s, on {:.0}/s per CPU-second: +{:.1}% per record (+{:.0} ns); alone {:.0} ns per record",
            sm_edges[w],
            off.1,
            on.1,
            (off.1 / on.1 - 1.0) * 100.0,
            (1.0 / on.1 - 1.0 / off.1) * 1e9,
            1e9 / sm_alone[w]
        );
    }
    println!(
        "size_of: Edge {} B, Detector {} B; resident memory per edge with its periodicity pair: {per_edge:.0} B",
        size_of::<netwarden_engine::servicemap::Edge>(),
        size_of::<netwarden_engine::periodicity::Detector>()
    );
}
