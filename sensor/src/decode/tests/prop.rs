//! Property tests: no input makes the decoder panic, and what it returns stays inside the frame.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::super::{LinkType, PacketView, decode};
use super::frame;

fn any_link() -> impl Strategy<Value = LinkType> {
    prop_oneof![
        Just(LinkType::Ethernet),
        Just(LinkType::Null),
        Just(LinkType::RawIp),
        Just(LinkType::Ipv4),
        Just(LinkType::Ipv6),
        Just(LinkType::LinuxSll),
        Just(LinkType::LinuxSll2),
    ]
}

/// Real frames covering every decoder path worth mutating.
fn samples() -> &'static [(LinkType, Vec<u8>)] {
    static SAMPLES: OnceLock<Vec<(LinkType, Vec<u8>)>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        [
            ("443-curl.pcap", 1),
            ("4in4tunnel.pcap", 1),
            ("dns.pcap", 4),
            ("4in6tunnel.pcap", 1),
            ("6in4tunnel.pcap", 3),
            ("gre.pcapng", 1),
            ("vxlan.pcap", 1),
            ("tls_change_cipher.pcap", 1),
            ("ja3_lots_of_cipher_suites_2_anon.pcap", 1),
            ("log4j-webapp-exploit.pcap", 1),
            ("psiphon3.pcap", 1),
            ("rdp.pcap", 1),
            ("openvpn-tlscrypt.pcap", 1),
            ("dns_fragmented.pcap", 5),
            ("dns_fragmented.pcap", 6),
            ("iphone.pcap", 34),
            ("teredo.pcap", 1),
        ]
        .into_iter()
        .map(|(name, number)| {
            let (link, f) = frame(name, number);
            (link, f.data)
        })
        .collect()
    })
}

/// The payload is a part of the frame and no longer than the wire says.
fn check_view(frame: &[u8], view: &PacketView<'_>) {
    let start = frame.as_ptr() as usize;
    let payload = view.payload.as_ptr() as usize;
    assert!(
        view.payload.is_empty()
            || (payload >= start && payload + view.payload.len() <= start + frame.len())
    );
    assert!(view.payload.len() <= view.payload_len as usize);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(link in any_link(), bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(view) = decode(link, &bytes, bytes.len() as u32, 0) {
            check_view(&bytes, &view);
        }
    }

    #[test]
    fn mutated_real_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        relink in proptest::option::weighted(0.1, any_link()),
    ) {
        let all = samples();
        let (link, original) = &all[pick.index(all.len())];
        let mut bytes = original.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len() / 2));
        let link = relink.unwrap_or(*link);
        if let Ok(view) = decode(link, &bytes, original.len() as u32, 0) {
            check_view(&bytes, &view);
        }
    }
}
