//! Fuzzes the HTTP head parser, the URL attack detectors and the HTTP dissector.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx, http};

fuzz_target!(|data: &[u8]| {
    let _ = http::parse_head(data);
    let _ = http::inject::scan_url(&String::from_utf8_lossy(data));
    let dpi = Dpi::new(DpiConfig {
        max_packets: 32,
        max_reassembly: 2048,
    });
    let mut flow = FlowDpi::default();
    let req = [&b"GET /"[..], data].concat();
    let resp = [&b"HTTP/1.1 200 OK\r\n"[..], data].concat();
    for (from_client, bytes) in [(true, &req), (false, &resp), (false, &req)] {
        for chunk in bytes.chunks(300) {
            let ctx = PacketCtx {
                from_client,
                l4_proto: 6,
                client_port: 40000,
                server_port: 80,
                ts_ns: 0,
                tcp_seq: None,
                fragmented: false,
            };
            let _ = dpi.inspect(&mut flow, &ctx, chunk);
        }
    }
    let mut rec = FlowRecord {
        l4_proto: 6,
        client_port: 40000,
        server_port: 80,
        ..FlowRecord::default()
    };
    dpi.fill(&flow, &mut rec);
});
