//! Engine tests: the nDPI corpus replayed through a minimal flow harness, and hostile input.

use std::collections::HashMap;
use std::net::IpAddr;

use netwarden_api::flow::FlowRecord;
use netwarden_api::risk;

use super::*;

mod corpus;

/// Risks the DPI implements (what recall is measured over).
const IN_SCOPE: &[u16] = &[
    rid::URL_POSSIBLE_XSS,
    rid::URL_POSSIBLE_SQL_INJECTION,
    rid::URL_POSSIBLE_RCE_INJECTION,
    rid::BINARY_APPLICATION_TRANSFER,
    rid::KNOWN_PROTOCOL_ON_NON_STANDARD_PORT,
    rid::TLS_SELFSIGNED_CERTIFICATE,
    rid::TLS_OBSOLETE_VERSION,
    rid::TLS_WEAK_CIPHER,
    rid::TLS_CERTIFICATE_EXPIRED,
    rid::TLS_CERTIFICATE_MISMATCH,
    rid::HTTP_SUSPICIOUS_USER_AGENT,
    rid::NUMERIC_IP_HOST,
    rid::HTTP_SUSPICIOUS_URL,
    rid::HTTP_SUSPICIOUS_HEADER,
    rid::TLS_NOT_CARRYING_HTTPS,
    rid::SUSPICIOUS_DGA_DOMAIN,
    rid::MALFORMED_PACKET,
    rid::TLS_SUSPICIOUS_ESNI_USAGE,
    rid::UNSAFE_PROTOCOL,
    rid::DNS_SUSPICIOUS_TRAFFIC,
    rid::TLS_MISSING_SNI,
    rid::TLS_UNCOMMON_ALPN,
    rid::TLS_CERT_VALIDITY_TOO_LONG,
    rid::TLS_SUSPICIOUS_EXTENSION,
    rid::TLS_FATAL_ALERT,
    rid::CLEAR_TEXT_CREDENTIALS,
    rid::DNS_LARGE_PACKET,
    rid::INVALID_CHARACTERS,
    rid::POSSIBLE_EXPLOIT,
    rid::TLS_CERTIFICATE_ABOUT_TO_EXPIRE,
    rid::PUNYCODE_IDN,
    rid::ERROR_CODE_DETECTED,
    rid::HTTP_CRAWLER_BOT,
    rid::HTTP_OBSOLETE_SERVER,
    rid::TLS_ALPN_SNI_MISMATCH,
    rid::BINARY_DATA_TRANSFER,
    rid::SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER,
    rid::SSH_OBSOLETE_SERVER_VERSION_OR_CIPHER,
    rid::SMB_INSECURE_VERSION,
    rid::DESKTOP_OR_FILE_SHARING_SESSION,
];

#[test]
fn risk_ids_match_the_catalogue() {
    let keys = [
        (rid::URL_POSSIBLE_XSS, "url_possible_xss"),
        (
            rid::KNOWN_PROTOCOL_ON_NON_STANDARD_PORT,
            "known_protocol_on_non_standard_port",
        ),
        (rid::TLS_ALPN_SNI_MISMATCH, "tls_alpn_sni_mismatch"),
        (rid::BINARY_DATA_TRANSFER, "binary_data_transfer"),
        (rid::HTTP_OBSOLETE_SERVER, "http_obsolete_server"),
        (
            rid::TLS_CERTIFICATE_ABOUT_TO_EXPIRE,
            "tls_certificate_about_to_expire",
        ),
        (rid::DNS_LARGE_PACKET, "dns_large_packet"),
        (rid::TLS_UNCOMMON_ALPN, "tls_uncommon_alpn"),
        (rid::UNSAFE_PROTOCOL, "unsafe_protocol"),
        (rid::MALFORMED_PACKET, "malformed_packet"),
        (
            rid::SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER,
            "ssh_obsolete_client_version_or_cipher",
        ),
        (
            rid::SSH_OBSOLETE_SERVER_VERSION_OR_CIPHER,
            "ssh_obsolete_server_version_or_cipher",
        ),
        (rid::SMB_INSECURE_VERSION, "smb_insecure_version"),
        (
            rid::DESKTOP_OR_FILE_SHARING_SESSION,
            "desktop_or_file_sharing_session",
        ),
        (rid::ANONYMOUS_SUBSCRIBER, "anonymous_subscriber"),
        (rid::CLEAR_TEXT_CREDENTIALS, "clear_text_credentials"),
    ];
    for (id, key) in keys {
        assert_eq!(risk::by_id(id).map(|r| r.key), Some(key));
    }
    for id in IN_SCOPE {
        assert!(risk::by_id(*id).is_some(), "{id}");
    }
}

