//! Real frames from the nDPI corpus; every expected value comes from
//! `tshark -r FILE -T fields -e ip.src -e ip.dst -e tcp.srcport ...` on the same frame.

use std::net::IpAddr;

use super::super::{Fragment, TcpInfo, Tunnel, tcp_flags};
use super::decode_frame;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ethernet_ipv4_tcp_syn() {
    // 443-curl.pcap #1: 192.168.1.13:55523 -> 178.62.197.130:443, SYN, win 65535, wscale 5.
    let v = decode_frame("443-curl.pcap", 1).unwrap();
    assert_eq!(
        (v.ts_ns, v.wire_len, v.vlan, v.tunnel),
        (7, 78, 0, Tunnel::None)
    );
    assert_eq!((v.src, v.dst), (ip("192.168.1.13"), ip("178.62.197.130")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 55523, 443));
    assert_eq!(v.fragment, Fragment::None);
    assert_eq!(
        v.tcp,
        Some(TcpInfo {
            seq: 3_430_381_205,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 65535,
            window_scale: Some(5),
        })
    );
    assert_eq!((v.payload.len(), v.payload_len), (0, 0));
    assert_eq!(v.icmp, None);
}

#[test]
fn qinq_ipv4_in_ipv4() {
    // 4in4tunnel.pcap #1: VLAN 1624 then 505; 69.67.35.146 -> 41.202.46.110 proto 4 carrying
    // 10.10.100.25:62367 -> 10.10.101.2:17000 UDP (udp.length 108).
    let v = decode_frame("4in4tunnel.pcap", 1).unwrap();
    assert_eq!((v.vlan, v.tunnel, v.wire_len), (505, Tunnel::IpInIp, 170));
    assert_eq!((v.src, v.dst), (ip("10.10.100.25"), ip("10.10.101.2")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 62367, 17000));
    assert_eq!((v.payload.len(), v.payload_len), (100, 100));
    assert_eq!(v.tcp, None);
}

#[test]
fn pppoe_in_qinq() {
    // dns.pcap #4: VLAN 421, VLAN 785, PPPoE session, PPP IPv4,
    // 82.178.113.245:47255 -> 82.178.158.181:53 UDP (udp.length 41).
    let v = decode_frame("dns.pcap", 4).unwrap();
    assert_eq!(v.vlan, 785);
    assert_eq!((v.src, v.dst), (ip("82.178.113.245"), ip("82.178.158.181")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 47255, 53));
    assert_eq!(v.payload_len, 33);
}

#[test]
fn ipv4_in_ipv6() {
    // 4in6tunnel.pcap #1: 22e0:...:22d8 -> 344a:...::2a carrying 192.168.0.1:64455 -> 10.10.10.1:443 SYN,
    // wscale 8.
    let v = decode_frame("4in6tunnel.pcap", 1).unwrap();
    assert_eq!(v.tunnel, Tunnel::IpInIp);
    assert_eq!((v.src, v.dst), (ip("192.168.0.1"), ip("10.10.10.1")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 64455, 443));
    let tcp = v.tcp.unwrap();
    assert_eq!(
        (tcp.seq, tcp.flags, tcp.window, tcp.window_scale),
        (3_756_080_770, 0x02, 65535, Some(8))
    );
}

#[test]
fn ipv6_in_ipv4_icmpv6() {
    // 6in4tunnel.pcap #3: 174.3.73.24 -> 184.105.255.26 proto 41 carrying
    // 2001:470:1f16:13f::2 -> 2604:a880:1:20::224:b001 ICMPv6 type 1 code 3.
    let v = decode_frame("6in4tunnel.pcap", 3).unwrap();
    assert_eq!(v.tunnel, Tunnel::IpInIp);
    assert_eq!(
        (v.src, v.dst),
        (ip("2001:470:1f16:13f::2"), ip("2604:a880:1:20::224:b001"))
    );
    assert_eq!((v.proto, v.src_port, v.dst_port), (58, 0, 0));
    assert_eq!(v.icmp, Some((1, 3)));
    assert_eq!(v.tcp, None);
}

