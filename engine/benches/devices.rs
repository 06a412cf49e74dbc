//! Cost of device typing per flow record: `DeviceTable::apply` alone (evidence, MAC bindings,
//! the `device_protocol_not_allowed` check) against the whole `State::apply_batch` that calls
//! it, on a mix of 20,000 local hosts with Ethernet addresses (a quarter of the servers remote
//! behind one gateway address), DNS answered by local servers, HTTP with user agents, some
//! DHCP and mDNS, SSH between local hosts. Memory per tracked address is printed too.
//!
//! ```sh
//! cargo bench -p netwarden-engine --bench devices            # 1,000,000 records
//! cargo bench -p netwarden-engine --bench devices -- 200000  # fewer
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use netwarden_api::flow::{
    DhcpInfo, DirectionStats, DnsInfo, FlowRecord, FlowUpdate, HttpInfo, L7Info, ip_to_bytes,
};
use netwarden_engine::checks::ChecksConfig;
use netwarden_engine::devices::DeviceTable;
use netwarden_engine::state::State;

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

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

fn mac(n: u32) -> Vec<u8> {
    let b = n.to_be_bytes();
    vec![0xc4, 0x61, 0x8b, b[1], b[2], b[3]]
}

const GATEWAY: u32 = 0x00ff_fffe;

fn record(i: u64, rng: &mut Rng) -> FlowRecord {
    let c = rng.below(20_000) as u32;
    let s = rng.below(2_000) as u32;
    let remote = s.is_multiple_of(4);
    let (server, server_mac) = if remote {
        (Ipv4Addr::from(0x5db8_0000 + s), mac(GATEWAY))
    } else {
        (Ipv4Addr::from(0x0a64_0000 + s), mac(100_000 + s))
    };
    let kind = rng.below(100);
    let (port, l4, l7) = match kind {
        0..=49 => (
            443,
            6,
            L7Info {
                master_protocol: "TLS".into(),
                ..Default::default()
            },
        ),
        50..=79 => (
            53,
            17,
            L7Info {
                master_protocol: "DNS".into(),
                dns: Some(DnsInfo {
                    query: "example.org".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        80..=92 => (
            80,
            6,
            L7Info {
                master_protocol: "HTTP".into(),
                http: Some(HttpInfo {
                    user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        93..=95 => (
            22,
            6,
            L7Info {
                master_protocol: "SSH".into(),
                ..Default::default()
            },
        ),
        96..=97 => (
            5353,
            17,
            L7Info {
                master_protocol: "MDNS".into(),
                dns: Some(DnsInfo {
                    mdns_services: vec!["_ipp._tcp".into(), "_pdl-datastream._tcp".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        _ => (
            67,
            17,
            L7Info {
                master_protocol: "DHCP".into(),
                dhcp: Some(DhcpInfo {
                    mac: "c4:61:8b:00:00:01".into(),
                    hostname: "Lucas-iPhone".into(),
                    fingerprint: "1,121,3,6,15,119,252".into(),
                    vendor_class: String::new(),
                }),
                ..Default::default()
            },
        ),
    };
    FlowRecord {
        flow_id: i,
        ip_version: 4,
        client_ip: ip_to_bytes(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + c))),
        server_ip: ip_to_bytes(IpAddr::V4(server)),
        client_port: 40_000 + (i % 20_000) as u32,
        server_port: port,
        l4_proto: l4,
        client_mac: mac(c),
        server_mac,
        first_seen_ns: T0 + i * S / 20_000,
        last_seen_ns: T0 + i * S / 20_000 + S / 10,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 4,
            bytes: 600,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 4,
            bytes: 4000,
            ..Default::default()
        }),
        l7: Some(l7),
        ..Default::default()
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let records: Vec<FlowRecord> = (0..n).map(|i| record(i, &mut rng)).collect();
    let checks = ChecksConfig::default();

    let before = rss_kib();
    let mut table = DeviceTable::default();
    let t = Instant::now();
    for r in &records {
        black_box(table.apply(r, &checks, Vec::new()));
    }
    let alone = t.elapsed();
    let grown = rss_kib().saturating_sub(before);
    let tracked = table.len();
    println!(
        "devices alone: {n} records in {:.3} s = {:.0} ns/record ({} local addresses tracked, {} evidence items, ~{} B resident per address)",
        alone.as_secs_f64(),
        alone.as_nanos() as f64 / n as f64,
        tracked,
        table.counters.evidence,
        grown * 1024 / tracked.max(1) as u64,
    );
    let views = table
        .addresses()
        .filter_map(|a| table.view(a, None))
        .count();
    println!("views built: {views}");

    let mut state = State::default();
    let t = Instant::now();
    for chunk in records.chunks(1000) {
        state.apply_batch(chunk.to_vec());
    }
    let whole = t.elapsed();
    println!(
        "State::apply_batch (devices included): {:.0} ns/record; devices = {:.1}% of it",
        whole.as_nanos() as f64 / n as f64,
        100.0 * alone.as_secs_f64() / whole.as_secs_f64()
    );
    let alerts = state
        .analysis
        .store
        .iter()
        .filter(|a| a.alert.alert_type == "device_protocol_not_allowed")
        .count();
    println!("device_protocol_not_allowed alerts: {alerts}");
}
