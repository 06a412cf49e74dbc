//! QUIC tests: RFC 9001 / RFC 9369 key vectors, the corpus QUIC captures (v1, v2, drafts 27,
//! 28, 29, 32, 34, 0-RTT, a ClientHello over two Initials) against nDPI's expected results,
//! and hostile input.

use std::path::PathBuf;

use super::initial::{self, Flavor, V1, V2};
use super::*;
use crate::dpi::tests::replay;
use crate::dpi::{Dpi, DpiConfig};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/ndpi")
        .join(name)
}

/// UDP payloads of a capture, in order.
fn udp_payloads(name: &str) -> Vec<Vec<u8>> {
    use etherparse::{SlicedPacket, TransportSlice};
    let mut cap = pcap::Capture::from_file(corpus(name)).unwrap();
    let link = cap.get_datalink().0;
    let mut out = Vec::new();
    while let Ok(pkt) = cap.next_packet() {
        let p = match link {
            1 => SlicedPacket::from_ethernet(pkt.data).ok(),
            // Linux cooked capture v1: a 16-byte header before the IP packet.
            113 => pkt
                .data
                .get(16..)
                .and_then(|d| SlicedPacket::from_ip(d).ok()),
            0 | 108 => pkt
                .data
                .get(4..)
                .and_then(|d| SlicedPacket::from_ip(d).ok()),
            _ => SlicedPacket::from_ip(pkt.data).ok(),
        };
        if let Some(TransportSlice::Udp(u)) = p.and_then(|p| p.transport) {
            out.push(u.payload().to_vec());
        }
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    crate::dpi::tests::unhex(&[s])
}

#[test]
fn rfc9001_appendix_a_client_initial_keys() {
    let dcid = unhex("8394c8f03e515708");
    let k = initial::client_keys(Flavor::of(V1).unwrap(), &dcid).unwrap();
    assert_eq!(k.key.to_vec(), unhex("1f369613dd76d5467730efcbe3b1a22d"));
    assert_eq!(k.iv.to_vec(), unhex("fa044b2f42a3fd3b46fb255c"));
    assert_eq!(k.hp.to_vec(), unhex("9f50449e04a0e810283a1e9933adedd2"));
}

/// RFC 9001 A.3: the server's protected Initial (packet number 1, ACK + CRYPTO frames) opens
/// with the server keys of the A.1 connection id; header protection, nonce and AEAD are the
/// same code as for client Initials.
#[test]
fn rfc9001_appendix_a_protected_initial_opens() {
    let dcid = unhex("8394c8f03e515708");
    let keys = initial::initial_keys(Flavor::of(V1).unwrap(), &dcid, "server in").unwrap();
    assert_eq!(keys.key.to_vec(), unhex("cf3a5331653c364c88f0f379b6067e37"));
    assert_eq!(keys.iv.to_vec(), unhex("0ac1493ca1905853b0bba03e"));
    assert_eq!(keys.hp.to_vec(), unhex("c206b8d9b9f0f37644430b490eeaa314"));
    let packet = unhex(concat!(
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a",
        "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3",
        "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84",
        "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4",
        "2158407dd074ee"
    ));
    let init = initial::find_initial(&packet).unwrap();
    assert_eq!(init.packet.len(), packet.len());
    let plain = initial::decrypt(&init, &keys).unwrap();
    assert_eq!(
        plain,
        unhex(concat!(
            "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739",
            "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94",
            "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00",
            "020304"
        ))
    );
    // The frames: an ACK, then one CRYPTO frame at offset 0 holding the ServerHello.
    let mut frames = Vec::new();
    initial::crypto_frames(&plain, |off, data| frames.push((off, data.len(), data[0])));
    assert_eq!(frames, [(0, 90, 2)]);
    // The client keys do not open it (server Initials are skipped).
    let client = initial::client_keys(Flavor::of(V1).unwrap(), &dcid).unwrap();
    assert!(initial::decrypt(&init, &client).is_none());
}

#[test]
fn rfc9369_appendix_a_client_initial_keys() {
    let dcid = unhex("8394c8f03e515708");
    let k = initial::client_keys(Flavor::of(V2).unwrap(), &dcid).unwrap();
    assert_eq!(k.key.to_vec(), unhex("8b1a0bc121284290a29e0971b5cd045d"));
    assert_eq!(k.iv.to_vec(), unhex("91f73e2351d8fa91660e909f"));
    assert_eq!(k.hp.to_vec(), unhex("45b95e15235d6f45a6b19cbcb0294ba9"));
}

#[test]
fn version_names_as_ndpi_prints_them() {
    assert_eq!(version_name(1), "V-1");
    assert_eq!(version_name(V2), "V-2");
    assert_eq!(version_name(0xff00_001d), "Draft-29");
    assert_eq!(version_name(u32::from_be_bytes(*b"Q046")), "Q046");
    assert_eq!(version_name(0x1234_5678), "");
}

/// Expected (SNI, JA3C, JA4, QUIC version) of the first flow of `pcap`, from nDPI's output.
fn expected(pcap: &str, flow: usize) -> (String, String, String, String) {
    let stem = pcap.rsplit_once('.').unwrap().0;
    let exp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus(&format!("{stem}.expected.json"))).unwrap())
            .unwrap();
    let f = &exp["flows"][flow];
    let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
    (s("hostname"), s("ja3c"), s("ja4"), s("quic_version"))
}

