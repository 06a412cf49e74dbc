//! Bad inputs: truncated, missing, empty and unsupported capture files give clear errors (or,
//! for a truncated file, every flow read before the cut), never a panic.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use netwarden_sensor::Error;
use netwarden_sensor::flow::FlowConfig;
use netwarden_sensor::pipeline::{ProgressMode, SensorConfig, flows_from_pcap};

fn config() -> SensorConfig {
    SensorConfig {
        sensor_name: "test".into(),
        flow: FlowConfig::offline(),
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    }
}

/// (client ip, client port, server ip, server port, protocol).
type Key = (Vec<u8>, u32, Vec<u8>, u32, u32);

fn keys(records: &[netwarden_api::flow::FlowRecord]) -> BTreeSet<Key> {
    records
        .iter()
        .map(|r| {
            (
                r.client_ip.clone(),
                r.client_port,
                r.server_ip.clone(),
                r.server_port,
                r.l4_proto,
            )
        })
        .collect()
}

#[test]
fn truncated_pcap_keeps_the_flows_read_so_far() {
    let source = netwarden_testkit::testdata("ndpi/tor.pcap");
    let bytes = std::fs::read(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("tor-truncated.pcap");
    // An odd offset, two thirds in: inside some record.
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 7]).unwrap();

    let (full, full_summary) = flows_from_pcap(&source, &config(), false).unwrap();
    let (partial, summary) = flows_from_pcap(&cut, &config(), false).unwrap();
    let file = &summary.files[0];
    let error = file.error.as_deref().expect("the truncation is reported");
    assert!(error.contains("truncated"), "{error}");
    assert!(file.name.ends_with("tor-truncated.pcap"));
    assert!(
        file.packets > 0 && file.packets < full_summary.packets,
        "{} of {}",
        file.packets,
        full_summary.packets
    );
    assert_eq!(summary.packets, file.packets);
    assert!(!partial.is_empty());
    assert!(
        keys(&partial).is_subset(&keys(&full)),
        "every flow read so far is a real flow of the file"
    );
    assert!(partial.iter().all(|r| r.total_packets() > 0));
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = flows_from_pcap(Path::new("/nonexistent/x.pcap"), &config(), false).unwrap_err();
    assert!(matches!(err, Error::FileNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/x.pcap"), "{err}");
}

#[test]
fn empty_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    let err = flows_from_pcap(&path, &config(), false).unwrap_err();
    assert!(matches!(err, Error::OpenFile { .. }), "{err:?}");
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(text.contains("empty.pcap"), "{text}");
}

#[test]
fn unsupported_link_type_is_a_clear_error() {
    // A pcap global header (little-endian, v2.4, snaplen 65535) with link type 147 (USER0).
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&65_535u32.to_le_bytes());
    header.extend_from_slice(&147u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user0.pcap");
    std::fs::write(&path, &header).unwrap();
    let err = flows_from_pcap(&path, &config(), false).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedLinkType { linktype: 147, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("user0.pcap") && text.contains("147"),
        "{text}"
    );
}
