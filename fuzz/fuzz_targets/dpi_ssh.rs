//! Fuzzes the SSH dissector: identification lines, binary packet framing, KEXINIT name-lists
//! and HASSH, with the bytes split into segments of both directions (sizes from the input),
//! under a small reassembly limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::dpi::ssh::SshFlow;

fuzz_target!(|data: &[u8]| {
    let mut flow = SshFlow::default();
    flow.on_payload(true, b"SSH-2.0-OpenSSH_6.0\r\n", 4096);
    flow.on_payload(false, b"SSH-2.0-dropbear_2019.78\r\n", 4096);
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let take = (usize::from(n >> 1) * 3 + 1).min(tail.len());
        let (seg, after) = tail.split_at(take);
        flow.on_payload(n & 1 == 0, seg, 4096);
        rest = after;
    }
    let mut raw = SshFlow::default();
    raw.on_payload(true, data, 4096);
    let _ = (flow.is_done(), raw.info.hassh_client.len());
});