/// Feeds the client packets of a capture's first QUIC flow to a [`QuicFlow`].
fn dissect(pcap: &str) -> QuicFlow {
    let mut flow: Option<QuicFlow> = None;
    for p in udp_payloads(pcap) {
        if !is_quic(&p) && flow.is_none() {
            continue;
        }
        let f = flow.get_or_insert_with(|| QuicFlow::new(&p));
        f.on_payload(&p, 16 * 1024);
        if f.is_done() {
            break;
        }
    }
    flow.unwrap()
}

#[test]
fn corpus_client_hellos_match_ndpi() {
    for (pcap, idx) in [
        ("quic-29.pcap", 0),
        ("quic-27.pcap", 0),
        ("quic-34.pcap", 0),
        ("quic-v2.pcapng", 0),
        ("doq.pcapng", 0),
        ("quic_frags_ch_in_multiple_packets.pcapng", 0),
    ] {
        let (sni, ja3c, ja4, version) = expected(pcap, idx);
        let f = dissect(pcap);
        assert!(f.tls.is_confirmed(), "{pcap}: no ClientHello");
        assert_eq!(f.tls.sni.clone().unwrap_or_default(), sni, "{pcap}: SNI");
        assert_eq!(f.tls.info.ja3c, ja3c, "{pcap}: JA3C");
        assert_eq!(f.tls.info.ja4, ja4, "{pcap}: JA4");
        assert_eq!(f.tls.info.quic_version, version, "{pcap}: version");
    }
}

#[test]
fn corpus_flows_through_the_engine() {
    let dpi = Dpi::new(DpiConfig::default());
    for pcap in [
        "quic_0RTT.pcap",
        "google_meet.pcapng",
        "quic-34.pcap",
        "doq.pcapng",
        "quic_frags_ch_in_multiple_packets.pcapng",
    ] {
        let stem = pcap.rsplit_once('.').unwrap().0;
        let exp: serde_json::Value = serde_json::from_slice(
            &std::fs::read(corpus(&format!("{stem}.expected.json"))).unwrap(),
        )
        .unwrap();
        let records = replay(&dpi, &corpus(pcap));
        for f in exp["flows"].as_array().unwrap() {
            let Some(ja3c) = f["ja3c"].as_str().filter(|_| f["l4_proto"] == "UDP") else {
                continue;
            };
            let rec = records
                .values()
                .find(|r| {
                    r.l7.as_ref()
                        .and_then(|l| l.tls.as_ref())
                        .is_some_and(|t| t.ja3c == ja3c)
                })
                .unwrap_or_else(|| panic!("{pcap}: no flow with JA3C {ja3c}"));
            let l7 = rec.l7.as_ref().unwrap();
            assert_eq!(l7.app_protocol, f["app_proto"].as_str().unwrap(), "{pcap}");
            assert_eq!(
                l7.hostname,
                f["hostname"].as_str().unwrap_or_default(),
                "{pcap}"
            );
            let tls = l7.tls.as_ref().unwrap();
            assert_eq!(tls.ja4, f["ja4"].as_str().unwrap(), "{pcap}");
            assert_eq!(
                tls.quic_version,
                f["quic_version"].as_str().unwrap(),
                "{pcap}"
            );
            for key in f["risk_keys"].as_array().unwrap() {
                let key = key
                    .as_str()
                    .unwrap()
                    .trim_start_matches("NDPI_")
                    .to_lowercase();
                if key == "unidirectional_traffic" {
                    continue; // the flow table's
                }
                let id = netwarden_api::risk::by_key(&key).unwrap().id;
                assert!(rec.has_risk(id), "{pcap}: missing {key}");
            }
        }
    }
}

