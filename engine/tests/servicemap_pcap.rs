//! The service map learned from a corpus pcap (`standalone --pcap`, JSON report) equals the
//! edges of nDPI's own flow list for that capture (`testdata/ndpi/iphone.expected.json`,
//! ndpiReader's output): every TCP/UDP (client, server, server port, L4, L7 application) edge
//! with its number of flows, and every flow counted once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;

mod common;

type Key = (String, String, u64, String, String);

fn testdata(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

#[test]
fn the_map_learned_from_iphone_pcap_matches_ndpi_flows() {
    let report = common::standalone_json_report(&testdata("ndpi/iphone.pcap"));
    let sm = &report["servicemap"];
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("ndpi/iphone.expected.json")).unwrap(),
    )
    .unwrap();
    let mut want: BTreeMap<Key, u64> = BTreeMap::new();
    for f in expected["flows"].as_array().unwrap() {
        let l4 = f["l4_proto"].as_str().unwrap();
        if l4 != "TCP" && l4 != "UDP" {
            continue;
        }
        // ndpiReader's `src` is the side it saw first: the client for these flows.
        let key = (
            f["src_ip"].as_str().unwrap().to_owned(),
            f["dst_ip"].as_str().unwrap().to_owned(),
            f["dst_port"].as_u64().unwrap(),
            l4.to_owned(),
            f["app_proto"].as_str().unwrap().to_owned(),
        );
        *want.entry(key).or_default() += 1;
    }
    let mut got: BTreeMap<Key, u64> = BTreeMap::new();
    for e in sm["top_edges"].as_array().unwrap() {
        let l4 = e["l4"].as_str().unwrap();
        if l4 != "TCP" && l4 != "UDP" {
            continue;
        }
        assert_eq!(e["status"], "allowed", "a pcap of minutes is all learning");
        assert_eq!(e["learned"], "during_learning");
        let key = (
            e["client"].as_str().unwrap().to_owned(),
            e["server"].as_str().unwrap().to_owned(),
            e["port"].as_u64().unwrap(),
            l4.to_owned(),
            e["l7"].as_str().unwrap().to_owned(),
        );
        assert!(got.insert(key, e["flows"].as_u64().unwrap()).is_none());
    }
    assert_eq!(want.len(), 27);
    assert_eq!(got, want);
    // Every flow (ICMP and IGMP included) counted once, on one edge.
    assert_eq!(sm["flows"], report["summary"]["flows"]);
    assert_eq!(sm["flows"], expected["num_flows"]);
    assert_eq!(sm["edges"], sm["top_edges"].as_array().unwrap().len());
    assert_eq!(sm["counts"]["allowed"], sm["edges"]);
}
