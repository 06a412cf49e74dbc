//! Fuzzes the DNS parser (names, compression, answers) and the DGA heuristic, over UDP and TCP.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx, dns};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dns::parse(data) {
        assert!(m.answers.len() <= netwarden_sensor::dpi::util::MAX_LIST);
        assert!(m.query.len() <= netwarden_sensor::dpi::util::MAX_HOST);
        let _ = dns::is_dga(&m.query);
    }
    let dpi = Dpi::new(DpiConfig::default());
    for (l4, port) in [(17u8, 53u16), (17, 5353), (6, 53)] {
        let mut flow = FlowDpi::default();
        for (i, chunk) in data.chunks(512).enumerate() {
            let ctx = PacketCtx {
                from_client: i % 2 == 0,
                l4_proto: l4,
                client_port: 40000,
                server_port: port,
                ts_ns: 0,
                tcp_seq: None,
                fragmented: false,
            };
            if dpi.inspect(&mut flow, &ctx, chunk) {
                break;
            }
        }
        let mut rec = FlowRecord {
            l4_proto: u32::from(l4),
            client_port: 40000,
            server_port: u32::from(port),
            ..FlowRecord::default()
        };
        dpi.fill(&flow, &mut rec);
    }
});
