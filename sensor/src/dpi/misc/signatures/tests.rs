use super::*;
use crate::dpi::tests::{corpus_flow, expected_risk_keys, risk_keys, unhex};

/// Flows of nDPI's corpus that these signatures name: protocol, app and risks as nDPI's.
#[test]
fn corpus_flows_match_ndpi() {
    for (pcap, port) in [
        ("log4j-webapp-exploit.pcap", 57650), // LDAP on 1389
        ("irc.pcap", 8000),                   // IRC on 8000, NICK/USER
        ("bittorrent_utp.pcap", 40959),       // uTP carrying the peer handshake
        ("edonkey.pcap", 7551),               // eDonkey hello
        ("ftp.pcap", 25685),                  // FTP data: a directory listing
    ] {
        let (rec, exp) = corpus_flow(pcap, port);
        let l7 = rec.l7.clone().unwrap_or_default();
        assert_eq!(
            Some(l7.master_protocol.as_str()),
            exp["master_proto"].as_str(),
            "{pcap}"
        );
        assert_eq!(
            Some(l7.app_protocol.as_str()),
            exp["app_proto"].as_str(),
            "{pcap}"
        );
        let ours = risk_keys(&rec);
        for k in expected_risk_keys(&exp) {
            assert!(ours.contains(&k), "{pcap}: {k} missing from {ours:?}");
        }
    }
}

/// NetBIOS names (RFC 1001 first-level encoding) as nDPI prints them, and the SMB browser
/// datagram (`NetBIOS.SMBv1`).
#[test]
fn netbios_names_match_ndpi() {
    let (rec, exp) = corpus_flow("tor.pcap", 138);
    let l7 = rec.l7.clone().unwrap_or_default();
    assert_eq!(Some(l7.app_protocol.as_str()), exp["app_proto"].as_str());
    assert!(
        l7.hostname
            .eq_ignore_ascii_case(exp["hostname"].as_str().unwrap_or_default())
    );
    assert_eq!(risk_keys(&rec), expected_risk_keys(&exp));
    let (rec, exp) = corpus_flow("netbios.pcap", 57836);
    let l7 = rec.l7.unwrap_or_default();
    assert_eq!(Some(l7.hostname.as_str()), exp["hostname"].as_str());
}

