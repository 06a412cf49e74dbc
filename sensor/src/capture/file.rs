//! Reading pcap and pcapng files (libpcap reads both).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};

use super::{Frame, link_type, timestamp_ns};
use crate::decode::LinkType;
use crate::error::{Error, Result};

/// What was read from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileSummary {
    /// The file.
    pub name: String,
    /// Frames read.
    pub packets: u64,
    /// Captured bytes read (frames and their record headers).
    pub bytes_read: u64,
    /// Why reading stopped before the end (a truncated or corrupt file), if it did.
    pub error: Option<String>,
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    cap: Capture<Offline>,
    link: LinkType,
    size: u64,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("path", &self.path)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl CaptureFile {
    /// Opens a pcap/pcapng file with nanosecond timestamps, optionally with a BPF filter.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|_| Error::FileNotFound {
            path: path.to_owned(),
        })?;
        let mut cap =
            Capture::from_file_with_precision(path, Precision::Nano).map_err(|source| {
                Error::OpenFile {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let link = link_type(&path.display().to_string(), cap.get_datalink())?;
        if let Some(filter) = filter {
            cap.filter(filter, true).map_err(|source| Error::Filter {
                filter: filter.to_owned(),
                input: path.display().to_string(),
                source,
            })?;
        }
        Ok(Self {
            path: path.to_owned(),
            cap,
            link,
            size: meta.len(),
        })
    }

    /// The link type of the file.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `on_frame` for every frame until the end of the file, a read error (a truncated
    /// file: logged and reported in the summary, never lost) or `Break`.
    pub fn for_each(
        mut self,
        mut on_frame: impl FnMut(Frame<'_>) -> ControlFlow<()>,
    ) -> FileSummary {
        let mut summary = FileSummary {
            name: self.path.display().to_string(),
            ..FileSummary::default()
        };
        loop {
            match self.cap.next_packet() {
                Ok(packet) => {
                    summary.packets += 1;
                    summary.bytes_read += u64::from(packet.header.caplen) + 16;
                    let frame = Frame {
                        ts_ns: timestamp_ns(
                            packet.header.ts.tv_sec,
                            packet.header.ts.tv_usec,
                            true,
                        ),
                        wire_len: packet.header.len,
                        data: packet.data,
                    };
                    if on_frame(frame).is_break() {
                        break;
                    }
                }
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    tracing::warn!(
                        file = %self.path.display(),
                        packets = summary.packets,
                        error = %e,
                        "capture file ends early (truncated or corrupt); keeping what was read"
                    );
                    summary.error = Some(e.to_string());
                    break;
                }
            }
        }
        summary
    }
}
