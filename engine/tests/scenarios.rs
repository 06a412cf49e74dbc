//! Host-check scenarios on generated captures: each test writes a pcap (etherparse frames in
//! the libpcap file format), runs it through the sensor pipeline (decode, flow table, DPI) and
//! the engine's state, and asserts the host alerts with their attackers, victims and points.
//! One scenario also goes through the `standalone` binary to check the report.
#![allow(clippy::unwrap_used, clippy::many_single_char_names)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;
use netwarden_api::alert::{Alert, AlertState, Entity};
use netwarden_engine::alerts::AnalysisConfig;
use netwarden_engine::exclusions::Exclusions;
use netwarden_engine::hosts::HostKey;
use netwarden_engine::state::State;
use netwarden_sensor::pipeline::{self, SensorConfig};

mod common;

const S: u64 = 1_000_000_000;
/// Capture start: on a five-minute boundary.
const T0: u64 = 1_700_000_100 * S;

/// A classic libpcap file (microsecond timestamps, Ethernet) built in memory.
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Self {
        let mut b = Vec::new();
        for v in [
            0xa1b2_c3d4u32.to_le_bytes().as_slice(),
            &2u16.to_le_bytes(),
            &4u16.to_le_bytes(),
        ] {
            b.extend_from_slice(v);
        }
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

    fn save(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.0).unwrap();
        p
    }
}

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

/// A TCP segment with `flags` (`S`yn, `A`ck, `F`in, `R`st letters).
fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 1024);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(2000),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => unreachable!(),
        };
    }
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).unwrap();
    out
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn ping(src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(7, seq);
    let payload = [0x42u8; 56];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).unwrap();
    out
}

/// A DNS query for `name`, type A (RFC 1035 §4.1).
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

/// The pcap through the sensor pipeline (periodic updates included, as in standalone mode)
/// and into a fresh engine state configured with `config`.
fn replay(pcap: &Path, config: AnalysisConfig) -> State {
    replay_in(pcap, config, 1000)
}

/// [`replay`] in batches of `batch` records.
fn replay_in(pcap: &Path, config: AnalysisConfig, batch: usize) -> State {
    let (records, _) = pipeline::flows_from_pcap(pcap, &SensorConfig::default(), true).unwrap();
    let mut s = State::default();
    s.configure_analysis(config, Exclusions::default());
    for chunk in records.chunks(batch) {
        s.apply_batch(chunk.to_vec());
    }
    s
}

fn host_alerts(s: &State) -> Vec<Alert> {
    s.analysis
        .store
        .iter()
        .map(|r| r.alert.clone())
        .filter(|a| a.entity == Entity::Host)
        .collect()
}

