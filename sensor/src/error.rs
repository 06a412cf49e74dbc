//! The sensor library's error type.

use std::path::PathBuf;

/// Errors of the sensor library. Decode errors of single frames are not here: they are
/// counted per kind (`decode::decode_stats_key`), never returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A capture file does not exist.
    #[error("capture file {path} does not exist")]
    FileNotFound {
        /// The file.
        path: PathBuf,
    },
    /// libpcap could not open a capture file (empty, not a pcap/pcapng, unreadable...).
    #[error("cannot open capture file {path}")]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// What libpcap said.
        #[source]
        source: pcap::Error,
    },
    /// The capture's link type is not one the decoder understands.
    #[error(
        "{input}: unsupported link type {linktype} ({name}); supported: Ethernet (1), NULL/LOOP (0, 108), raw IP (101, 12, 14), IPv4 (228), IPv6 (229), Linux SLL (113), Linux SLL2 (276)"
    )]
    UnsupportedLinkType {
        /// The file or interface.
        input: String,
        /// The pcap link-type number.
        linktype: i32,
        /// libpcap's name for it, when it has one.
        name: String,
    },
    /// A live interface could not be opened or configured.
    #[error("cannot capture on interface {interface}")]
    OpenInterface {
        /// The interface.
        interface: String,
        /// What libpcap said.
        #[source]
        source: pcap::Error,
    },
    /// A BPF filter did not compile.
    #[error("invalid BPF filter {filter:?} on {input}")]
    Filter {
        /// The filter expression.
        filter: String,
        /// The file or interface.
        input: String,
        /// What libpcap said.
        #[source]
        source: pcap::Error,
    },
    /// The capture thread stopped abnormally.
    #[error("capture thread for {input} failed: {reason}")]
    CaptureThread {
        /// The input(s) it read.
        input: String,
        /// Why.
        reason: String,
    },
    /// A flow-collection listener could not bind its UDP socket.
    #[error("cannot listen for flow exports on {address}")]
    BindListener {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// What the socket said.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not usable.
    #[error("invalid sensor configuration: {0}")]
    Config(String),
    /// No input was given.
    #[error("no input: give at least one pcap file, interface or flow listener (--netflow)")]
    NoInput,
}

/// Result alias of the sensor library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
