//! Fuzzes the TLS/DTLS dissector: the bytes are split into segments of both directions and fed
//! through the engine (record and handshake reassembly, hello parsing, fingerprints, risks); the
//! hello parsers are also called on the raw bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx, tls};

fuzz_target!(|data: &[u8]| {
    let _ = tls::hello::parse_client_hello(data, false).map(|ch| (ch.ja3(), ch.ja4('t')));
    let _ = tls::hello::parse_client_hello(data, true);
    let _ = tls::hello::parse_server_hello(data, false).map(|sh| sh.ja3s());
    let dpi = Dpi::new(DpiConfig {
        max_packets: 32,
        max_reassembly: 4096,
    });
    for (l4, prefix) in [(6u8, &[0x16u8, 3, 1][..]), (17, &[0x16, 0xfe, 0xfd][..])] {
        let mut flow = FlowDpi::default();
        let mut stream = prefix.to_vec();
        stream.extend_from_slice(data);
        let mut seq = [1000u32, 5000u32];
        // Segment sizes come from the data itself.
        let mut rest = &stream[..];
        let mut from_client = true;
        while !rest.is_empty() {
            let n = (usize::from(rest[0]) * 7 + 1).min(rest.len());
            let (seg, tail) = rest.split_at(n);
            let d = usize::from(!from_client);
            let ctx = PacketCtx {
                from_client,
                l4_proto: l4,
                client_port: 40000,
                server_port: 443,
                ts_ns: 1_600_000_000_000_000_000,
                tcp_seq: (l4 == 6).then_some(seq[d]),
                fragmented: false,
            };
            seq[d] = seq[d].wrapping_add(n as u32);
            if dpi.inspect(&mut flow, &ctx, seg) {
                dpi.shrink(&mut flow);
                break;
            }
            from_client = seg[0] & 1 == 0;
            rest = tail;
        }
        let mut rec = FlowRecord {
            l4_proto: u32::from(l4),
            client_port: 40000,
            server_port: 443,
            ..FlowRecord::default()
        };
        dpi.fill(&flow, &mut rec);
    }
});