#[test]
fn gquic_q046_chlo_gives_the_host_name() {
    let first = udp_payloads("quic_q46.pcap")
        .into_iter()
        .find(|p| is_quic(p))
        .unwrap();
    let mut f = QuicFlow::new(&first);
    f.on_payload(&first, 16 * 1024);
    assert!(f.is_done());
    assert_eq!(f.tls.sni.as_deref(), Some("play.google.com"));
    assert_eq!(f.tls.info.quic_version, "Q046");
    for n in 0..first.len() {
        let _ = gquic_chlo_sni(&first[..n]);
    }
}

#[test]
fn the_client_hello_over_two_initials_needs_both() {
    let pkts: Vec<_> = udp_payloads("quic_frags_ch_in_multiple_packets.pcapng");
    let mut f = QuicFlow::new(&pkts[0]);
    f.on_payload(&pkts[0], 16 * 1024);
    assert!(!f.is_done() && !f.tls.is_confirmed());
    f.on_payload(&pkts[1], 16 * 1024);
    assert!(f.is_done() && f.tls.is_confirmed());
    assert!(f.crypto.is_none(), "buffer freed");
    // A reassembly limit smaller than the ClientHello gives up without growing past it.
    let mut small = QuicFlow::new(&pkts[0]);
    small.on_payload(&pkts[0], 512);
    small.on_payload(&pkts[1], 512);
    assert!(small.is_done() && !small.tls.is_confirmed());
}

#[test]
fn truncated_and_corrupted_initials_never_panic() {
    for pcap in ["quic-29.pcap", "quic-v2.pcapng", "quic_0RTT.pcap"] {
        let first = udp_payloads(pcap).into_iter().find(|p| is_quic(p)).unwrap();
        // The Initial may be followed by coalesced packets (0-RTT, Handshake).
        let end = initial::find_initial(&first).unwrap().packet.len();
        for n in 0..=first.len() {
            let mut f = QuicFlow::new(&first[..n]);
            f.on_payload(&first[..n], 16 * 1024);
            // The AEAD covers the whole packet: a cut-short Initial never opens.
            assert_eq!(f.tls.is_confirmed(), n >= end, "{pcap} cut at {n}");
        }
        for i in (0..first.len()).step_by(7) {
            let mut bad = first.clone();
            bad[i] ^= 0x5a;
            let mut f = QuicFlow::new(&bad);
            f.on_payload(&bad, 16 * 1024);
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_quic_payloads_never_panic(
        version in proptest::sample::select(vec![1u32, V2, 0xff00_001d, 0xff00_001b, 0xff00_0022, 0x5130_3436, 0x5130_3433]),
        packets in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..1400), 1..6),
        first in proptest::num::u8::ANY,
    ) {
        let mut flow: Option<QuicFlow> = None;
        for mut p in packets {
            p.splice(0..0, [first | 0x80].into_iter().chain(version.to_be_bytes()));
            let f = flow.get_or_insert_with(|| QuicFlow::new(&p));
            f.on_payload(&p, 4096);
        }
        let mut r = crate::dpi::util::Reader::new(&[0xff; 9]);
        let _ = initial::varint(&mut r);
    }

    #[test]
    fn arbitrary_frames_never_panic(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
        let mut c = Crypto::default();
        initial::crypto_frames(&payload, |off, data| {
            let _ = c.insert(off, data, 4096);
        });
        let _ = c.contiguous();
    }
}