/// Messages built from the specifications (no capture of these is in the corpus).
#[test]
fn spec_messages() {
    // RFC 5769 §2.1's sample request: header, SOFTWARE, PRIORITY, ICE-CONTROLLED,
    // USERNAME, MESSAGE-INTEGRITY, FINGERPRINT (the last two are not verified here).
    let stun = unhex(&[
        "000100582112a442b7e7a701bc34d686fa87dfae",
        "802200105354554e207465737420636c69656e74",
        "002400046e0001ff",
        "80290008932ff9b151263b36",
        "000600096576746a3a68367659202020",
        "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2",
        "80280004e57a3bcf",
    ]);
    assert_eq!(stun.len(), 108);
    assert_eq!(udp_signature(40000, 3478, &stun), Some("STUN"));
    assert_eq!(tcp_signature(&stun), Some("STUN"));
    // RFC 9113 §3.4.
    assert_eq!(
        tcp_signature(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04"),
        Some("HTTP2")
    );
    // MQTT 3.1.1 §3.1: CONNECT, protocol "MQTT" level 4, clean session, keep-alive 60,
    // client id "nw".
    let mqtt = unhex(&["100e00044d5154540402003c00026e77"]);
    assert_eq!(tcp_signature(&mqtt), Some("MQTT"));
    assert_eq!(tcp_signature(&mqtt[..mqtt.len() - 1]), None);
    // RFC 4120 §5.4.1 AS-REQ over TCP: length, [APPLICATION 10] { SEQUENCE { pvno [1] 5,
    // msg-type [2] 10 } }.
    let krb = unhex(&["0000000e", "6a0c", "300a", "a103020105", "a20302010a"]);
    assert_eq!(tcp_signature(&krb), Some("Kerberos"));
    assert_eq!(udp_signature(40000, 88, &krb[4..]), Some("Kerberos"));
    // RFC 4511 §4.2 BindRequest: messageID 1, version 3, name "", simple "".
    let ldap = unhex(&["300c020101600702010304008000"]);
    assert_eq!(tcp_signature(&ldap), Some("LDAP"));
    // MySQL protocol::HandshakeV10, server version "8.0.36".
    let mut mysql = b"\x0a8.0.36\x00\x01\x00\x00\x00abcdefgh\x00".to_vec();
    let len = u8::try_from(mysql.len()).unwrap();
    mysql.splice(0..0, [len, 0, 0, 0]);
    assert_eq!(tcp_signature(&mysql), Some("MySQL"));
    // PostgreSQL StartupMessage 3.0 with user=postgres, and SSLRequest.
    let mut pg = vec![0, 0, 0, 0, 0, 3, 0, 0];
    pg.extend(b"user\0postgres\0\0");
    pg[3] = u8::try_from(pg.len()).unwrap();
    assert_eq!(tcp_signature(&pg), Some("PostgreSQL"));
    assert_eq!(
        tcp_signature(&unhex(&["0000000804d2162f"])),
        Some("PostgreSQL")
    );
    // Redis RESP.
    assert_eq!(tcp_signature(b"*1\r\n$4\r\nPING\r\n"), Some("Redis"));
    // MongoDB OP_MSG (opCode 2013): header + flagBits + a kind-0 section {}.
    let mongo = unhex(&[
        "1a000000",
        "01000000",
        "00000000",
        "dd070000",
        "00000000",
        "00",
        "0500000000",
    ]);
    assert_eq!(mongo.len(), 0x1a);
    assert_eq!(tcp_signature(&mongo), Some("MongoDB"));
    // Kafka ApiVersions request v3, correlation 1, client id "rdkafka".
    let kafka = unhex(&[
        "00000011",
        "0012",
        "0003",
        "00000001",
        "0007",
        "72646b61666b61",
    ]);
    assert_eq!(tcp_signature(&kafka), Some("Kafka"));
    // RFC 3261 §7.1.
    let sip = b"OPTIONS sip:carol@chicago.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33\r\n\r\n";
    assert_eq!(udp_signature(5060, 5060, sip), Some("SIP"));
    assert_eq!(tcp_signature(sip), Some("SIP"));
    // RFC 7296 §3.1 IKE_SA_INIT header (no payloads), and the same on 4500 after the marker.
    let ike = unhex(&[
        "0102030405060708",
        "0000000000000000",
        "00",
        "20",
        "22",
        "08",
        "00000000",
        "0000001c",
    ]);
    assert_eq!(udp_signature(500, 500, &ike), Some("IPsec"));
    let nat_t = [&[0u8; 4][..], &ike].concat();
    assert_eq!(udp_signature(4500, 4500, &nat_t), Some("IPsec"));
    // RFC 3550 §6.4.2: an empty receiver report, then SDES with a CNAME chunk.
    let rtcp = unhex(&["80c90001deadbeef", "81ca0003deadbeef01026e7700000000"]);
    assert_eq!(udp_signature(40000, 40001, &rtcp), Some("RTCP"));
    assert_eq!(udp_signature(40000, 40001, &rtcp[..12]), None);
    // BitTorrent DHT ping (BEP 5).
    assert_eq!(
        udp_signature(
            6881,
            6881,
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
        ),
        Some("BitTorrent")
    );
}

/// Ordinary payloads of other protocols are not mistaken for these.
#[test]
fn no_false_positives_on_common_payloads() {
    for p in [
        &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"220 mail.example.com ESMTP\r\n",
        b"hello world\n",
        b"\x00\x00\x00\x00",
        b"",
        &[0u8; 64],
        &[0xffu8; 64],
    ] {
        assert_eq!(tcp_signature(p), None, "{p:?}");
        assert_eq!(udp_signature(40000, 40001, p), None, "{p:?}");
    }
    // Every prefix of every spec message is either still that protocol or nothing, and
    // never panics.
    let mut x = 0x1234_5678u32;
    for n in 0..2000 {
        let p: Vec<u8> = (0..n % 300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        let _ = tcp_signature(&p);
        let _ = udp_signature(500, 4500, &p);
    }
}
