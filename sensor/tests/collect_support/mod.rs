//! Shared helpers of the collector tests: read export datagrams from the committed captures,
//! feed a collector, and read the committed expected decodes (testdata/netflow/**.expected.json,
//! made with testdata/netflow/expected.py from tshark's decode).

#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netwarden_sensor::collect::{
    Collector, CollectorConfig, ExportedFlow, InterfaceCounters, Output,
};

/// `testdata/netflow/<rel>`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/netflow")
        .join(rel)
}

/// One UDP datagram of a capture.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// 1-based frame number in the capture.
    pub frame: usize,
    pub src: IpAddr,
    pub ts_ns: u64,
    pub payload: Vec<u8>,
}

/// Every UDP datagram of an Ethernet capture (frames that are not UDP are skipped).
pub fn datagrams(path: &Path) -> Vec<Datagram> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let mut cap =
        pcap::Capture::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut frame = 0;
    while let Ok(pkt) = cap.next_packet() {
        frame += 1;
        let ts_ns =
            pkt.header.ts.tv_sec as u64 * 1_000_000_000 + pkt.header.ts.tv_usec as u64 * 1000;
        let Ok(sliced) = SlicedPacket::from_ethernet(pkt.data) else {
            continue;
        };
        let src = match &sliced.net {
            Some(NetSlice::Ipv4(v4)) => IpAddr::V4(v4.header().source_addr()),
            Some(NetSlice::Ipv6(v6)) => IpAddr::V6(v6.header().source_addr()),
            _ => continue,
        };
        if let Some(TransportSlice::Udp(udp)) = &sliced.transport {
            out.push(Datagram {
                frame,
                src,
                ts_ns,
                payload: udp.payload().to_vec(),
            });
        }
    }
    out
}

/// Outputs of one datagram.
#[derive(Debug, Default)]
pub struct Fed {
    pub frame: usize,
    pub flows: Vec<ExportedFlow>,
    pub counters: Vec<InterfaceCounters>,
    pub error: Option<String>,
}

/// Feeds every datagram of `paths` (in order) to `collector`, using capture times as `now`.
pub fn feed(collector: &mut Collector, paths: &[PathBuf]) -> Vec<Fed> {
    let mut out = Vec::new();
    for path in paths {
        for d in datagrams(path) {
            let mut fed = Fed {
                frame: d.frame,
                ..Fed::default()
            };
            let result = collector.handle(d.src, &d.payload, d.ts_ns, &mut |o| match o {
                Output::Flow(f) => fed.flows.push(f),
                Output::Counters(c) => fed.counters.push(c),
            });
            fed.error = result.err().map(|e| e.to_string());
            out.push(fed);
        }
    }
    out
}

/// A collector with default settings.
pub fn collector() -> Collector {
    Collector::new(CollectorConfig {
        sensor: "test".into(),
        ..CollectorConfig::default()
    })
}

/// The committed expected decode of `rel` (a `.pcap` path under testdata/netflow).
pub fn expected(rel: &str) -> serde_json::Value {
    let path = testdata(&rel.replace(".pcap", ".expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A flow seen from the exporter's side again: (src, dst, sport, dport, proto, packets, octets)
/// of the record's forward direction, counters divided by the sampling rate.
pub fn as_exported(f: &ExportedFlow) -> (String, String, u32, u32, u32, u64, u64) {
    let r = &f.record;
    let rate = u64::from(r.sampling_rate.max(1));
    let (c, s) = (
        r.client_addr().unwrap().to_string(),
        r.server_addr().unwrap().to_string(),
    );
    let (c2s, s2c) = (r.c2s.unwrap_or_default(), r.s2c.unwrap_or_default());
    if f.extras.swapped {
        (
            s,
            c,
            r.server_port,
            r.client_port,
            r.l4_proto,
            s2c.packets / rate,
            s2c.bytes / rate,
        )
    } else {
        (
            c,
            s,
            r.client_port,
            r.server_port,
            r.l4_proto,
            c2s.packets / rate,
            c2s.bytes / rate,
        )
    }
}

/// The same tuple from an expected record.
pub fn expected_tuple(r: &serde_json::Value) -> (String, String, u32, u32, u32, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    (
        r["src"].as_str().unwrap().to_owned(),
        r["dst"].as_str().unwrap().to_owned(),
        n("sport") as u32,
        n("dport") as u32,
        n("proto") as u32,
        n("packets"),
        n("octets"),
    )
}