#[test]
fn gre_pptp_ppp() {
    // gre.pcapng #1: VLAN 142, 109.105.228.253 -> 10.177.98.84 GRE v1 (K, S, A) PPP carrying
    // 192.168.10.210:5060 -> 192.168.103.40:5060 UDP (udp.length 306).
    let v = decode_frame("gre.pcapng", 1).unwrap();
    assert_eq!((v.vlan, v.tunnel), (142, Tunnel::Gre));
    assert_eq!((v.src, v.dst), (ip("192.168.10.210"), ip("192.168.103.40")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 5060, 5060));
    assert_eq!(v.payload_len, 298);
    assert!(v.payload.starts_with(b"SIP/2.0 100 Trying"));
}

#[test]
fn gre_with_a_broken_inner_packet_is_the_outer_packet() {
    // gre.pcapng #1 with the inner IPv4 version nibble (offset 58) spoiled.
    let (link, mut frame) = super::frame("gre.pcapng", 1);
    frame.data[58] = 0x95;
    let v = super::super::decode(link, &frame.data, frame.len, 0).unwrap();
    assert_eq!((v.vlan, v.tunnel), (142, Tunnel::None));
    assert_eq!((v.src, v.dst), (ip("109.105.228.253"), ip("10.177.98.84")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (47, 0, 0));
}

#[test]
fn vxlan() {
    // vxlan.pcap #1: VLAN 5, 192.168.22.4:60887 -> 192.168.22.5:4789 VXLAN carrying
    // 10.10.20.4:44437 -> 8.8.8.8:53 UDP (udp.length 38).
    let v = decode_frame("vxlan.pcap", 1).unwrap();
    assert_eq!((v.vlan, v.tunnel), (5, Tunnel::Vxlan));
    assert_eq!((v.src, v.dst), (ip("10.10.20.4"), ip("8.8.8.8")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 44437, 53));
    assert_eq!((v.payload.len(), v.payload_len), (30, 30));
}

#[test]
fn gtp_u() {
    // ja3_lots_of_cipher_suites_2_anon.pcap #1 (114 of 118 bytes captured): UDP 2152 -> 2152,
    // GTPv1 flags 0x32 (S), carrying 192.168.147.177:58496 -> 151.121.193.160:443 SYN.
    let v = decode_frame("ja3_lots_of_cipher_suites_2_anon.pcap", 1).unwrap();
    assert_eq!((v.tunnel, v.wire_len), (Tunnel::Gtp, 118));
    assert_eq!(
        (v.src, v.dst),
        (ip("192.168.147.177"), ip("151.121.193.160"))
    );
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 58496, 443));
    let tcp = v.tcp.unwrap();
    assert_eq!(
        (tcp.seq, tcp.flags, tcp.window, tcp.window_scale),
        (1_120_328_421, 0x02, 14600, Some(5))
    );
}

#[test]
fn gtp_u_in_qinq() {
    // tls_change_cipher.pcap #1: VLAN 3394 then 113, GTP-U carrying
    // 18.139.7.8:443 -> 172.29.190.157:62797 SYN/ACK, ack 2880918577, win 62503, wscale 7.
    let v = decode_frame("tls_change_cipher.pcap", 1).unwrap();
    assert_eq!((v.vlan, v.tunnel), (113, Tunnel::Gtp));
    assert_eq!((v.src, v.dst), (ip("18.139.7.8"), ip("172.29.190.157")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 443, 62797));
    assert_eq!(
        v.tcp,
        Some(TcpInfo {
            seq: 3_421_684_031,
            ack: 2_880_918_577,
            flags: tcp_flags::SYN | tcp_flags::ACK,
            window: 62503,
            window_scale: Some(7),
        })
    );
}

#[test]
fn teredo_is_not_decapsulated() {
    // teredo.pcap #1: 10.112.16.106:52513 -> 194.136.28.76:3544 UDP carrying IPv6 (Teredo).
    let v = decode_frame("teredo.pcap", 1).unwrap();
    assert_eq!(v.tunnel, Tunnel::None);
    assert_eq!((v.src, v.dst), (ip("10.112.16.106"), ip("194.136.28.76")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 52513, 3544));
    assert_eq!(v.payload_len, 61);
}

#[test]
fn linux_sll() {
    // log4j-webapp-exploit.pcap #1: 172.16.238.1:1984 -> 172.16.238.10:8080 SYN, wscale 7.
    let v = decode_frame("log4j-webapp-exploit.pcap", 1).unwrap();
    assert_eq!((v.src, v.dst), (ip("172.16.238.1"), ip("172.16.238.10")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 1984, 8080));
    assert_eq!(v.tcp.unwrap().window_scale, Some(7));
}

