//! Fuzzes SMB over TCP (NetBIOS session framing, SMBv1 and SMB2/3 headers, NEGOTIATE dialect
//! parsing) and the NetBIOS name and datagram services: the bytes as whole messages, as SMB
//! messages behind a session header, and as a TCP 445 / UDP 138 / UDP 137 flow through the
//! engine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_api::flow::FlowRecord;
use netwarden_sensor::dpi::smb::SmbFlow;
use netwarden_sensor::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx, netbios};

/// One engine for every input (building its tables per input would dominate the run).
fn engine() -> &'static Dpi {
    static ENGINE: std::sync::OnceLock<Dpi> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Dpi::new(DpiConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    let _ = netbios::query_name(data);
    let _ = netbios::datagram(data);
    // The bytes after a session header whose length matches, with each protocol id.
    let mut framed = Vec::with_capacity(data.len() + 8);
    for id in [b"\xffSMB", b"\xfeSMB"] {
        framed.clear();
        let len = u32::try_from(data.len() + 4).unwrap_or(u32::MAX) & 0x00ff_ffff;
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(id);
        framed.extend_from_slice(data);
        if let Some(mut flow) = SmbFlow::probe(&framed) {
            flow.on_payload(true, &framed);
            flow.on_payload(false, &framed);
            flow.on_payload(false, data);
        }
    }
    let dpi = engine();
    for (l4, cport, sport, first) in [
        (6u8, 50000u16, 445u16, framed.as_slice()),
        (17, 138, 138, data),
        (17, 137, 137, data),
    ] {
        let mut flow = FlowDpi::default();
        let mut from_client = true;
        for chunk in std::iter::once(first).chain(data.chunks(97)) {
            let ctx = PacketCtx {
                from_client,
                l4_proto: l4,
                client_port: cport,
                server_port: sport,
                ts_ns: 1,
                tcp_seq: None,
                fragmented: false,
            };
            if dpi.inspect(&mut flow, &ctx, chunk) {
                break;
            }
            from_client = !from_client;
        }
        let mut rec = FlowRecord {
            l4_proto: u32::from(l4),
            client_port: u32::from(cport),
            server_port: u32::from(sport),
            ..FlowRecord::default()
        };
        dpi.fill(&flow, &mut rec);
    }
});
