//! Every frame of every capture of the nDPI corpus: no panic, and few decode errors.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::super::{DecodeError, Fragment, decode, decode_stats_key};
use super::{corpus_dir, read_capture};

#[test]
fn whole_corpus_decodes_with_few_errors() {
    let mut paths: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    paths.sort();
    assert!(
        paths.len() > 50,
        "corpus not found in {}",
        corpus_dir().display()
    );

    let (mut frames, mut decoded, mut errors, mut not_ip) = (0usize, 0usize, 0usize, 0usize);
    let mut by_key: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for path in &paths {
        let (link, captured) = read_capture(path);
        let link = link.unwrap_or_else(|| panic!("{}: link type not decoded", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for f in &captured {
            frames += 1;
            match decode(link, &f.data, f.len, 0) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    if matches!(e, DecodeError::NotIp { .. }) {
                        not_ip += 1;
                    } else {
                        errors += 1;
                    }
                    *by_key
                        .entry((decode_stats_key(&e), name.clone()))
                        .or_default() += 1;
                }
            }
        }
    }
    let rate = errors as f64 / frames as f64;
    println!(
        "corpus: {} captures, {frames} frames, {decoded} decoded, {not_ip} not IP, {errors} errors ({:.3}%)",
        paths.len(),
        rate * 100.0
    );
    for ((key, file), n) in &by_key {
        println!("  {key:<20} {n:>6}  {file}");
    }
    assert!(
        rate < 0.02,
        "decode error rate {:.3}% is 2% or more",
        rate * 100.0
    );
}

/// A flow as ndpiReader keys it: protocol, the two endpoints in either order, VLAN.
type FlowKey = (u8, (IpAddr, u16), (IpAddr, u16), u16);

fn flow_key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16), vlan: u16) -> FlowKey {
    if a <= b {
        (proto, a, b, vlan)
    } else {
        (proto, b, a, vlan)
    }
}

/// Every flow ndpiReader reports for a capture (`<name>.expected.json`) is found, with the same
/// number of packets, among the packets we decode, counting them as ndpiReader does: later
/// fragments and packets cut short of their IP length are left out.
#[test]
fn flows_match_ndpi_on_the_whole_corpus() {
    let mut checked = 0usize;
    let mut expected_paths: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    expected_paths.sort();
    for path in expected_paths {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let capture = corpus_dir().join(expected["pcap"].as_str().unwrap());
        let (link, captured) = read_capture(&capture);
        let mut ours: HashMap<FlowKey, u64> = HashMap::new();
        for f in &captured {
            let Ok(v) = decode(link.unwrap(), &f.data, f.len, 0) else {
                continue;
            };
            if matches!(v.fragment, Fragment::Later { .. }) || v.is_truncated() {
                continue;
            }
            let key = flow_key(v.proto, (v.src, v.src_port), (v.dst, v.dst_port), v.vlan);
            *ours.entry(key).or_default() += 1;
        }
        for flow in expected["flows"].as_array().unwrap() {
            let proto = match flow["l4_proto"].as_str().unwrap() {
                "TCP" => 6,
                "UDP" => 17,
                "ICMP" => 1,
                "ICMPV6" => 58,
                "IGMP" => 2,
                "GRE" => 47,
                "SCTP" => 132,
                other => other.parse().unwrap(),
            };
            let endpoint = |ip: &str, port: &str| -> (IpAddr, u16) {
                (
                    flow[ip].as_str().unwrap().parse().unwrap(),
                    flow[port].as_u64().unwrap() as u16,
                )
            };
            let vlan = flow["vlan_id"].as_u64().unwrap_or(0) as u16;
            let key = flow_key(
                proto,
                endpoint("src_ip", "src_port"),
                endpoint("dst_ip", "dst_port"),
                vlan,
            );
            let packets = flow["src2dst_packets"].as_u64().unwrap()
                + flow["dst2src_packets"].as_u64().unwrap();
            assert_eq!(
                ours.get(&key),
                Some(&packets),
                "{}: flow {key:?}",
                capture.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} flows checked");
}
