//! Tests of the DNS dissector with payloads extracted from `dns.pcap` (nDPI corpus) and crafted hostile messages.

use super::*;
use crate::dpi::tests::unhex;

const QUERY: &[&str] = &["bc1f0100000100000000000003777777076578616d706c6503636f6d00001c0001"];
pub(crate) const RESPONSE: &[&str] =
    &["dca28180000100000000000003777777016c06676f6f676c6503636f6d00001c0001"];

#[test]
fn query_and_response_of_dns_pcap() {
    let q = parse(&unhex(QUERY)).expect("query");
    assert!(!q.is_response);
    assert_eq!(q.qtype, 28);
    let r = parse(&unhex(RESPONSE)).expect("response");
    assert!(r.is_response);
    assert_eq!(r.rcode, 0);
    assert_eq!(r.query, "www.l.google.com");
    let mut f = DnsFlow {
        check_size: true,
        ..DnsFlow::default()
    };
    f.on_payload(false, false, &unhex(QUERY), 16384);
    f.on_payload(false, false, &unhex(RESPONSE), 16384);
    assert!(f.is_done());
}

#[test]
fn tcp_messages_are_length_prefixed_and_reassembled() {
    let msg = unhex(RESPONSE);
    let mut stream = (msg.len() as u16).to_be_bytes().to_vec();
    stream.extend_from_slice(&msg);
    let mut f = DnsFlow::default();
    f.on_payload(true, false, &stream[..7], 16384);
    assert!(!f.is_confirmed());
    f.on_payload(true, false, &stream[7..], 16384);
    assert_eq!(f.host, "www.l.google.com");
}

#[test]
fn compression_loop_is_bounded() {
    // Header with one question whose name is a pointer to itself (offset 12).
    let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend([0xc0, 12, 0, 1, 0, 1]);
    assert!(parse(&m).is_err());
    // Two pointers pointing at each other.
    let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend([1, b'a', 0xc0, 16, 0xc0, 12, 0, 1, 0, 1]);
    assert!(parse(&m).is_err());
}

#[test]
fn risks_of_names() {
    let f = DnsFlow {
        host: "www.xn--mnich-kva.com".into(),
        invalid_chars: true,
        ..DnsFlow::default()
    };
    let mut r = crate::dpi::Risks::default();
    f.risks(false, &mut r);
    assert!(r.has(rid::PUNYCODE_IDN) && r.has(rid::INVALID_CHARACTERS));
}

#[test]
fn truncation_never_panics() {
    let msg = unhex(RESPONSE);
    for n in 0..msg.len() {
        let _ = parse(&msg[..n]);
    }
    for b in 0..=255u8 {
        let _ = parse(&[0, 1, 0x81, 0x80, 0, 1, 0, 200, 0, 0, 0, 0, 63, b, b, b]);
    }
}
