//! Flow identity agreement with nDPI on its own regression pcaps (testdata/ndpi).
//!
//! For every `X.pcap`/`X.pcapng` with an `X.expected.json` (ndpiReader's flows), the flow keys
//! of [`flows_from_pcap`] are compared with nDPI's: key = (L4 protocol number, unordered pair of
//! (address, port), innermost VLAN id or 0, tunnel name or ""). Client/server orientation is not
//! part of the key (ndpiReader prints the side it saw first, not the client).
//!
//! ndpiReader reads a pcap offline without splitting flows on idle timeout, and drops
//! non-first IPv4 fragments; so this test uses [`FlowConfig::offline`] (no idle/active
//! timeout, no linger split after FIN/RST). Later fragments never create flows in the sensor
//! anyway.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use netwarden_api::flow::{FlowRecord, proto};
use netwarden_sensor::flow::FlowConfig;
use netwarden_sensor::pipeline::{ProgressMode, SensorConfig, flows_from_pcap};

type Endpoint = (IpAddr, u16);
type Key = (u8, Endpoint, Endpoint, u16, String);

fn key(proto: u8, a: Endpoint, b: Endpoint, vlan: u16, tunnel: &str) -> Key {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (proto, lo, hi, vlan, tunnel.to_owned())
}

fn our_key(r: &FlowRecord) -> Key {
    key(
        r.l4_proto as u8,
        (r.client_addr().unwrap(), r.client_port as u16),
        (r.server_addr().unwrap(), r.server_port as u16),
        r.vlan as u16,
        &r.tunnel,
    )
}

fn their_keys(expected: &serde_json::Value) -> BTreeSet<Key> {
    let flows = expected["flows"].as_array().expect("flows array");
    flows
        .iter()
        .map(|f| {
            let l4 = f["l4_proto"].as_str().expect("l4_proto");
            let proto = proto::from_name(l4).unwrap_or_else(|| panic!("unknown l4 proto {l4}"));
            let ep = |ip: &str, port: &str| -> Endpoint {
                let ip = f[ip].as_str().expect("ip").parse().expect("ip address");
                (ip, f[port].as_u64().unwrap_or(0) as u16)
            };
            key(
                proto,
                ep("src_ip", "src_port"),
                ep("dst_ip", "dst_port"),
                f["vlan_id"].as_u64().unwrap_or(0) as u16,
                f["tunnel"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

fn corpus() -> Vec<(PathBuf, PathBuf)> {
    netwarden_sensor::eval::corpus(&netwarden_testkit::testdata("ndpi")).expect("testdata/ndpi")
}

fn config() -> SensorConfig {
    SensorConfig {
        sensor_name: "test".into(),
        flow: FlowConfig::offline(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    }
}

/// Pcaps simple enough that the flow sets must match nDPI's exactly.
/// Together they cover IPv4/IPv6, TCP/UDP/ICMP, VLAN, QinQ + GTP, GRE, VXLAN, CAPWAP, IP-in-IP,
/// Teredo, fragments and hundreds of short flows.
const EXACT: &[&str] = &[
    "443-curl.pcap",
    "4in6tunnel.pcap",
    "capwap_data.pcapng",
    "6in4tunnel.pcap",
    "WebattackRCE.pcap",
    "chrome.pcap",
    "dns_doh.pcap",
    "dns_fragmented.pcap",
    "gre.pcapng",
    "ip_fragmented_garbage.pcap",
    "iphone.pcap",
    "malformed_icmp.pcap",
    "netbios.pcap",
    "quic-29.pcap",
    "smtp.pcap",
    "ssh.pcap",
    "syslog.pcap",
    "telnet.pcap",
    "teredo.pcap",
    "tls_change_cipher.pcap",
    "tor.pcap",
    "vxlan.pcap",
];

/// Lowest acceptable overall agreement (matched / nDPI flows). Measured: 1135 / 1135, every
/// pcap exact; the floor leaves room for a handful of flows of future corpus additions.
const FLOOR: f64 = 0.995;

struct Row {
    name: String,
    matched: usize,
    ours_only: Vec<Key>,
    theirs_only: Vec<Key>,
}

#[test]
fn flow_keys_agree_with_ndpi() {
    let corpus = corpus();
    assert!(corpus.len() >= 90, "corpus missing: {} pcaps", corpus.len());
    let mut rows = Vec::new();
    for (pcap, expected) in &corpus {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
        let theirs = their_keys(&expected);
        let (records, summary) = flows_from_pcap(pcap, &config(), false)
            .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
        assert!(
            summary.files[0].error.is_none(),
            "{}: {:?}",
            pcap.display(),
            summary.files[0].error
        );
        let ours: BTreeSet<Key> = records.iter().map(our_key).collect();
        assert_eq!(
            ours.len(),
            records.len(),
            "{}: one record per key",
            pcap.display()
        );
        rows.push(Row {
            name: pcap.file_name().unwrap().to_string_lossy().into_owned(),
            matched: ours.intersection(&theirs).count(),
            ours_only: ours.difference(&theirs).cloned().collect(),
            theirs_only: theirs.difference(&ours).cloned().collect(),
        });
    }
    let (mut matched, mut theirs_total, mut ours_total, mut exact) = (0, 0, 0, 0);
    println!(
        "{:<55} {:>7} {:>9} {:>11}",
        "pcap", "matched", "ours-only", "theirs-only"
    );
    for row in &rows {
        matched += row.matched;
        theirs_total += row.matched + row.theirs_only.len();
        ours_total += row.matched + row.ours_only.len();
        let is_exact = row.ours_only.is_empty() && row.theirs_only.is_empty();
        exact += usize::from(is_exact);
        println!(
            "{:<55} {:>7} {:>9} {:>11}{}",
            row.name,
            row.matched,
            row.ours_only.len(),
            row.theirs_only.len(),
            if is_exact { "" } else { "  *" }
        );
        if !is_exact && std::env::var_os("NDPI_DETAILS").is_some() {
            for k in row.ours_only.iter().take(5) {
                println!("      ours   {k:?}");
            }
            for k in row.theirs_only.iter().take(5) {
                println!("      theirs {k:?}");
            }
        }
    }
    let agreement = matched as f64 / theirs_total as f64;
    println!(
        "overall: {matched} matched of {theirs_total} nDPI flows ({:.2}%), {ours_total} ours; {exact}/{} pcaps exact",
        agreement * 100.0,
        rows.len()
    );
    assert!(agreement >= FLOOR, "agreement {agreement:.4} below {FLOOR}");
    for name in EXACT {
        let row = rows
            .iter()
            .find(|r| r.name == *name)
            .unwrap_or_else(|| panic!("{name} not in corpus"));
        assert!(
            row.ours_only.is_empty() && row.theirs_only.is_empty(),
            "{name}: ours only {:?}, theirs only {:?}",
            row.ours_only,
            row.theirs_only
        );
    }
}
