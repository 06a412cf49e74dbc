//! One-way records merged into bidirectional flows, against a real exporter: softflowd
//! exports `testdata/ndpi/iphone.pcap` as NetFlow v5 (one record per direction) to a listener
//! with merging on; the merged flows equal what our own capture path builds from the same
//! pcap — the same conversations, client and server, packets per direction, and bytes per
//! direction once softflowd's documented byte count (IP length, no link header: 14 bytes per
//! Ethernet frame less) is accounted for. IPv4 only (v5 carries no IPv6). Two more documented
//! differences are normalised: NetFlow carries ICMP type × 256 + code in the destination port
//! (capture: ports 0), and a conversation seen in one direction only (no reply, nothing to
//! merge) is oriented by the port rule by the collector but by its first packet by capture,
//! so one-way conversations compare without orientation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use netwarden_api::flow::FlowRecord;
use netwarden_sensor::collect::{CollectorConfig, Listener, ListenerConfig, Output};
use netwarden_sensor::pipeline::{SensorConfig, flows_from_pcap};

/// Frames of the capture.
const PACKETS: u64 = 500;
/// Ethernet header bytes per frame, which the capture path counts and NetFlow does not.
const ETHERNET: u64 = 14;

/// (client, client port, server, server port, protocol) -> (c2s packets, s2c packets,
/// c2s bytes, s2c bytes).
type Table = BTreeMap<(IpAddr, u32, IpAddr, u32, u32), (u64, u64, u64, u64)>;

fn table(records: &[FlowRecord], link_bytes: u64) -> Table {
    let mut t = Table::new();
    for r in records {
        let (Some(c), Some(s)) = (r.client_addr(), r.server_addr()) else {
            continue;
        };
        if !c.is_ipv4() {
            continue;
        }
        let (mut c2s, mut s2c) = (r.c2s.unwrap_or_default(), r.s2c.unwrap_or_default());
        let icmp = matches!(r.l4_proto, 1 | 58);
        let (cp, sp) = if icmp {
            (0, 0)
        } else {
            (r.client_port, r.server_port)
        };
        let mut key = (c, cp, s, sp, r.l4_proto);
        if (c2s.packets == 0 || s2c.packets == 0) && (s, sp) < (c, cp) {
            key = (s, sp, c, cp, r.l4_proto);
            std::mem::swap(&mut c2s, &mut s2c);
        }
        if c2s.packets == 0 {
            std::mem::swap(&mut c2s, &mut s2c);
        }
        let e = t.entry(key).or_default();
        e.0 += c2s.packets;
        e.1 += s2c.packets;
        e.2 += c2s.bytes.saturating_sub(c2s.packets * link_bytes);
        e.3 += s2c.bytes.saturating_sub(s2c.packets * link_bytes);
    }
    t
}

fn collect_merged() -> Vec<FlowRecord> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let config = ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            collector: CollectorConfig {
                merge_window_ms: 10_000,
                ..CollectorConfig::default()
            },
            ..ListenerConfig::default()
        };
        let listener = Listener::bind(config).unwrap();
        let port = listener.local_addr().port();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = listener.spawn(tx, async move {
            let _ = stop_rx.await;
        });
        tokio::task::spawn_blocking(move || {
            netwarden_testkit::softflowd::export(
                &netwarden_testkit::testdata("ndpi/iphone.pcap"),
                PACKETS,
                port,
                &["-v", "5"],
            );
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_tx.send(()).unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.collector.global.sink_dropped, 0);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch.into_iter().filter_map(|o| match o {
                Output::Flow(f) => Some(f.record),
                Output::Counters(_) => None,
            }));
        }
        out
    })
}

#[test]
fn softflowd_v5_one_way_records_merge_into_the_capture_flows() {
    let merged = collect_merged();
    let (captured, _) = flows_from_pcap(
        &netwarden_testkit::testdata("ndpi/iphone.pcap"),
        &SensorConfig::default(),
        false,
    )
    .unwrap();
    let got = table(&merged, 0);
    let want = table(&captured, ETHERNET);
    let only_got: Vec<_> = got.iter().filter(|(k, v)| want.get(k) != Some(v)).collect();
    let only_want: Vec<_> = want.iter().filter(|(k, v)| got.get(k) != Some(v)).collect();
    eprintln!(
        "merged {} (records {}), capture {}",
        got.len(),
        merged.len(),
        want.len()
    );
    eprintln!("only merged: {only_got:#?}");
    eprintln!("only capture: {only_want:#?}");
    assert!(only_got.is_empty() && only_want.is_empty());
    // The merge did the work: every two-way conversation of the capture is one record here.
    let two_way = |records: &[FlowRecord]| {
        records
            .iter()
            .filter(|r| r.client_addr().is_some_and(|a| a.is_ipv4()))
            .filter(|r| {
                r.c2s.unwrap_or_default().packets > 0 && r.s2c.unwrap_or_default().packets > 0
            })
            .count()
    };
    assert!(two_way(&captured) > 0);
    assert_eq!(two_way(&merged), two_way(&captured));
    assert_eq!(merged.len(), got.len(), "one record per conversation");
}

mod collect_support;

/// Every flow of a committed export fed to a collector with merging on (flushed at the end),
/// and the merge counters.
fn merged_export(
    rel: &str,
) -> (
    Vec<FlowRecord>,
    usize,
    netwarden_sensor::collect::merge::MergeStats,
) {
    let mut c = netwarden_sensor::collect::Collector::new(CollectorConfig {
        merge_window_ms: 10_000,
        ..CollectorConfig::default()
    });
    let path = collect_support::testdata(rel);
    let fed = collect_support::feed(&mut c, &[path]);
    let mut out: Vec<FlowRecord> = fed
        .into_iter()
        .flat_map(|f| f.flows.into_iter().map(|f| f.record))
        .collect();
    c.flush_merge(&mut |o| {
        if let Output::Flow(f) = o {
            out.push(f.record);
        }
    });
    let records = usize::try_from(c.stats().totals.records).unwrap();
    (out, records, c.merge_stats())
}

#[test]
fn biflows_pass_and_one_way_exports_of_any_version_merge_alike() {
    // softflowd -b: IPFIX biflow records (RFC 5103) already hold both directions.
    let (biflows, records, stats) = merged_export("generated/softflowd-ipfix-biflow.pcap");
    assert!(records > 0);
    assert_eq!(biflows.len(), records, "no biflow merged again");
    assert_eq!(stats.merged, 0, "{stats:?}");
    assert_eq!(stats.passed + stats.unpaired, records as u64, "{stats:?}");
    // The same capture exported one-way as NetFlow v5 and v9 merges to the same flows.
    let (v5, v5_records, v5_stats) = merged_export("generated/softflowd-v5.pcap");
    let (v9, _, v9_stats) = merged_export("generated/softflowd-v9.pcap");
    assert!(v5_stats.merged > 0, "{v5_stats:?}");
    assert_eq!(v5.len() as u64 + v5_stats.merged, v5_records as u64);
    assert_eq!(
        table(&v5, 0),
        table(&v9, 0)
            .into_iter()
            .filter(|(k, _)| k.0.is_ipv4())
            .collect()
    );
    assert!(
        v9_stats.merged >= v5_stats.merged,
        "v9 adds IPv6: {v9_stats:?} {v5_stats:?}"
    );
}
