//! Flow-table behaviour with hand-built packets.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use netwarden_api::flow::{EndReason, FlowRecord, FlowUpdate, proto};

use super::*;
use crate::decode::{Fragment, PacketView, TcpInfo, Tunnel, tcp_flags as F};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn udp(ts: u64, src: &str, sport: u16, dst: &str, dport: u16, len: u32) -> PacketView<'static> {
    PacketView {
        ts_ns: ts,
        wire_len: len + 42,
        src: ip(src),
        dst: ip(dst),
        proto: proto::UDP,
        src_port: sport,
        dst_port: dport,
        payload_len: len,
        ..PacketView::empty()
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    ts: u64,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    flags: u8,
    seq: u32,
    len: u32,
) -> PacketView<'static> {
    PacketView {
        ts_ns: ts,
        wire_len: len + 54,
        src: ip(src),
        dst: ip(dst),
        proto: proto::TCP,
        src_port: sport,
        dst_port: dport,
        tcp: Some(TcpInfo {
            seq,
            ack: 1,
            flags,
            window: 65535,
            window_scale: None,
        }),
        payload_len: len,
        ..PacketView::empty()
    }
}

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

struct Run {
    table: FlowTable,
    out: Vec<FlowRecord>,
}

impl Run {
    fn new(config: FlowConfig) -> Self {
        let mut table = FlowTable::new(config, "node1");
        table.set_interface("eth0");
        Self {
            table,
            out: Vec::new(),
        }
    }
    fn feed(&mut self, pkts: &[PacketView<'_>]) -> &mut Self {
        for p in pkts {
            self.table.process(p, &mut |r| self.out.push(r));
        }
        self
    }
    fn finish(&mut self) -> Vec<FlowRecord> {
        self.table.finish(&mut |r| self.out.push(r));
        std::mem::take(&mut self.out)
    }
}

fn finals(config: FlowConfig, pkts: &[PacketView<'_>]) -> Vec<FlowRecord> {
    Run::new(config)
        .feed(pkts)
        .finish()
        .into_iter()
        .filter(FlowRecord::is_final)
        .collect()
}

fn handshake(t0: u64) -> Vec<PacketView<'static>> {
    vec![
        tcp(t0, C, 40000, S, 443, F::SYN, 1000, 0),
        tcp(t0 + 10 * MS, S, 443, C, 40000, F::SYN | F::ACK, 5000, 0),
        tcp(t0 + 12 * MS, C, 40000, S, 443, F::ACK, 1001, 0),
    ]
}

fn client(r: &FlowRecord) -> (IpAddr, u32) {
    (r.client_addr().unwrap(), r.client_port)
}

#[test]
fn syn_sender_is_client_and_rtts_are_measured() {
    let mut pkts = handshake(SEC);
    pkts.push(tcp(
        SEC + 20 * MS,
        C,
        40000,
        S,
        443,
        F::ACK | F::PSH,
        1001,
        100,
    ));
    pkts.push(tcp(
        SEC + 30 * MS,
        S,
        443,
        C,
        40000,
        F::ACK | F::PSH,
        5001,
        1000,
    ));
    let recs = finals(FlowConfig::default(), &pkts);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(client(r), (ip(C), 40000));
    assert_eq!((r.server_addr().unwrap(), r.server_port), (ip(S), 443));
    assert_eq!(r.rtt_server_ns, 10 * MS);
    assert_eq!(r.rtt_client_ns, 2 * MS);
    let (c2s, s2c) = (r.c2s.unwrap(), r.s2c.unwrap());
    assert_eq!(
        (c2s.packets, c2s.bytes, c2s.goodput_bytes),
        (3, 54 * 3 + 100, 100)
    );
    assert_eq!((s2c.packets, s2c.goodput_bytes), (2, 1000));
    assert_eq!(c2s.tcp_flags, u32::from(F::SYN | F::ACK | F::PSH));
    assert_eq!(r.end_reason, EndReason::EndOfCapture as i32);
    assert_eq!(
        (r.ip_version, r.l4_proto, r.sampling_rate, r.flow_id),
        (4, 6, 1, 1)
    );
    let op = r.observation_point.as_ref().unwrap();
    assert_eq!(
        (op.sensor.as_str(), op.interface.as_str()),
        ("node1", "eth0")
    );
    assert_eq!((r.first_seen_ns, r.last_seen_ns), (SEC, SEC + 30 * MS));
}

#[test]
fn synack_seen_first_makes_its_receiver_the_client() {
    let pkts = [
        tcp(SEC, S, 8000, C, 40000, F::SYN | F::ACK, 1, 0),
        tcp(SEC + MS, C, 40000, S, 8000, F::ACK, 1, 0),
    ];
    let r = &finals(FlowConfig::default(), &pkts)[0];
    assert_eq!(client(r), (ip(C), 40000));
    assert_eq!(r.rtt_client_ns, MS);
    assert_eq!(r.rtt_server_ns, 0);
}

#[test]
fn well_known_source_port_makes_the_destination_the_client() {
    // A DNS answer seen before (or without) its query.
    let r = &finals(FlowConfig::default(), &[udp(SEC, S, 53, C, 51000, 80)])[0];
    assert_eq!(client(r), (ip(C), 51000));
    assert_eq!(r.s2c.unwrap().packets, 1);
    // Mid-stream TCP from a known service port above 1024.
    let r = &finals(
        FlowConfig::default(),
        &[tcp(SEC, S, 8080, C, 50000, F::ACK, 1, 10)],
    )[0];
    assert_eq!(client(r), (ip(C), 50000));
    // Both sides on service ports: the sender stays the client.
    let r = &finals(FlowConfig::default(), &[udp(SEC, S, 123, C, 123, 48)])[0];
    assert_eq!(client(r), (ip(S), 123));
    // Plain first packet between ephemeral ports: the sender.
    let r = &finals(FlowConfig::default(), &[udp(SEC, S, 40001, C, 40002, 10)])[0];
    assert_eq!(client(r), (ip(S), 40001));
}

#[test]
fn tcp_retransmission_out_of_order_lost_and_zero_window() {
    let mut pkts = handshake(SEC);
    let t = SEC + 20 * MS;
    pkts.extend([
        tcp(t, C, 40000, S, 443, F::ACK, 1001, 100),
        tcp(t + 1, C, 40000, S, 443, F::ACK, 1001, 100), // retransmission
        tcp(t + 2, C, 40000, S, 443, F::ACK, 1201, 100), // gap [1101, 1201)
        tcp(t + 3, C, 40000, S, 443, F::ACK, 1401, 100), // gap [1301, 1401)
        tcp(t + 4, C, 40000, S, 443, F::ACK, 1301, 100), // fills the last gap: out of order
    ]);
    let mut zw = tcp(t + 5, S, 443, C, 40000, F::ACK, 5001, 0);
    zw.tcp.as_mut().unwrap().window = 0;
    let mut rst = tcp(t + 6, S, 443, C, 40000, F::RST, 5001, 0);
    rst.tcp.as_mut().unwrap().window = 0;
    pkts.extend([zw, rst]);
    let r = &finals(FlowConfig::default(), &pkts)[0];
    let (c2s, s2c) = (r.c2s.unwrap(), r.s2c.unwrap());
    assert_eq!(c2s.retransmissions, 1);
    assert_eq!(c2s.out_of_order, 1);
    assert_eq!(c2s.lost, 1, "the first gap was never filled");
    assert_eq!(c2s.goodput_bytes, 400);
    assert_eq!(
        s2c.zero_window, 1,
        "a RST with window 0 is not a zero-window event"
    );
    assert_eq!(r.end_reason, EndReason::Rst as i32);
}

#[test]
fn idle_timeout_splits_flows() {
    let pkts = [
        udp(SEC, C, 5000, S, 5001, 10),
        udp(2 * SEC, S, 5001, C, 5000, 10),
        udp(100 * SEC, C, 5000, S, 5001, 10),
    ];
    let mut run = Run::new(FlowConfig::default());
    run.feed(&pkts);
    assert_eq!(run.out.len(), 1, "the first flow ended when time moved on");
    assert_eq!(run.out[0].end_reason, EndReason::IdleTimeout as i32);
    assert_eq!(run.out[0].total_packets(), 2);
    let all = run.finish();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].flow_id, 2);
    assert_eq!(run.table.stats().expired, 1);
}

