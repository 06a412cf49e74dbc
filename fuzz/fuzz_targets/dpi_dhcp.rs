//! Fuzzes DHCP parsing (RFC 2131/2132 options: host name, parameter list, vendor class): the
//! bytes become the options of a BOOTP message with the magic cookie, and the whole message
//! goes through the engine on UDP 68 → 67 and is exported.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx, misc};

/// One engine for every input (building its tables per input would dominate the run).
fn engine() -> &'static Dpi {
    static ENGINE: std::sync::OnceLock<Dpi> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Dpi::new(DpiConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    // BOOTP fixed part (first byte op, third hlen from the input), then the cookie.
    let mut msg = vec![0u8; 236];
    for (i, b) in data.iter().take(8).enumerate() {
        msg[[0, 2, 28, 29, 30, 31, 32, 33][i]] = *b;
    }
    msg.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    msg.extend_from_slice(data.get(8..).unwrap_or_default());
    let _ = misc::detect(17, 68, 67, &msg);
    let _ = misc::detect(17, 68, 67, data);
    let dpi = engine();
    let mut flow = FlowDpi::default();
    let ctx = PacketCtx {
        from_client: true,
        l4_proto: 17,
        client_port: 68,
        server_port: 67,
        ts_ns: 1,
        tcp_seq: None,
        fragmented: false,
    };
    let _ = dpi.inspect(&mut flow, &ctx, &msg);
    let mut rec = FlowRecord {
        l4_proto: 17,
        client_port: 68,
        server_port: 67,
        ..FlowRecord::default()
    };
    dpi.fill(&flow, &mut rec);
});
