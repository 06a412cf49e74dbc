//! The bidirectional flow table: packets in, [`FlowRecord`]s out.
//!
//! Owns: the flow key, per-direction counters, TCP analysis (retransmissions, out-of-order,
//! gaps, zero windows, handshake RTT), client/server choice, fragment attribution, timeouts
//! (idle, active, close linger), bounded size with eviction.
//!
//! Must not: do I/O, read the clock, or use channels. Time comes only from packet timestamps
//! (or from [`FlowTable::advance`] for an idle live capture), so replaying a pcap is
//! deterministic: same packets, same records, same order.
//!
//! [`FlowRecord`]: netwarden_api::flow::FlowRecord

mod entry;
mod fragments;
mod key;
mod table;
mod tcp;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::dpi::{Dpi, DpiConfig};

pub use entry::{is_server_port, sender_is_client};
pub use key::FlowKey;
pub use table::FlowTable;
pub use tcp::{SeqTrack, TcpCounters};

/// Timeouts and bounds of a [`FlowTable`]. Defaults follow ntopng/nProbe practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// A flow with no packet for this long ends (`END_REASON_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// Idle timeout of a TCP flow that saw packets both ways and has not closed.
    pub tcp_established_idle_timeout: Duration,
    /// A live flow emits a periodic record (`FLOW_UPDATE_PERIODIC`) this often; zero disables.
    pub active_timeout: Duration,
    /// How long a flow stays in place after both FINs or a RST before its final record, so
    /// stray packets after the close (retransmitted FINs, RST storms) stay in the same flow.
    pub close_linger: Duration,
    /// How long a first fragment's id stays attributable to its flow.
    pub fragment_timeout: Duration,
    /// Expiry sweeps run when packet time has advanced this much since the last sweep.
    pub sweep_interval: Duration,
    /// Most flows in the table; beyond it the oldest ~1% (by last packet) are evicted.
    pub max_flows: usize,
    /// Most fragment ids remembered at once.
    pub max_fragments: usize,
    /// The DPI engine run on each flow's first payload packets; `None` disables DPI.
    pub dpi: Option<SharedDpi>,
}

/// A DPI engine shared by flow tables (one per capture thread). Two handles are equal when
/// they are the same engine.
#[derive(Debug, Clone)]
pub struct SharedDpi(pub Arc<Dpi>);

impl SharedDpi {
    /// Wraps an engine.
    pub fn new(dpi: Dpi) -> Self {
        Self(Arc::new(dpi))
    }

    /// The engine with [`DpiConfig::default`] and no lists, built once per process.
    pub fn default_engine() -> Self {
        static ENGINE: OnceLock<Arc<Dpi>> = OnceLock::new();
        Self(Arc::clone(
            ENGINE.get_or_init(|| Arc::new(Dpi::new(DpiConfig::default()))),
        ))
    }
}

impl PartialEq for SharedDpi {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedDpi {}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            tcp_established_idle_timeout: Duration::from_secs(180),
            active_timeout: Duration::from_secs(60),
            close_linger: Duration::from_secs(10),
            fragment_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(1),
            max_flows: 262_144,
            max_fragments: 8192,
            dpi: Some(SharedDpi::default_engine()),
        }
    }
}

impl FlowConfig {
    /// A configuration that never splits a flow on time, as ndpiReader reads a pcap offline:
    /// no idle or active timeout, flows closed by FIN/RST stay in place until the end.
    pub fn offline() -> Self {
        let forever = Duration::from_secs(100 * 365 * 24 * 3600);
        Self {
            idle_timeout: forever,
            tcp_established_idle_timeout: forever,
            active_timeout: Duration::ZERO,
            close_linger: forever,
            ..Self::default()
        }
    }
}

/// What a [`FlowTable`] counted. Counters are cumulative since the table was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Packets given to the table (decoded ones, later fragments included).
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Frames that did not decode (every kind).
    pub decode_errors: u64,
    /// Frames that did not decode, by `decode::decode_stats_key`.
    pub decode_errors_by_kind: BTreeMap<&'static str, u64>,
    /// Flows created.
    pub flows_created: u64,
    /// Flows in the table now.
    pub flows_active: u64,
    /// Records emitted (periodic and final).
    pub records: u64,
    /// Periodic records emitted (active timeout).
    pub periodic_records: u64,
    /// Flows ended by idle timeout.
    pub expired: u64,
    /// Flows ended by FIN/RST (after the linger).
    pub closed: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Flows still open when the capture ended.
    pub ended_at_capture_end: u64,
    /// Later fragments attributed to a flow.
    pub fragments_matched: u64,
    /// Later fragments whose first fragment was not seen (counted, otherwise ignored).
    pub fragments_unmatched: u64,
    /// First fragments not remembered because the fragment map was full.
    pub fragment_map_full: u64,
}
