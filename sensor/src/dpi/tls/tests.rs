//! Tests of the TLS dissector with payloads extracted (tshark `-e tcp.payload`) from the nDPI corpus.

use super::*;
use crate::dpi::tests::unhex;

/// ClientHello of `443-curl.pcap` (curl to www.ntop.org).
pub(crate) const CURL_CLIENT_HELLO: &[&str] = &[
    "1603010200010001fc03033e3841edcc20f6d0e5f7167ab7ee91a800c8ef70c2d624c7c7943a24026d9fbc000086cc14",
    "cc13cc15c030c02cc028c024c014c00a00a3009f006b006a00390038ff8500c400c3008800870081c032c02ec02ac026",
    "c00fc005009d003d003500c00084c02fc02bc027c023c013c00900a2009e006700400033003200be00bd00450044c031",
    "c02dc029c025c00ec004009c003c002f00ba0041c012c00800160013c00dc003000a00ff0100014d00000011000f0000",
    "0c7777772e6e746f702e6f7267000b000403000102000a003a0038000e000d0019001c000b000c001b00180009000a00",
    "1a00160017000800060007001400150004000500120013000100020003000f00100011000d00260024060106020603ef",
    "ef050105020503040104020403eeeeeded030103020303020102020203337400000010000e000c02683208687474702f",
    "312e31001500ae0000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000",
];

fn ctx_tls(from_client: bool) -> (bool, Option<u32>) {
    (from_client, None)
}

#[test]
fn curl_client_hello_gives_sni_ja3_ja4_as_ndpi() {
    let payload = unhex(CURL_CLIENT_HELLO);
    assert!(looks_like_tls(&payload));
    // Record header (5) + handshake header (4), then the body.
    let ch = hello::parse_client_hello(&payload[9..], false).expect("client hello");
    assert_eq!(ch.sni, Some(&b"www.ntop.org"[..]));
    // Values printed by nDPI in 443-curl.expected.json.
    assert_eq!(ch.ja3(), "2a26b1a62e40d25d4de3babc9d532f30");
    assert_eq!(ch.ja4('t'), "t12d6707h2_2955a3196ffa_c83f907a73d3");
    let names: Vec<&[u8]> = ch
        .alpn
        .map(|l| hello::alpn_names(l).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![&b"h2"[..], &b"http/1.1"[..]]);
}

#[test]
fn hello_split_over_segments_and_retransmitted() {
    let payload = unhex(CURL_CLIENT_HELLO);
    for cut in [1, 5, 9, 100, payload.len() - 1] {
        let mut t = TlsFlow::new(false);
        let (c, _) = ctx_tls(true);
        t.on_payload(c, Some(1000), &payload[..cut], 0, 16384);
        // A retransmission of the first part changes nothing.
        t.on_payload(c, Some(1000), &payload[..cut], 0, 16384);
        t.on_payload(c, Some(1000 + cut as u32), &payload[cut..], 0, 16384);
        assert_eq!(t.info.sni, "www.ntop.org", "cut at {cut}");
        assert_eq!(t.info.ja3c, "2a26b1a62e40d25d4de3babc9d532f30");
    }
    // Out of order: the third part before the second.
    let mut t = TlsFlow::new(false);
    t.on_payload(true, Some(1000), &payload[..50], 0, 16384);
    t.on_payload(true, Some(1100), &payload[100..], 0, 16384);
    assert!(t.info.sni.is_empty());
    t.on_payload(true, Some(1050), &payload[50..100], 0, 16384);
    assert_eq!(t.info.sni, "www.ntop.org");
}

#[test]
fn truncated_hellos_never_panic() {
    let payload = unhex(CURL_CLIENT_HELLO);
    for n in 0..payload.len() {
        let _ = hello::parse_client_hello(&payload[9..9 + n.min(payload.len() - 9)], false);
        let _ = hello::parse_server_hello(&payload[9..9 + n.min(payload.len() - 9)], false);
        let mut t = TlsFlow::new(false);
        t.on_payload(true, None, &payload[..n], 0, 16384);
        let mut r = crate::dpi::Risks::default();
        t.risks(&mut r);
    }
}

#[test]
fn grease_and_alpn_rules() {
    assert!(hello::is_grease(0x0a0a) && hello::is_grease(0xfafa) && !hello::is_grease(0x0a0b));
    assert!(is_common_alpn("h2") && is_common_alpn("http/1.1") && is_common_alpn("h3-29"));
    assert!(!is_common_alpn("anydesk/6.2.0/linux") && !is_common_alpn(""));
    assert!(weak_cipher(0x009c) && !weak_cipher(0x0004) && !weak_cipher(0x1301));
}

/// A certificate whose SAN extension lists `n` DNS names (crafted: hostile input).
fn cert_with_sans(n: usize) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let len = body.len();
        if len < 128 {
            v.push(len as u8);
        } else if len < 256 {
            v.extend([0x81, len as u8]);
        } else if len < 65536 {
            v.extend([0x82, (len >> 8) as u8, len as u8]);
        } else {
            v.extend([0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        }
        v.extend_from_slice(body);
        v
    }
    let name = |cn: &str| {
        let atv = [tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())].concat();
        tlv(0x30, &tlv(0x31, &tlv(0x30, &atv)))
    };
    let mut sans = Vec::new();
    for i in 0..n {
        sans.extend(tlv(0x82, format!("h{i}.example.com").as_bytes()));
    }
    let san_ext = tlv(
        0x30,
        &[tlv(0x06, &[0x55, 0x1d, 0x11]), tlv(0x04, &tlv(0x30, &sans))].concat(),
    );
    let alg = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
            ),
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let validity = tlv(
        0x30,
        &[tlv(0x17, b"200101000000Z"), tlv(0x17, b"300101000000Z")].concat(),
    );
    let spki = tlv(
        0x30,
        &[
            tlv(
                0x30,
                &[
                    tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
                    tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
                ]
                .concat(),
            ),
            tlv(0x03, &[0, 4, 1, 2]),
        ]
        .concat(),
    );
    let tbs = tlv(
        0x30,
        &[
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[1]),
            alg.clone(),
            name("issuer"),
            validity,
            name("subject"),
            spki,
            tlv(0xa3, &tlv(0x30, &san_ext)),
        ]
        .concat(),
    );
    tlv(0x30, &[tbs, alg, tlv(0x03, &[0, 1, 2, 3])].concat())
}

#[test]
fn certificate_with_ten_thousand_sans_is_bounded() {
    let der = cert_with_sans(10_000);
    let s = cert::summarize(&der, Some("h9999.example.com")).expect("parses");
    assert_eq!(s.cert.san.len(), crate::dpi::util::MAX_LIST);
    assert_eq!(s.cert.issuer, "CN=issuer");
    assert!(!s.cert.self_signed);
    // Only the first MAX_SAN_SCAN names are examined.
    assert!(!s.sni_matches);
    let s = cert::summarize(&der, Some("h5.example.com")).expect("parses");
    assert!(s.sni_matches);
    for n in (0..der.len()).step_by(997) {
        let _ = cert::summarize(&der[..n], None);
    }
}