/// (type, host, attacker, victim) of every host alert ever engaged.
fn engaged(s: &State) -> Vec<(String, String, bool, bool)> {
    let mut v: Vec<_> = host_alerts(s)
        .into_iter()
        .filter(|a| a.state != AlertState::Past)
        .map(|a| {
            (
                a.alert_type,
                a.entity_value,
                a.roles.client_attacker,
                a.roles.client_victim,
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn has(all: &[(String, String, bool, bool)], t: &str, host: &str, attacker: bool) -> bool {
    all.iter()
        .any(|(a, h, att, vic)| a == t && h == host && *att == attacker && *vic != attacker)
}

/// Live host-alert points of `host` by type (the breakdown's host contributions).
fn host_points(s: &State, host: &str) -> Vec<(String, u16)> {
    let key = HostKey {
        ip: host.parse::<IpAddr>().unwrap(),
        vlan: 0,
    };
    let Some(hs) = s.analysis.scores.host(&key) else {
        return Vec::new();
    };
    let mut v: Vec<_> = hs
        .contributions
        .iter()
        .filter(|c| c.entity == Entity::Host)
        .map(|c| (c.alert_type.clone(), c.points))
        .collect();
    v.sort();
    v
}

fn syn_scan_pcap(dir: &Path) -> PathBuf {
    let (a, v) = (v4("10.0.0.66"), v4("10.0.0.10"));
    let mut p = Pcap::new();
    // 1,000 ports in 20 s (50 per second: no flow flood); closed ports answer RST-ACK.
    for port in 1..=1000u16 {
        let t = T0 + u64::from(port) * 20 * S / 1000;
        p.push(t, &tcp(a, 40_000, v, port, "S"));
        p.push(t + 100_000, &tcp(v, port, a, 40_000, "RA"));
    }
    p.save(dir, "syn_scan.pcap")
}

#[test]
fn syn_scan_of_1000_ports_names_scanner_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let s = replay(&syn_scan_pcap(dir.path()), AnalysisConfig::default());
    let all = engaged(&s);
    assert!(has(&all, "syn_scan", "10.0.0.66", true), "{all:#?}");
    assert!(has(&all, "syn_scan", "10.0.0.10", false), "{all:#?}");
    assert!(has(&all, "scan_detection", "10.0.0.66", true), "{all:#?}");
    assert!(
        has(&all, "server_ports_contacts", "10.0.0.66", true),
        "{all:#?}"
    );
    assert!(
        !all.iter().any(|a| a.0 == "flow_flood" || a.0 == "fin_scan"),
        "{all:#?}"
    );
    // Points: SYN scan 50, scan detection 100, ports 50 on the scanner's client score; the
    // target's SYN scan (victim) 50 on its server score.
    assert_eq!(
        host_points(&s, "10.0.0.66"),
        [
            ("scan_detection".to_owned(), 100),
            ("server_ports_contacts".to_owned(), 50),
            ("syn_scan".to_owned(), 50)
        ]
    );
    assert_eq!(host_points(&s, "10.0.0.10"), [("syn_scan".to_owned(), 50)]);
    let key = HostKey {
        ip: "10.0.0.10".parse().unwrap(),
        vlan: 0,
    };
    let v = s.analysis.scores.values(&key, s.analysis.now_ns + 61 * S);
    assert_eq!((v.server_security, v.client), (50, 0), "{v:?}");
}

#[test]
fn fin_and_rst_scans() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::new();
    let (fin_src, fin_dst) = (v4("10.0.0.67"), v4("10.0.0.11"));
    let (rst_src, rst_dst) = (v4("10.0.0.68"), v4("10.0.0.12"));
    for port in 1..=600u16 {
        let t = T0 + u64::from(port) * 30 * S / 600;
        // FIN probe, closed port answers RST-ACK.
        p.push(t, &tcp(fin_src, 50_000, fin_dst, port, "F"));
        p.push(t + 100_000, &tcp(fin_dst, port, fin_src, 50_000, "RA"));
        // RST probe, no answer.
        p.push(t + 200_000, &tcp(rst_src, 50_001, rst_dst, port, "R"));
    }
    let s = replay(
        &p.save(dir.path(), "fin_rst.pcap"),
        AnalysisConfig::default(),
    );
    let all = engaged(&s);
    assert!(has(&all, "fin_scan", "10.0.0.67", true), "{all:#?}");
    assert!(has(&all, "fin_scan", "10.0.0.11", false), "{all:#?}");
    assert!(has(&all, "rst_scan", "10.0.0.68", true), "{all:#?}");
    assert!(has(&all, "rst_scan", "10.0.0.12", false), "{all:#?}");
    // Neither is a SYN scan, and the FIN scanner is not an RST scanner.
    assert!(!all.iter().any(|a| a.0 == "syn_scan"), "{all:#?}");
    assert!(!has(&all, "rst_scan", "10.0.0.67", true), "{all:#?}");
    assert!(host_points(&s, "10.0.0.68").contains(&("rst_scan".to_owned(), 50)));
}

#[test]
fn floods_name_attackers_and_victims() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::new();
    let victim = v4("10.0.0.20");
    let (pinger, pinged) = (v4("10.0.0.30"), v4("10.0.0.31"));
    let (asker, resolver) = (v4("10.0.0.40"), v4("10.0.0.53"));
    // 17 s at 1,000 per second of each: above 256/s averaged over a minute (15,360).
    for i in 0..17_000u64 {
        let t = T0 + i * S / 1000;
        // SYN flood from spoofed sources (never an ACK), the victim answers SYN-ACK.
        let spoofed = (0xc612_0000u32 + i as u32).to_be_bytes();
        p.push(
            t,
            &tcp(spoofed, 1024 + (i % 60_000) as u16, victim, 80, "S"),
        );
        p.push(
            t + 50_000,
            &tcp(victim, 80, spoofed, 1024 + (i % 60_000) as u16, "SA"),
        );
        // ICMP flood: one echo flow.
        p.push(t + 100_000, &ping(pinger, pinged, i as u16));
        // DNS flood: a new query (and source port) every millisecond.
        let q = dns_query(i as u16, &format!("x{i}.example.com"));
        p.push(
            t + 200_000,
            &udp(asker, 10_000 + (i % 50_000) as u16, resolver, 53, &q),
        );
    }
    let s = replay(
        &p.save(dir.path(), "floods.pcap"),
        AnalysisConfig::default(),
    );
    let all = engaged(&s);
    assert!(has(&all, "syn_flood", "10.0.0.20", false), "{all:#?}");
    assert!(
        !all.iter().any(|a| a.0 == "syn_flood" && a.2),
        "one SYN per spoofed source makes no attacker: {all:#?}"
    );
    assert!(has(&all, "icmp_flood", "10.0.0.30", true), "{all:#?}");
    assert!(has(&all, "icmp_flood", "10.0.0.31", false), "{all:#?}");
    assert!(has(&all, "dns_flood", "10.0.0.40", true), "{all:#?}");
    assert!(has(&all, "dns_flood", "10.0.0.53", false), "{all:#?}");
    assert!(has(&all, "flow_flood", "10.0.0.40", true), "{all:#?}");
    assert!(has(&all, "flow_flood", "10.0.0.53", false), "{all:#?}");
    // A 250-point SYN flood on the victim's server score (emergency severity).
    let synf: Vec<Alert> = host_alerts(&s)
        .into_iter()
        .filter(|a| a.alert_type == "syn_flood")
        .collect();
    assert_eq!((synf[0].score, synf[0].server_score), (250, 250));
    assert!(host_points(&s, "10.0.0.20").contains(&("syn_flood".to_owned(), 250)));
    assert!(host_points(&s, "10.0.0.30").contains(&("icmp_flood".to_owned(), 50)));
    // The pinger is not a DNS or SYN flooder.
    assert!(!has(&all, "dns_flood", "10.0.0.30", true));
}

#[test]
fn a_quiet_network_raises_no_host_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::new();
    // 200 answered DNS queries and 200 short TCP sessions over 200 s from ten hosts.
    for i in 0..200u64 {
        let t = T0 + i * S;
        let c = [10, 0, 1, (i % 10) as u8 + 1];
        let q = dns_query(i as u16, &format!("www{}.example.com", i % 20));
        p.push(t, &udp(c, 20_000 + i as u16, v4("10.0.0.53"), 53, &q));
        p.push(
            t + 1_000_000,
            &udp(v4("10.0.0.53"), 53, c, 20_000 + i as u16, &q),
        );
        let sp = 30_000 + i as u16;
        let srv = v4("10.0.0.80");
        for (dt, from_client, flags) in [
            (2, true, "S"),
            (3, false, "SA"),
            (4, true, "A"),
            (5, true, "FA"),
            (6, false, "FA"),
            (7, true, "A"),
        ] {
            let f = if from_client {
                tcp(c, sp, srv, 443, flags)
            } else {
                tcp(srv, 443, c, sp, flags)
            };
            p.push(t + dt * 1_000_000, &f);
        }
    }
    let s = replay(&p.save(dir.path(), "quiet.pcap"), AnalysisConfig::default());
    let all = engaged(&s);
    assert!(all.is_empty(), "{all:#?}");
}