#[test]
fn established_tcp_gets_a_longer_idle_timeout() {
    let mut pkts = handshake(SEC);
    pkts.push(tcp(100 * SEC, C, 40000, S, 443, F::ACK, 1001, 10));
    assert_eq!(finals(FlowConfig::default(), &pkts).len(), 1);
    pkts.push(tcp(300 * SEC, C, 40000, S, 443, F::ACK, 1011, 10));
    assert_eq!(finals(FlowConfig::default(), &pkts).len(), 2);
}

#[test]
fn active_timeout_emits_periodic_records_with_cumulative_counters() {
    let pkts: Vec<_> = (0..=150)
        .map(|s| udp(s * SEC, C, 5000, S, 5001, 10))
        .collect();
    let mut run = Run::new(FlowConfig::default());
    run.feed(&pkts);
    let all = run.finish();
    let periodic: Vec<_> = all
        .iter()
        .filter(|r| r.update == FlowUpdate::Periodic as i32)
        .collect();
    assert_eq!(periodic.len(), 2);
    assert!(
        periodic
            .iter()
            .all(|r| r.end_reason == EndReason::ActiveTimeout as i32)
    );
    assert_eq!((periodic[0].update_seq, periodic[1].update_seq), (0, 1));
    assert!(periodic[0].total_packets() < periodic[1].total_packets());
    assert_eq!(
        periodic[0].total_packets(),
        60,
        "the sweep at t=60 s runs before that packet"
    );
    let last = all.last().unwrap();
    assert!(last.is_final());
    assert_eq!((last.update_seq, last.total_packets()), (2, 151));
    assert!(all.iter().all(|r| r.flow_id == 1));
}