#[test]
fn linux_sll2_made_from_an_sll_frame() {
    // The same frame, its SLL header rewritten as SLL2 (protocol, reserved, ifindex, ARPHRD,
    // packet type, address length, address).
    let (_, frame) = super::frame("log4j-webapp-exploit.pcap", 1);
    let sll = &frame.data;
    let mut sll2 = Vec::new();
    sll2.extend_from_slice(&sll[14..16]);
    sll2.extend_from_slice(&[0, 0, 0, 0, 0, 3]);
    sll2.extend_from_slice(&sll[2..4]);
    sll2.push(sll[1]);
    sll2.push(sll[5]);
    sll2.extend_from_slice(&sll[6..14]);
    sll2.extend_from_slice(&sll[16..]);
    let v = super::super::decode(super::super::LinkType::LinuxSll2, &sll2, 80, 0).unwrap();
    assert_eq!((v.src, v.dst), (ip("172.16.238.1"), ip("172.16.238.10")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 1984, 8080));
}

#[test]
fn raw_ip() {
    // psiphon3.pcap #1: 192.168.0.103:40557 -> 104.18.151.190:443 SYN, wscale 9.
    let v = decode_frame("psiphon3.pcap", 1).unwrap();
    assert_eq!((v.src, v.dst), (ip("192.168.0.103"), ip("104.18.151.190")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 40557, 443));
    assert_eq!(v.tcp.unwrap().window_scale, Some(9));
}

#[test]
fn null_ipv4() {
    // rdp.pcap #1: 172.16.2.185:52494 -> 192.168.2.142:3389, flags 0xc2 (SYN, ECE, CWR).
    let v = decode_frame("rdp.pcap", 1).unwrap();
    assert_eq!((v.src, v.dst), (ip("172.16.2.185"), ip("192.168.2.142")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 52494, 3389));
    let tcp = v.tcp.unwrap();
    assert_eq!(
        (tcp.flags, tcp.window, tcp.window_scale),
        (0xc2, 65535, Some(5))
    );
}

#[test]
fn null_ipv6() {
    // openvpn-tlscrypt.pcap #1: [::1]:56256 -> [::1]:1194 UDP (udp.length 361).
    let v = decode_frame("openvpn-tlscrypt.pcap", 1).unwrap();
    assert_eq!((v.src, v.dst), (ip("::1"), ip("::1")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 56256, 1194));
    assert_eq!((v.payload.len(), v.payload_len), (353, 353));
}

#[test]
fn null_family_in_network_byte_order() {
    // rdp.pcap #1 with its family rewritten big-endian, as LINKTYPE_LOOP has it.
    let (link, mut frame) = super::frame("rdp.pcap", 1);
    frame.data[..4].copy_from_slice(&2u32.to_be_bytes());
    let v = super::super::decode(link, &frame.data, frame.len, 0).unwrap();
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 52494, 3389));
}

#[test]
fn ipv6_hop_by_hop_then_icmpv6() {
    // iphone.pcap #34: fe80::823:3f17:8298:a29c -> ff02::16, hop-by-hop options (8 bytes),
    // ICMPv6 143 (MLDv2 report) code 0; payload length 76.
    let v = decode_frame("iphone.pcap", 34).unwrap();
    assert_eq!(
        (v.src, v.dst),
        (ip("fe80::823:3f17:8298:a29c"), ip("ff02::16"))
    );
    assert_eq!((v.proto, v.icmp), (58, Some((143, 0))));
    assert_eq!((v.payload.len(), v.payload_len), (68, 68));
}

#[test]
fn ipv4_first_fragment_keeps_its_ports() {
    // dns_fragmented.pcap #2: 193.24.227.238 -> 172.217.40.76, id 0xd0fe, MF, offset 0, ip.len
    // 1500; the UDP header (53 -> 56680, as the reassembly in #3 shows) is in this fragment.
    let v = decode_frame("dns_fragmented.pcap", 2).unwrap();
    assert_eq!(v.fragment, Fragment::First { id: 0xd0fe });
    assert_eq!((v.proto, v.src_port, v.dst_port), (17, 53, 56680));
    assert_eq!(v.payload_len, 1500 - 20 - 8);
}