#[test]
fn des_flags_a_ramp_in_bytes_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::new();
    let (src, dst) = (v4("10.0.0.50"), v4("10.0.0.51"));
    let payload = [0u8; 1000];
    // 30 periods of 5 minutes at ~20 packets each, then the upload grows 60% per period.
    let mut packets = 20.0f64;
    for period in 0..36u64 {
        if period >= 30 {
            packets *= 1.6;
        }
        for k in 0..packets as u64 {
            let t = T0 + period * 300 * S + 10 * S + k * S / 10;
            p.push(t, &udp(src, 40_000 + period as u16, dst, 9_000, &payload));
        }
    }
    // One record per batch: the engine samples its series as flow time crosses each period.
    let s = replay_in(
        &p.save(dir.path(), "ramp.pcap"),
        AnalysisConfig::default(),
        1,
    );
    let key = HostKey {
        ip: "10.0.0.50".parse().unwrap(),
        vlan: 0,
    };
    let series = s.analysis.series(&key, "bytes_sent").unwrap();
    assert!(series.len() >= 30, "{}", series.len());
    let first_flag = series.iter().position(|x| x.anomaly).unwrap();
    assert!(first_flag >= 29, "the steady part is normal: {series:#?}");
    let anomalies: Vec<Alert> = host_alerts(&s)
        .into_iter()
        .filter(|a| a.alert_type == "traffic_anomaly" && a.entity_value == "10.0.0.50")
        .collect();
    assert!(!anomalies.is_empty(), "{series:#?}");
    let band = anomalies[0].anomaly.unwrap();
    assert!(band.value > band.upper, "{band:?}");
    assert!(
        anomalies[0].message.contains("bytes_sent"),
        "{}",
        anomalies[0].message
    );
    // The report lists it among the anomalies.
    let report = netwarden_engine::report::analysis::AnalysisSection::build(&s);
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.starts_with("10.0.0.50:") && a.contains("bytes_sent")),
        "{:?}",
        report.anomalies
    );
}