#[test]
fn fin_from_both_sides_ends_after_the_linger() {
    let mut pkts = handshake(SEC);
    pkts.extend([
        tcp(2 * SEC, C, 40000, S, 443, F::FIN | F::ACK, 1001, 0),
        tcp(2 * SEC + MS, S, 443, C, 40000, F::FIN | F::ACK, 5001, 0),
        // The last ACK arrives during the linger: same flow.
        tcp(2 * SEC + 2 * MS, C, 40000, S, 443, F::ACK, 1002, 0),
        // Much later, unrelated traffic moves the clock past the linger.
        udp(30 * SEC, C, 1, S, 2, 0),
    ]);
    let mut run = Run::new(FlowConfig::default());
    run.feed(&pkts);
    assert_eq!(run.out.len(), 1);
    let r = &run.out[0];
    assert_eq!(
        (r.end_reason, r.total_packets()),
        (EndReason::Fin as i32, 6)
    );
    assert_eq!(run.table.stats().closed, 1);
}

#[test]
fn packets_after_a_rst_stay_in_the_flow() {
    let mut pkts = handshake(SEC);
    for i in 0..20 {
        pkts.push(tcp(
            SEC + (i + 1) * 100 * MS,
            S,
            443,
            C,
            40000,
            F::RST,
            5001,
            0,
        ));
    }
    let recs = finals(FlowConfig::default(), &pkts);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].end_reason, recs[0].total_packets()),
        (EndReason::Rst as i32, 23)
    );
}

