//! Fuzzes the QUIC dissector: long-header parsing and Initial decryption on the raw bytes and
//! behind v1/v2/draft headers, coalesced-packet walking, and the frame walker with CRYPTO
//! reassembly and ClientHello parsing on the bytes taken as a decrypted Initial payload (random
//! bytes almost never pass the AEAD, so that path is fuzzed directly).

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::quic::{self, QuicFlow};
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx};

fuzz_target!(|data: &[u8]| {
    const V1_HEADER: &[u8] = &[0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    // Decrypted-payload path: frames, reassembly (small limit), ClientHello, fingerprints.
    let mut flow = QuicFlow::new(V1_HEADER);
    for chunk in data.chunks(600) {
        flow.on_frames(chunk, 2048);
    }
    let _ = quic::initial::find_initial(data);
    let _ = quic::version_name(u32::from_be_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
        data.get(2).copied().unwrap_or(0),
        data.get(3).copied().unwrap_or(0),
    ]));
    // The engine with datagrams behind QUIC long headers of each version we can open.
    let dpi = Dpi::new(DpiConfig {
        max_packets: 32,
        max_reassembly: 4096,
    });
    for version in [1u32, 0x6b33_43cf, 0xff00_001d, 0xff00_001b] {
        let mut flow = FlowDpi::default();
        let mut rest = data;
        let mut from_client = true;
        while !rest.is_empty() {
            let n = (usize::from(rest[0]) * 9 + 1).min(rest.len());
            let (seg, tail) = rest.split_at(n);
            let mut dgram = vec![0xc0 | (seg[0] & 0x33)];
            dgram.extend_from_slice(&version.to_be_bytes());
            dgram.extend_from_slice(seg);
            let ctx = PacketCtx {
                from_client,
                l4_proto: 17,
                client_port: 40000,
                server_port: 443,
                ts_ns: 1,
                tcp_seq: None,
                fragmented: false,
            };
            if dpi.inspect(&mut flow, &ctx, &dgram) {
                dpi.shrink(&mut flow);
                break;
            }
            from_client = seg[0] & 1 == 0;
            rest = tail;
        }
        let mut rec = FlowRecord {
            l4_proto: 17,
            client_port: 40000,
            server_port: 443,
            ..FlowRecord::default()
        };
        dpi.fill(&flow, &mut rec);
    }
});