#[test]
fn standalone_report_names_the_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = syn_scan_pcap(dir.path());
    let report = common::standalone_json_report(&pcap);
    let types = report["analysis"]["by_type"].as_array().unwrap();
    let syn = types
        .iter()
        .find(|t| t["alert_type"] == "syn_scan")
        .unwrap();
    assert_eq!(syn["attackers"][0], "10.0.0.66", "{syn:#}");
    assert_eq!(syn["victims"][0], "10.0.0.10", "{syn:#}");
    let top = &report["analysis"]["top_hosts_by_score"][0];
    assert_eq!(top["ip"], "10.0.0.66", "{top:#}");
    assert!(top["why"].as_str().unwrap().contains("syn_scan"), "{top:#}");
}

/// A TCP segment with sequence and acknowledgement numbers and a payload (PSH-ACK).
fn segment(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 64_240)
        .ack(ack)
        .psh();
    let mut out = Vec::with_capacity(b.size(data.len()));
    b.write(&mut out, data).unwrap();
    out
}

#[test]
fn tls_server_with_a_self_signed_certificate() {
    let (c, s) = (v4("10.0.0.70"), v4("192.0.2.80"));
    let mut p = Pcap::new();
    let mut t = T0;
    let mut step = || {
        t += 1_000_000;
        t
    };
    // Handshake: SYN, SYN-ACK, ACK (ISNs 1000 and 5000).
    let syn = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(c, s, 64)
        .tcp(41_000, 443, 999, 64_240)
        .syn();
    let mut f = Vec::new();
    syn.write(&mut f, &[]).unwrap();
    p.push(step(), &f);
    let synack = PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(s, c, 64)
        .tcp(443, 41_000, 4999, 64_240)
        .syn()
        .ack(1000);
    let mut f = Vec::new();
    synack.write(&mut f, &[]).unwrap();
    p.push(step(), &f);
    p.push(step(), &segment(c, 41_000, s, 443, 1000, 5000, &[]));
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    for (from_client, bytes) in common::tls::tls_session("selfsigned.test", None) {
        for chunk in bytes.chunks(1400) {
            let frame = if from_client {
                let f = segment(c, 41_000, s, 443, cseq, sseq, chunk);
                cseq = cseq.wrapping_add(chunk.len() as u32);
                f
            } else {
                let f = segment(s, 443, c, 41_000, sseq, cseq, chunk);
                sseq = sseq.wrapping_add(chunk.len() as u32);
                f
            };
            p.push(step(), &frame);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let st = replay(
        &p.save(dir.path(), "selfsigned.pcap"),
        AnalysisConfig::default(),
    );
    let flow_alerts: Vec<Alert> = st
        .analysis
        .store
        .iter()
        .map(|r| r.alert.clone())
        .filter(|a| a.entity == Entity::Flow)
        .collect();
    let ss: Vec<&Alert> = flow_alerts
        .iter()
        .filter(|a| a.alert_type == "tls_selfsigned_certificate")
        .collect();
    assert_eq!(ss.len(), 1, "{flow_alerts:#?}");
    let a = ss[0];
    assert_eq!((a.score, a.client_score, a.server_score), (100, 90, 10));
    let f = a.flow.as_ref().unwrap();
    assert_eq!(f.client_addr(), Some("10.0.0.70".parse().unwrap()));
    let tls = f.l7.as_ref().unwrap().tls.as_ref().unwrap();
    assert_eq!(tls.sni, "selfsigned.test");
    assert!(tls.certificate.as_ref().unwrap().self_signed);
    // The client earned 90 points from it, the server 10; none is an attacker.
    assert!(!a.roles.client_attacker && !a.roles.server_attacker);
    let earned = |ip: &str| {
        let k = HostKey {
            ip: ip.parse().unwrap(),
            vlan: 0,
        };
        st.analysis
            .scores
            .host(&k)
            .unwrap()
            .accumulated_by
            .iter()
            .find(|x| x.alert_type == "tls_selfsigned_certificate")
            .map(|x| x.points)
    };
    assert_eq!(
        (earned("10.0.0.70"), earned("192.0.2.80")),
        (Some(90), Some(10))
    );
    let all = engaged(&st);
    assert!(all.is_empty(), "{all:#?}");
}
