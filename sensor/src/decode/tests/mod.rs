//! Tests of the packet decoder: real frames from the nDPI corpus (expected values from
//! `tshark -T fields`), crafted bytes for malformed input only, property tests, and a pass over
//! every frame of the corpus.

// A test that cannot read its fixture or gets an unexpected `Err` should fail loudly, right there.
#![allow(clippy::unwrap_used)]

mod corpus;
mod crafted;
mod prop;
mod real;

use std::path::{Path, PathBuf};

use super::{DecodeError, LinkType, PacketView, decode};

/// One captured frame.
pub(super) struct Frame {
    /// Captured bytes.
    pub data: Vec<u8>,
    /// Length on the wire.
    pub len: u32,
}

/// The nDPI corpus.
pub(super) fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ndpi")
}

/// Reads every frame of a capture (pcap or pcapng); `None` link type when we do not decode it.
pub(super) fn read_capture(path: &Path) -> (Option<LinkType>, Vec<Frame>) {
    let mut cap = pcap::Capture::from_file(path).unwrap();
    let link = LinkType::from_pcap(cap.get_datalink().0);
    let mut frames = Vec::new();
    loop {
        match cap.next_packet() {
            Ok(packet) => frames.push(Frame {
                data: packet.data.to_vec(),
                len: packet.header.len,
            }),
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    (link, frames)
}

/// Frame `number` (1-based, as tshark counts) of a corpus capture, with its link type.
pub(super) fn frame(name: &str, number: usize) -> (LinkType, Frame) {
    let (link, mut frames) = read_capture(&corpus_dir().join(name));
    assert!(
        number >= 1 && number <= frames.len(),
        "{name} has no frame {number}"
    );
    (link.unwrap(), frames.swap_remove(number - 1))
}

/// Decodes frame `number` of a corpus capture. The frame is leaked so the view can outlive this
/// helper (tests only).
pub(super) fn decode_frame(name: &str, number: usize) -> Result<PacketView<'static>, DecodeError> {
    let (link, frame) = frame(name, number);
    let data: &'static [u8] = Vec::leak(frame.data);
    decode(link, data, frame.len, 7)
}