fn ctx(from_client: bool, l4: u8, seq: Option<u32>) -> PacketCtx {
    PacketCtx {
        from_client,
        l4_proto: l4,
        client_port: 50000,
        server_port: 443,
        ts_ns: 0,
        tcp_seq: seq,
        fragmented: false,
    }
}

#[test]
fn unknown_payload_stops_at_the_packet_limit_without_allocating() {
    let dpi = Dpi::new(DpiConfig::default());
    let mut flow = FlowDpi::default();
    for i in 0..31 {
        assert!(!dpi.inspect(
            &mut flow,
            &ctx(i % 2 == 0, 6, None),
            b"\x01\x02 nothing known"
        ));
    }
    assert!(flow.meta.is_none());
    assert!(dpi.inspect(&mut flow, &ctx(true, 6, None), b"\x01\x02 nothing known"));
    let mut rec = FlowRecord {
        l4_proto: 6,
        server_port: 443,
        client_port: 50000,
        ..FlowRecord::default()
    };
    dpi.fill(&flow, &mut rec);
    let l7 = rec.l7.expect("port guess");
    assert_eq!(l7.master_protocol, "TLS");
    assert_eq!(l7.confidence, Confidence::Port as i32);
    assert!(std::mem::size_of::<FlowDpi>() <= 16);
}

/// A flow of the harness: DPI state plus what the record needs.
struct HarnessFlow {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    l4: u8,
    dpi: FlowDpi,
    done: bool,
}

/// Flow key of the harness: transport and both endpoints, ordered.
pub(crate) type Key = (u8, (IpAddr, u16), (IpAddr, u16));

/// Runs every packet of `pcap` through the engine; returns the records by unordered endpoints.
pub(crate) fn replay(dpi: &Dpi, path: &std::path::Path) -> HashMap<Key, FlowRecord> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let mut flows: HashMap<Key, HarnessFlow> = HashMap::new();
    let Ok(mut cap) = pcap::Capture::from_file(path) else {
        return HashMap::new();
    };
    let link = cap.get_datalink().0;
    while let Ok(pkt) = cap.next_packet() {
        let ts_ns =
            (pkt.header.ts.tv_sec as u64) * 1_000_000_000 + (pkt.header.ts.tv_usec as u64) * 1000;
        let data = pkt.data;
        let sliced = match link {
            1 => SlicedPacket::from_ethernet(data).ok(),
            0 | 108 => data.get(4..).and_then(|d| SlicedPacket::from_ip(d).ok()),
            101 | 12 | 14 | 228 | 229 => SlicedPacket::from_ip(data).ok(),
            113 => SlicedPacket::from_linux_sll(data).ok(),
            _ => None,
        };
        let Some(p) = sliced else { continue };
        let (src, dst) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
            _ => continue,
        };
        let (l4, sport, dport, payload, seq, syn_only) = match &p.transport {
            Some(TransportSlice::Tcp(t)) => (
                6u8,
                t.source_port(),
                t.destination_port(),
                t.payload(),
                Some(t.sequence_number()),
                t.syn() && !t.ack(),
            ),
            Some(TransportSlice::Udp(u)) => (
                17u8,
                u.source_port(),
                u.destination_port(),
                u.payload(),
                None,
                false,
            ),
            _ => continue,
        };
        let a = (src, sport);
        let b = (dst, dport);
        let key = if a <= b { (l4, a, b) } else { (l4, b, a) };
        let flow = flows.entry(key).or_insert_with(|| HarnessFlow {
            client: a,
            server: b,
            l4,
            dpi: FlowDpi::default(),
            done: false,
        });
        if syn_only && flow.client != a {
            // The SYN sender is the client even if another packet came first.
            std::mem::swap(&mut flow.client, &mut flow.server);
        }
        if flow.done || payload.is_empty() {
            continue;
        }
        let from_client = flow.client == a;
        let c = PacketCtx {
            from_client,
            l4_proto: l4,
            client_port: flow.client.1,
            server_port: flow.server.1,
            ts_ns,
            tcp_seq: seq,
            fragmented: false,
        };
        if dpi.inspect(&mut flow.dpi, &c, payload) {
            flow.done = true;
            dpi.shrink(&mut flow.dpi);
        }
    }
    flows
        .into_iter()
        .map(|(k, f)| {
            let mut rec = FlowRecord {
                l4_proto: u32::from(f.l4),
                client_port: u32::from(f.client.1),
                server_port: u32::from(f.server.1),
                ..FlowRecord::default()
            };
            dpi.fill(&f.dpi, &mut rec);
            (k, rec)
        })
        .collect()
}

