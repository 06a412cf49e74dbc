//! Statistics per exporter and for the whole collector, and sequence-number tracking.
//!
//! Counters only grow. The collector keeps a running total over every exporter it ever saw
//! (evicted ones included), so a scrape never goes backwards.

use std::sync::{Arc, Mutex, PoisonError};

use hashbrown::HashMap;
use netwarden_api::stats::PointStats;
use serde::Serialize;

use super::error::ErrorKind;

macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        impl $name {
            /// Adds `after - before` of every counter to `self`.
            #[allow(dead_code)]
            pub(crate) fn add_delta(&mut self, after: &Self, before: &Self) {
                $(self.$field += after.$field.wrapping_sub(before.$field);)*
            }

            /// Every counter with its name, for metrics and logs.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($field), self.$field),)*].into_iter()
            }
        }
    };
}

counters! {
    /// Counters of one exporter (one UDP source address).
    pub struct ExporterStats {
        /// Datagrams received.
        datagrams,
        /// Bytes of datagrams received.
        bytes,
        /// Flow records emitted (NetFlow/IPFIX data records, sFlow flow samples).
        records,
        /// NetFlow v9/IPFIX options data records read (sampling, system init time...).
        options_records,
        /// sFlow counter samples emitted as [`super::InterfaceCounters`].
        counter_samples,
        /// Data records without an IPv4/IPv6 address pair (not a flow; skipped).
        records_without_addresses,
        /// Datagrams (or their tail) rejected by a decode error.
        errors,
        /// Data sets whose template was unknown when they arrived.
        missing_template,
        /// Datagrams the exporter's sequence numbers say we never got (NetFlow v9, sFlow).
        lost_datagrams,
        /// Records the exporter's sequence numbers say we never got (NetFlow v5, IPFIX).
        lost_records,
        /// Datagrams whose sequence number was behind the expected one (late or reordered).
        sequence_late,
        /// Sequence jumps too large to be loss: an exporter restart.
        sequence_resets,
        /// Templates learned for the first time.
        templates_learned,
        /// Templates sent again unchanged.
        templates_refreshed,
        /// Templates redefined with different fields.
        templates_replaced,
        /// Templates withdrawn by the exporter (IPFIX field count 0).
        templates_withdrawn,
        /// Templates dropped after the template timeout.
        templates_expired,
        /// Templates evicted because the exporter had too many.
        templates_evicted,
        /// Templates refused because the collector-wide template limit was reached.
        templates_rejected,
        /// Data sets buffered while waiting for their template.
        pending_buffered,
        /// Buffered data sets decoded once their template arrived.
        pending_replayed,
        /// Buffered data sets dropped because the exporter's buffer was full.
        pending_dropped,
        /// Buffered data sets dropped because their template did not come in time.
        pending_expired,
    }
}

counters! {
    /// Collector-wide counters that belong to no exporter.
    pub struct GlobalCounters {
        /// NetFlow v5 datagrams.
        datagrams_netflow5,
        /// NetFlow v9 datagrams.
        datagrams_netflow9,
        /// IPFIX messages.
        datagrams_ipfix,
        /// sFlow v5 datagrams.
        datagrams_sflow,
        /// Errors: datagram ended early.
        errors_truncated,
        /// Errors: impossible length or count.
        errors_malformed,
        /// Errors: not a version we decode.
        errors_unknown_version,
        /// Errors: template with too many fields.
        errors_too_many_fields,
        /// Exporters forgotten to make room for new ones.
        exporters_evicted,
        /// Flow records the sink refused (the listener's channel was full).
        sink_dropped,
    }
}

impl GlobalCounters {
    /// Counts one error of `kind`.
    pub(crate) fn count_error(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Truncated(_) => self.errors_truncated += 1,
            ErrorKind::Malformed(_) => self.errors_malformed += 1,
            ErrorKind::UnknownVersion(_) => self.errors_unknown_version += 1,
            ErrorKind::TooManyFields(_) => self.errors_too_many_fields += 1,
        }
    }
}

/// A snapshot of the collector's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CollectorStats {
    /// Sum of every exporter's counters since start.
    pub totals: ExporterStats,
    /// Counters that belong to no exporter.
    pub global: GlobalCounters,
    /// Exporters currently tracked.
    pub exporters: u64,
    /// Templates currently cached, all exporters together.
    pub templates: u64,
}

/// Most observation points a [`PointBoard`] tracks; later ones are only counted
/// ([`PointBoard::untracked`]).
pub const MAX_BOARD_POINTS: usize = 4096;

/// Per observation point (exporter address as in the flow records, observation domain)
/// sequence and template statistics, shared by every collector of a sensor (UDP listeners and
/// TCP connections add to the same entries), read by whoever publishes them
/// (`nw.stats.<sensor>`). Bounded by [`MAX_BOARD_POINTS`]. Updated at most once per datagram
/// (one uncontended lock), so a collector without a board pays nothing.
#[derive(Clone, Default)]
pub struct PointBoard(Arc<Mutex<BoardInner>>);

