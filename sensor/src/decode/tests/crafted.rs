//! Malformed input: truncations, impossible header fields, nesting bombs. Built by spoiling real
//! frames where possible, by hand only where no real frame fits.

use super::super::{DecodeError, LinkType, MAX_LAYERS, Tunnel, decode, decode_stats_key};
use super::frame;

const ALL_LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

/// A 20-byte IPv4 header (RFC 791) from 10.0.0.1 to 10.0.0.2.
fn ipv4_header(proto: u8, total_len: u16) -> [u8; 20] {
    let [hi, lo] = total_len.to_be_bytes();
    [
        0x45, 0, hi, lo, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]
}

#[test]
fn zero_length_frame_is_truncated_for_every_link_type() {
    for link in ALL_LINKS {
        let err = decode(link, &[], 0, 0).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { .. }),
            "{link:?}: {err:?}"
        );
    }
}

#[test]
fn every_prefix_of_real_frames_decodes_or_fails_cleanly() {
    let samples = [
        ("443-curl.pcap", 1),
        ("4in4tunnel.pcap", 1),
        ("dns.pcap", 4),
        ("4in6tunnel.pcap", 1),
        ("6in4tunnel.pcap", 3),
        ("gre.pcapng", 1),
        ("vxlan.pcap", 1),
        ("tls_change_cipher.pcap", 1),
        ("log4j-webapp-exploit.pcap", 1),
        ("psiphon3.pcap", 1),
        ("openvpn-tlscrypt.pcap", 1),
        ("dns_fragmented.pcap", 5),
        ("iphone.pcap", 34),
    ];
    for (name, number) in samples {
        let (link, f) = frame(name, number);
        for cut in 0..=f.data.len() {
            let prefix = &f.data[..cut];
            if let Ok(v) = decode(link, prefix, f.len, 0) {
                assert!(
                    v.payload.len() <= v.payload_len as usize,
                    "{name} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn cut_inside_the_tcp_ports_is_truncated_but_after_them_keeps_ports() {
    // 443-curl.pcap #1: Ethernet (14) + IPv4 (20), then TCP.
    let (link, f) = frame("443-curl.pcap", 1);
    assert_eq!(
        decode(link, &f.data[..34 + 3], f.len, 0),
        Err(DecodeError::Truncated { layer: "tcp" })
    );
    let v = decode(link, &f.data[..34 + 4], f.len, 0).unwrap();
    assert_eq!((v.src_port, v.dst_port, v.tcp), (55523, 443, None));
    let v = decode(link, &f.data[..34 + 20], f.len, 0).unwrap();
    let tcp = v.tcp.unwrap();
    assert_eq!((tcp.flags, tcp.window_scale), (0x02, None));
    assert_eq!(
        decode(link, &f.data[..33], f.len, 0),
        Err(DecodeError::Truncated { layer: "ipv4" })
    );
}

#[test]
fn bad_ihl_is_malformed() {
    let (link, mut f) = frame("443-curl.pcap", 1);
    f.data[14] = 0x44;
    let err = decode(link, &f.data, f.len, 0).unwrap_err();
    assert_eq!(err, DecodeError::Malformed { layer: "ipv4" });
    assert_eq!(decode_stats_key(&err), "malformed_ipv4");
}

#[test]
fn total_length_below_header_is_malformed() {
    let (link, mut f) = frame("443-curl.pcap", 1);
    f.data[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        decode(link, &f.data, f.len, 0),
        Err(DecodeError::Malformed { layer: "ipv4" })
    );
}

#[test]
fn total_length_zero_is_taken_as_offloaded() {
    // TSO/LRO captures carry total length 0: the capture gives the length.
    let (link, mut f) = frame("443-curl.pcap", 1);
    f.data[16..18].copy_from_slice(&0u16.to_be_bytes());
    let v = decode(link, &f.data, f.len, 0).unwrap();
    assert_eq!((v.src_port, v.dst_port, v.payload_len), (55523, 443, 0));
}

#[test]
fn wrong_ip_version_is_malformed() {
    let (link, mut f) = frame("psiphon3.pcap", 1);
    f.data[0] = 0x55;
    assert_eq!(
        decode(link, &f.data, f.len, 0),
        Err(DecodeError::Malformed { layer: "ip" })
    );
}

#[test]
fn arp_is_not_ip() {
    let (link, mut f) = frame("443-curl.pcap", 1);
    f.data[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let err = decode(link, &f.data, f.len, 0).unwrap_err();
    assert_eq!(err, DecodeError::NotIp { ethertype: 0x0806 });
    assert_eq!(decode_stats_key(&err), "not_ip");
}

#[test]
fn ip_in_ip_nesting_bomb_is_too_deep() {
    let layers = 40usize;
    let mut packet = Vec::new();
    for i in 0..layers {
        let total = (20 * (layers - i) + 8) as u16;
        packet.extend_from_slice(&ipv4_header(if i + 1 == layers { 17 } else { 4 }, total));
    }
    packet.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0]);
    let err = decode(LinkType::RawIp, &packet, packet.len() as u32, 0).unwrap_err();
    assert_eq!(err, DecodeError::TooDeep);
    assert_eq!(decode_stats_key(&err), "too_deep");

    // A few layers are fine: the innermost header is the packet.
    let layers = 3usize;
    let mut packet = Vec::new();
    for i in 0..layers {
        let total = (20 * (layers - i) + 8) as u16;
        packet.extend_from_slice(&ipv4_header(if i + 1 == layers { 17 } else { 4 }, total));
    }
    packet.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0]);
    let v = decode(LinkType::RawIp, &packet, packet.len() as u32, 0).unwrap();
    assert_eq!(
        (v.tunnel, v.proto, v.src_port, v.dst_port),
        (Tunnel::IpInIp, 17, 1234, 53)
    );
}

#[test]
fn vlan_tag_bomb_is_too_deep() {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x81, 0x00]);
    for _ in 0..=MAX_LAYERS {
        frame.extend_from_slice(&[0x00, 0x05, 0x81, 0x00]);
    }
    frame.extend_from_slice(&[0x00, 0x05, 0x08, 0x00]);
    frame.extend_from_slice(&ipv4_header(59, 20));
    assert_eq!(
        decode(LinkType::Ethernet, &frame, frame.len() as u32, 0),
        Err(DecodeError::TooDeep)
    );
}

#[test]
fn stats_keys_name_the_layer() {
    assert_eq!(
        decode_stats_key(&DecodeError::Truncated { layer: "ipv4" }),
        "truncated_ipv4"
    );
    assert_eq!(
        decode_stats_key(&DecodeError::Malformed { layer: "tcp" }),
        "malformed_tcp"
    );
    assert_eq!(
        decode_stats_key(&DecodeError::Truncated { layer: "???" }),
        "truncated_other"
    );
}