#[test]
fn ipv4_later_fragment_has_no_ports() {
    // dns_fragmented.pcap #3: id 0xd0fe, offset 185 (×8), last fragment, ip.len 250.
    let v = decode_frame("dns_fragmented.pcap", 3).unwrap();
    assert_eq!(
        v.fragment,
        Fragment::Later {
            id: 0xd0fe,
            more: false
        }
    );
    assert_eq!((v.src, v.dst), (ip("193.24.227.238"), ip("172.217.40.76")));
    assert_eq!((v.proto, v.src_port, v.dst_port, v.tcp), (17, 0, 0, None));
    assert_eq!((v.payload.len(), v.payload_len), (230, 230));
}

#[test]
fn ipv6_fragments() {
    // dns_fragmented.pcap #5 and #6: 2001:470:765b::a25:53 -> 2a00:1450:4013:c03::10a, fragment
    // id 0x28403c0b; #5 offset 0 with M (payload length 1456), #6 offset 181 (payload length 69),
    // UDP 53 -> 46433.
    let first = decode_frame("dns_fragmented.pcap", 5).unwrap();
    assert_eq!(first.fragment, Fragment::First { id: 0x2840_3c0b });
    assert_eq!(
        (first.src, first.dst),
        (ip("2001:470:765b::a25:53"), ip("2a00:1450:4013:c03::10a"))
    );
    assert_eq!(
        (first.proto, first.src_port, first.dst_port),
        (17, 53, 46433)
    );
    assert_eq!(first.payload_len, 1456 - 8 - 8);
    let later = decode_frame("dns_fragmented.pcap", 6).unwrap();
    assert_eq!(
        later.fragment,
        Fragment::Later {
            id: 0x2840_3c0b,
            more: false
        }
    );
    assert_eq!((later.proto, later.src_port, later.dst_port), (17, 0, 0));
    assert_eq!((later.payload.len(), later.payload_len), (61, 61));
}

#[test]
fn first_fragment_too_short_for_tcp_has_no_ports() {
    // ip_fragmented_garbage.pcap #1: 10.0.0.2 -> 10.128.0.2 proto 6, id 0xa0, MF, offset 0, ip.len
    // 36: 16 bytes cannot hold a TCP header. ndpiReader reports the flow as TCP 10.0.0.2:0 ->
    // 10.128.0.2:0; so do we.
    let v = decode_frame("ip_fragmented_garbage.pcap", 1).unwrap();
    assert_eq!(v.fragment, Fragment::First { id: 0xa0 });
    assert_eq!((v.src, v.dst), (ip("10.0.0.2"), ip("10.128.0.2")));
    assert_eq!((v.proto, v.src_port, v.dst_port, v.tcp), (6, 0, 0, None));
    assert_eq!((v.payload.len(), v.payload_len), (16, 16));
    let later = decode_frame("ip_fragmented_garbage.pcap", 2).unwrap();
    assert_eq!(
        later.fragment,
        Fragment::Later {
            id: 0xa0,
            more: true
        }
    );
}

#[test]
fn capwap_data_80211() {
    // capwap_data.pcapng #1: VLAN 94 then 3, 172.50.100.155:41264 -> 172.16.100.87:5247 CAPWAP
    // data, IEEE 802.11 data frame, LLC/SNAP, 10.1.3.68:47025 -> 74.125.130.188:443 SYN, wscale 8.
    let v = decode_frame("capwap_data.pcapng", 1).unwrap();
    assert_eq!((v.vlan, v.tunnel), (3, Tunnel::Capwap));
    assert_eq!((v.src, v.dst), (ip("10.1.3.68"), ip("74.125.130.188")));
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 47025, 443));
    assert_eq!(v.tcp.unwrap().window_scale, Some(8));
}

#[test]
fn ip_length_beyond_the_capture_is_flagged() {
    // telnet.pcap #18: 66 bytes captured, IPv4 total length 137 (52 of them captured):
    // 192.168.0.2:1550 -> 192.168.0.1:23. Decoded, and flagged as ndpiReader ignores it.
    let v = decode_frame("telnet.pcap", 18).unwrap();
    assert_eq!((v.src_port, v.dst_port), (1550, 23));
    assert_eq!((v.payload.len(), v.payload_len), (0, 137 - 20 - 32));
    assert!(v.is_truncated());
    assert!(!decode_frame("telnet.pcap", 17).unwrap().is_truncated());
}
