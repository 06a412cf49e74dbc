//! Capture: frames from pcap/pcapng files and live interfaces, through libpcap.
//!
//! Owns: opening sources (link-type check, BPF filter), turning libpcap timestamps into
//! nanoseconds, and the difference between the end of a file, a truncated file and an idle
//! link. Must not: decode packets or keep flow state (the caller runs decode and the flow table
//! in the same thread, per frame, without a channel per packet).

pub mod file;
pub mod live;

use crate::decode::LinkType;
use crate::error::{Error, Result};

/// One captured frame, borrowed from libpcap's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length on the wire (pcap `len`).
    pub wire_len: u32,
    /// Captured bytes (`caplen` of them).
    pub data: &'a [u8],
}

/// Nanoseconds since the epoch from a timeval whose fraction is in `nano` or micro seconds.
pub fn timestamp_ns(sec: i64, frac: i64, nano: bool) -> u64 {
    let sec = u64::try_from(sec).unwrap_or(0);
    let frac = u64::try_from(frac).unwrap_or(0);
    sec.saturating_mul(1_000_000_000).saturating_add(if nano {
        frac
    } else {
        frac.saturating_mul(1000)
    })
}

/// Maps a libpcap link type, or names the input and the link type in the error.
pub fn link_type(input: &str, linktype: pcap::Linktype) -> Result<LinkType> {
    LinkType::from_pcap(linktype.0).ok_or_else(|| Error::UnsupportedLinkType {
        input: input.to_owned(),
        linktype: linktype.0,
        name: linktype.get_name().unwrap_or_else(|_| "unknown".into()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_micro_and_nano() {
        assert_eq!(timestamp_ns(2, 5, false), 2_000_005_000);
        assert_eq!(timestamp_ns(2, 5, true), 2_000_000_005);
        assert_eq!(timestamp_ns(-1, 5, true), 5);
    }

    #[test]
    fn unsupported_link_type_names_it() {
        let err = link_type("x.pcap", pcap::Linktype(147))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.pcap") && err.contains("147"), "{err}");
    }
}
