//! The `standalone` binary end to end: a corpus pcap in, one JSON report out on stdout.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use netwarden_api::flow::FlowRecord;
use netwarden_sensor::pipeline::{self, SensorConfig};
use netwarden_testkit::testdata;
use serde_json::Value;

mod common;

#[test]
fn standalone_pcap_prints_one_json_report() {
    let pcap = testdata("ndpi/malware.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_netwarden-engine"))
        .args([
            "standalone",
            "--exit",
            "--report",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--pcap",
        ])
        .arg(&pcap)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    // stdout is the JSON document and nothing else (logs went to stderr).
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    let (offline, summary) =
        pipeline::flows_from_pcap(&pcap, &SensorConfig::default(), false).unwrap();
    let flow_bytes: u64 = offline.iter().map(FlowRecord::total_bytes).sum();
    let s = &report["summary"];
    assert_eq!(
        s["flows"].as_u64(),
        Some(offline.len() as u64),
        "{report:#}"
    );
    assert_eq!(s["bytes"].as_u64(), Some(flow_bytes));
    assert_eq!(
        s["active_flows"], 0,
        "a pcap's flows all end with the capture"
    );
    assert_eq!(report["sensor"]["packets"].as_u64(), Some(summary.packets));
    assert_eq!(
        report["sensor"]["batches_published"], s["batches"],
        "every published batch was applied"
    );
    assert_eq!(s["decode_errors"], 0);
    let talkers = report["top_talkers"].as_array().unwrap();
    assert!(!talkers.is_empty() && talkers.len() <= 10);
    let bytes: Vec<u64> = talkers
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    assert_eq!(report["l4_protocols"][0]["name"], "TCP");
    assert!(
        report["l7_protocols"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(report["observation_points"].as_array().unwrap().len(), 1);
}

/// The demo capture's ARP, STP and EAPOL frames are counted as non-IP frames, not as damage:
/// as many as tshark finds that are neither IPv4 nor IPv6, and no other decode error.
#[test]
fn non_ip_frames_are_counted_apart_from_decode_errors() {
    let pcap = testdata("demo/demo.pcap");
    let report = common::standalone_json_report(&pcap);
    let tshark = Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args(["-Y", "!ip && !ipv6"])
        .output()
        .expect("tshark (scripts/bootstrap --test installs it)");
    let not_ip = String::from_utf8_lossy(&tshark.stdout).lines().count() as u64;
    assert!(not_ip > 0, "the demo has ARP/STP frames");
    assert_eq!(report["sensor"]["not_ip_frames"].as_u64(), Some(not_ip));
    assert_eq!(report["sensor"]["decode_errors"].as_u64(), Some(not_ip));
}