/// The record of the flow of corpus capture `pcap` (in `testdata/ndpi`) with server or client
/// port `port`, replayed through a default engine, and nDPI's expected flow for it.
pub(crate) fn corpus_flow(pcap: &str, port: u16) -> (FlowRecord, serde_json::Value) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/ndpi");
    let records = replay(&Dpi::new(DpiConfig::default()), &dir.join(pcap));
    let stem = pcap.rsplit_once('.').map_or(pcap, |(s, _)| s);
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{stem}.expected.json"))).expect("expected.json"),
    )
    .expect("json");
    let flow = expected["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["src_port"] == port || f["dst_port"] == port)
        .cloned()
        .unwrap_or_else(|| panic!("{pcap}: no expected flow on port {port}"));
    let rec = records
        .into_values()
        .find(|r| r.server_port == u32::from(port) || r.client_port == u32::from(port))
        .unwrap_or_else(|| panic!("{pcap}: no flow on port {port}"));
    (rec, flow)
}

/// Risk keys of a record, nDPI's spelling (`NDPI_…` upper case), sorted.
pub(crate) fn risk_keys(rec: &FlowRecord) -> Vec<String> {
    let mut keys: Vec<String> = rec
        .risk_ids()
        .filter_map(|id| risk::by_id(id).map(|r| format!("NDPI_{}", r.key.to_ascii_uppercase())))
        .collect();
    keys.sort();
    keys
}

/// nDPI's risk keys of an expected flow, sorted.
pub(crate) fn expected_risk_keys(flow: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = flow["risk_keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// Bytes of hex lines (test fixtures extracted with tshark).
pub(crate) fn unhex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

proptest::proptest! {
    #[test]
    fn arbitrary_payloads_never_panic(
        packets in proptest::collection::vec((proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..600)), 1..12),
        l4 in proptest::sample::select(vec![6u8, 17]),
        port in proptest::sample::select(vec![53u16, 80, 443, 5353, 67, 123, 22, 40000]),
        prefix in proptest::sample::select(vec![&b""[..], b"\x16\x03\x01", b"\x16\xfe\xfd", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"SSH-2.0-"]),
    ) {
        let dpi = Dpi::new(DpiConfig { max_packets: 32, max_reassembly: 4096 });
        let mut flow = FlowDpi::default();
        let mut seq = 1u32;
        for (i, (from_client, mut bytes)) in packets.into_iter().enumerate() {
            if i == 0 {
                bytes.splice(0..0, prefix.iter().copied());
            }
            let c = PacketCtx { from_client, l4_proto: l4, client_port: 40001, server_port: port, ts_ns: 1, tcp_seq: (l4 == 6).then_some(seq), fragmented: false };
            seq = seq.wrapping_add(bytes.len() as u32);
            if dpi.inspect(&mut flow, &c, &bytes) {
                dpi.shrink(&mut flow);
            }
        }
        let mut rec = FlowRecord { l4_proto: u32::from(l4), server_port: u32::from(port), client_port: 40001, ..FlowRecord::default() };
        dpi.fill(&flow, &mut rec);
        dpi.fill(&flow, &mut rec);
    }
}

/// Rough per-call costs (run with `cargo test --release -- --ignored --nocapture dpi_micro`).
#[test]
#[ignore = "benchmark"]
#[allow(clippy::many_single_char_names)]
fn dpi_micro_benchmark() {
    use std::time::Instant;
    let ch = unhex(tls::tests::CURL_CLIENT_HELLO);
    let n = 200_000u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(tls::hello::parse_client_hello(
            std::hint::black_box(&ch[9..]),
            false,
        ));
    }
    println!(
        "ClientHello parse: {:.0} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
    let t = Instant::now();
    for _ in 0..n / 10 {
        let c = tls::hello::parse_client_hello(&ch[9..], false).expect("hello");
        std::hint::black_box((c.ja3(), c.ja4('t')));
    }
    println!(
        "ClientHello parse + JA3 + JA4: {:.0} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n / 10)
    );
    let q = unhex(dns::tests::RESPONSE);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(dns::parse(std::hint::black_box(&q)).ok());
    }
    println!(
        "DNS parse: {:.0} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
    let dpi = Dpi::new(DpiConfig::default());
    let t = Instant::now();
    for _ in 0..n {
        let mut f = FlowDpi::default();
        let c = PacketCtx {
            from_client: true,
            l4_proto: 6,
            client_port: 40000,
            server_port: 8443,
            ts_ns: 0,
            tcp_seq: None,
            fragmented: false,
        };
        std::hint::black_box(dpi.inspect(&mut f, &c, b"\x00\x01\x02 unknown protocol payload"));
    }
    println!(
        "inspect, unknown payload (no match): {:.0} ns",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
}
