//! Fuzzes the first-payload signatures (Kerberos and LDAP DER framing, MySQL, PostgreSQL,
//! Redis, MongoDB, MQTT, Kafka, SIP, STUN, IKE, RTCP, BitTorrent, eDonkey, …) and the
//! RTP candidate check, the clear-text login dissector of every dialect (line splitting, Telnet IAC stripping), with
//! the bytes split into segments of both directions.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::dpi::cleartext::{Dialect, TextFlow};
use netwarden_sensor::dpi::misc;
use netwarden_sensor::dpi::rtp::RtpFlow;

fuzz_target!(|data: &[u8]| {
    let _ = misc::tcp_signature(data);
    if let Some(mut rtp) = RtpFlow::probe(true, data) {
        for chunk in data.chunks(13) {
            let _ = rtp.on_payload(chunk.len() % 2 == 0, chunk);
        }
    }
    for (s, d) in [
        (40000u16, 40001u16),
        (500, 500),
        (4500, 4500),
        (389, 40000),
        (88, 40000),
    ] {
        let _ = misc::udp_signature(s, d, data);
        let _ = misc::detect(17, s, d, data);
        let _ = misc::detect(6, s, d, data);
    }
    for dialect in [
        Dialect::Ftp,
        Dialect::Pop3,
        Dialect::Imap,
        Dialect::Smtp,
        Dialect::Irc,
        Dialect::Telnet,
    ] {
        let mut flow = TextFlow::new(dialect);
        let mut rest = data;
        while let Some((&n, tail)) = rest.split_first() {
            let take = usize::from(n >> 1).min(tail.len());
            let (seg, after) = tail.split_at(take);
            flow.on_payload(n & 1 == 0, seg);
            rest = after;
        }
        let _ = (flow.is_done(), flow.user.len());
    }
});