#[test]
fn full_table_evicts_the_oldest_and_counts() {
    let config = FlowConfig {
        max_flows: 200,
        ..FlowConfig::default()
    };
    let pkts: Vec<_> = (0..250u16)
        .map(|i| udp(SEC + u64::from(i), C, 10000 + i, S, 53, 10))
        .collect();
    let mut run = Run::new(config);
    run.feed(&pkts);
    let evicted: Vec<_> = run
        .out
        .iter()
        .filter(|r| r.end_reason == EndReason::Evicted as i32)
        .collect();
    assert_eq!(evicted.len(), 50);
    assert!(evicted.iter().all(|r| r.is_final()));
    // The oldest went first.
    assert_eq!(
        evicted.iter().map(|r| r.flow_id).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    assert_eq!(run.table.stats().evicted, 50);
    assert!(run.table.len() <= 200);
    assert_eq!(run.finish().len(), 250, "50 evicted + 200 at the end");
}

#[test]
fn later_fragments_are_attributed_by_id() {
    let mut first = udp(SEC, C, 5000, S, 5001, 1472);
    first.fragment = Fragment::First { id: 77 };
    let later = |ts, id, more| PacketView {
        ts_ns: ts,
        wire_len: 600,
        src: ip(C),
        dst: ip(S),
        proto: proto::UDP,
        fragment: Fragment::Later { id, more },
        payload_len: 566,
        ..PacketView::empty()
    };
    let pkts = [
        first,
        later(SEC + 1, 77, true),
        later(SEC + 2, 77, false),
        later(SEC + 3, 77, false),
        later(SEC + 4, 99, false),
    ];
    let mut run = Run::new(FlowConfig::default());
    run.feed(&pkts);
    let stats = run.table.stats().clone();
    let recs = run.finish();
    assert_eq!(recs.len(), 1, "no flow from later fragments");
    let c2s = recs[0].c2s.unwrap();
    assert_eq!((c2s.packets, c2s.fragments, c2s.bytes), (3, 3, 1514 + 1200));
    assert_eq!((stats.fragments_matched, stats.fragments_unmatched), (2, 2));
}

#[test]
fn vlan_and_tunnel_make_separate_flows() {
    let plain = udp(SEC, C, 5000, S, 53, 10);
    let vlan = PacketView { vlan: 10, ..plain };
    let gre = PacketView {
        tunnel: Tunnel::Gre,
        ..plain
    };
    let recs = finals(FlowConfig::default(), &[plain, vlan, gre, plain]);
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs.iter()
            .map(|r| (r.vlan, r.tunnel.as_str()))
            .collect::<Vec<_>>(),
        [(0, ""), (10, ""), (0, "GRE")]
    );
}

#[test]
fn replay_is_deterministic() {
    let mut pkts = Vec::new();
    for i in 0..500u64 {
        let port = 1000 + (i * 7919 % 300) as u16;
        pkts.push(udp(i * 700 * MS, C, port, S, 53, 20));
        pkts.push(tcp(i * 700 * MS + 1, S, 443, C, port, F::ACK, i as u32, 10));
    }
    let config = FlowConfig {
        max_flows: 100,
        ..FlowConfig::default()
    };
    let a = Run::new(config.clone()).feed(&pkts).finish();
    let b = Run::new(config).feed(&pkts).finish();
    assert!(a.len() > 100);
    assert_eq!(a, b);
}

#[test]
fn offline_config_never_splits_on_time() {
    let pkts = [
        udp(SEC, C, 5000, S, 5001, 10),
        udp(10_000 * SEC, C, 5000, S, 5001, 10),
    ];
    let recs = finals(FlowConfig::offline(), &pkts);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].update_seq, 0);
    let _ = Duration::ZERO;
}

#[test]
fn table_entry_stays_small() {
    // A hash-map bucket holds the key and the flow; small-packet throughput is bound by cache
    // misses on it (docs/PERFORMANCE.md). It was 360 bytes before the key copy and the
    // `Option<u64>` times left the flow, and before the 16-byte DPI state joined it. The two
    // Ethernet addresses (device types) took it from 304 to 312: still five cache lines.
    let bucket = std::mem::size_of::<(FlowKey, entry::Flow)>();
    println!("flow table bucket: {bucket} bytes");
    assert!(bucket <= 312, "flow table bucket grew to {bucket} bytes");
}

#[test]
fn dpi_metadata_and_risks_reach_the_records() {
    // One DNS query and its answer: the final record names DNS and the query.
    let query = hex_dns_query();
    let mut q: PacketView<'_> = udp(SEC, C, 40000, S, 53, query.len() as u32);
    q.payload = &query;
    let recs = finals(FlowConfig::default(), &[q]);
    let l7 = recs[0].l7.as_ref().unwrap();
    assert_eq!(l7.master_protocol, "DNS");
    assert_eq!(l7.hostname, "example.com");
    // Seen one way only: nDPI's unidirectional_traffic at the final record.
    assert!(recs[0].has_risk(46));
    // Without DPI, no L7.
    let config = FlowConfig {
        dpi: None,
        ..FlowConfig::default()
    };
    assert!(finals(config, &[q])[0].l7.is_none());
}

/// A standard query for `example.com` A (RFC 1035 section 4.1).
fn hex_dns_query() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["example", "com"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}
