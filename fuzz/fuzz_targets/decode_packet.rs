//! Fuzzes the packet decoder: the first byte picks the link type, the rest is the frame.
//!
//! Checks, beyond "no panic", that a decoded payload lies inside the frame and is no longer than
//! the wire length the IP headers claim.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::decode::{LinkType, decode};

const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    if let Ok(view) = decode(link, frame, frame.len() as u32, 0) {
        let start = frame.as_ptr() as usize;
        let payload = view.payload.as_ptr() as usize;
        assert!(
            view.payload.is_empty()
                || (payload >= start && payload + view.payload.len() <= start + frame.len())
        );
        assert!(view.payload.len() <= view.payload_len as usize);
    }
});