#[derive(Default)]
struct BoardInner {
    points: HashMap<(Arc<str>, u32), PointStats>,
    version: u64,
    untracked: u64,
}

impl std::fmt::Debug for PointBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PointBoard")
    }
}

/// Boards are equal when they are the same board (so configurations holding one compare).
impl PartialEq for PointBoard {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PointBoard {}

impl PointBoard {
    fn with(&self, f: impl FnOnce(&mut BoardInner)) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner);
        inner.version = inner.version.wrapping_add(1);
    }

    /// Applies `f` to the point `(exporter, domain)`, created if there is room.
    pub(crate) fn update(&self, exporter: &Arc<str>, domain: u32, f: impl FnOnce(&mut PointStats)) {
        self.with(|b| {
            let key = (Arc::clone(exporter), domain);
            if let Some(p) = b.points.get_mut(&key) {
                f(p);
            } else if b.points.len() < MAX_BOARD_POINTS {
                let mut p = PointStats {
                    exporter: exporter.to_string(),
                    domain_id: domain,
                    ..PointStats::default()
                };
                f(&mut p);
                b.points.insert(key, p);
            } else {
                b.untracked += 1;
            }
        });
    }

    /// Adds `delta` to the template gauge of `(exporter, domain)`.
    pub(crate) fn add_templates(&self, exporter: &Arc<str>, domain: u32, delta: i64) {
        if delta != 0 {
            self.update(exporter, domain, |p| {
                p.templates = p.templates.saturating_add_signed(delta);
            });
        }
    }

    /// Every point, sorted by (exporter, domain).
    pub fn snapshot(&self) -> Vec<PointStats> {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<PointStats> = inner.points.values().cloned().collect();
        drop(inner);
        all.sort_by(|a, b| (&a.exporter, a.domain_id).cmp(&(&b.exporter, b.domain_id)));
        all
    }

    /// A number that changes whenever the board does.
    pub fn version(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .version
    }

    /// Datagrams of points beyond [`MAX_BOARD_POINTS`].
    pub fn untracked(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .untracked
    }
}

/// What one sequence number said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// First one seen, or exactly the expected one.
    InOrder,
    /// This many units (datagrams or records) were skipped.
    Gap(u32),
    /// Behind the expected number: a late or reordered datagram.
    Late,
    /// A jump too large to be loss (exporter restart); tracking restarts here.
    Reset,
}

/// Largest forward gap counted as loss; a larger jump is a restart.
const MAX_GAP: u32 = 1 << 24;
/// Largest backward step counted as a late datagram; a larger one is a restart.
const MAX_LATE: u32 = 1 << 20;

/// Tracks one exporter sequence (per NetFlow v5 engine, v9 source id, IPFIX domain, sFlow
/// sub-agent). `advance` is what one message moves the counter by: 1 for datagram counters
/// (v9, sFlow), its record count for record counters (v5, IPFIX).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequence {
    next: Option<u32>,
}

impl Sequence {
    /// Checks `seq` against the expected value, then expects `seq + advance` next.
    ///
    /// A late datagram does not move the expectation back, so a reordering costs one `Late`
    /// and one earlier `Gap` that over-counts loss by that datagram (as nfcapd does).
    pub fn observe(&mut self, seq: u32, advance: u32) -> SeqOutcome {
        let outcome = match self.next {
            None => SeqOutcome::InOrder,
            Some(expected) => {
                let ahead = seq.wrapping_sub(expected);
                let behind = expected.wrapping_sub(seq);
                if ahead == 0 {
                    SeqOutcome::InOrder
                } else if ahead <= MAX_GAP {
                    SeqOutcome::Gap(ahead)
                } else if behind <= MAX_LATE {
                    return SeqOutcome::Late;
                } else {
                    SeqOutcome::Reset
                }
            }
        };
        self.next = Some(seq.wrapping_add(advance));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_counts_gaps_late_and_resets() {
        let mut s = Sequence::default();
        assert_eq!(s.observe(10, 1), SeqOutcome::InOrder);
        assert_eq!(s.observe(11, 1), SeqOutcome::InOrder);
        assert_eq!(s.observe(14, 1), SeqOutcome::Gap(2));
        assert_eq!(s.observe(13, 1), SeqOutcome::Late);
        assert_eq!(s.observe(15, 1), SeqOutcome::InOrder);
        assert_eq!(s.observe(3_000_000_000, 1), SeqOutcome::Reset);
        assert_eq!(s.observe(3_000_000_001, 30), SeqOutcome::InOrder);
        assert_eq!(s.observe(3_000_000_031, 1), SeqOutcome::InOrder);
        let mut w = Sequence::default();
        w.observe(u32::MAX, 1);
        assert_eq!(w.observe(0, 1), SeqOutcome::InOrder, "wraps");
    }
}
