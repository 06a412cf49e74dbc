//! Live capture on a network interface.
//!
//! The handle is non-blocking and polled from the capture thread: when no packet is waiting
//! the thread sleeps a millisecond and checks for shutdown, so an idle link never hangs it.

use std::time::Duration;

use pcap::{Active, Capture};

use super::{Frame, link_type, timestamp_ns};
use crate::decode::LinkType;
use crate::error::{Error, Result};

/// Options of a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Bytes captured per frame.
    pub snaplen: i32,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// BPF filter expression.
    pub bpf_filter: Option<String>,
    /// Kernel buffer size in bytes.
    pub buffer_size: i32,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            snaplen: 65_535,
            promiscuous: true,
            bpf_filter: None,
            buffer_size: 16 << 20,
        }
    }
}

/// What polling a live capture gave.
#[derive(Debug)]
pub enum Poll<'a> {
    /// A frame.
    Frame(Frame<'a>),
    /// Nothing waiting right now.
    Idle,
    /// The capture cannot go on (interface gone...).
    Failed(String),
}

/// Counters libpcap keeps for a live capture (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets received by the filter.
    pub received: u64,
    /// Packets dropped because the buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or driver.
    pub if_dropped: u64,
}

/// An open live capture.
pub struct LiveCapture {
    name: String,
    cap: Capture<Active>,
    link: LinkType,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("name", &self.name)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl LiveCapture {
    /// Opens `interface` in immediate, non-blocking mode.
    pub fn open(interface: &str, options: &LiveOptions) -> Result<Self> {
        let err = |source| Error::OpenInterface {
            interface: interface.to_owned(),
            source,
        };
        let mut cap = Capture::from_device(interface)
            .map_err(err)?
            .promisc(options.promiscuous)
            .snaplen(options.snaplen)
            .timeout(100)
            .buffer_size(options.buffer_size)
            .immediate_mode(true)
            .open()
            .map_err(err)?
            .setnonblock()
            .map_err(err)?;
        let link = link_type(interface, cap.get_datalink())?;
        if let Some(filter) = &options.bpf_filter {
            cap.filter(filter, true).map_err(|source| Error::Filter {
                filter: filter.clone(),
                input: interface.to_owned(),
                source,
            })?;
        }
        Ok(Self {
            name: interface.to_owned(),
            cap,
            link,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link type of the interface.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next frame, if one is waiting.
    pub fn poll(&mut self) -> Poll<'_> {
        match self.cap.next_packet() {
            Ok(packet) => Poll::Frame(Frame {
                ts_ns: timestamp_ns(packet.header.ts.tv_sec, packet.header.ts.tv_usec, false),
                wire_len: packet.header.len,
                data: packet.data,
            }),
            Err(pcap::Error::TimeoutExpired) => Poll::Idle,
            Err(pcap::Error::NoMorePackets) => Poll::Failed("capture ended".into()),
            Err(e) => Poll::Failed(e.to_string()),
        }
    }

    /// libpcap's counters, when the platform provides them.
    pub fn stats(&mut self) -> Option<CaptureStats> {
        self.cap.stats().ok().map(|s| CaptureStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }

    /// How long to sleep when idle.
    pub const IDLE_SLEEP: Duration = Duration::from_millis(1);
}
