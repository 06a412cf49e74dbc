//! TCP sequence analysis of one direction: retransmissions, out-of-order segments, gaps.
//!
//! Definitions (documented in docs/sensor.md, simplified on purpose, no SACK or ack analysis):
//! * `next` is the highest sequence number seen so far plus the segment length (SYN and FIN
//!   count for one, RFC 9293 section 3.4); all comparisons use wrapping arithmetic (RFC 1982).
//! * **lost**: a segment starts above `next`: a gap of never-seen bytes. The most recent gap is
//!   remembered; when it is later filled completely, it was reordering, not loss, and the
//!   lost counter is decremented again.
//! * **out-of-order**: a segment starts below `next` inside the remembered gap (data that was
//!   never seen before, arriving late).
//! * **retransmission**: a segment with data (or SYN/FIN) starting below `next` and not inside
//!   the gap: its bytes were seen already. A segment overlapping `next` counts as a
//!   retransmission too and its new bytes as goodput.
//!
//! RST segments are not analysed (their sequence number may be anything). A SYN with a new
//! initial sequence number restarts the analysis (port reuse within the same flow).

use crate::decode::{TcpInfo, tcp_flags};

/// Counters the analysis updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Retransmitted segments.
    pub retransmissions: u32,
    /// Out-of-order segments.
    pub out_of_order: u32,
    /// Gaps in the sequence space never filled.
    pub lost: u32,
}

/// Sequence state of one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqTrack {
    started: bool,
    syn_seen: bool,
    isn: u32,
    next: u32,
    /// The most recent unfilled gap `[start, end)`.
    gap: Option<(u32, u32)>,
}

/// `a < b` in sequence space.
#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl SeqTrack {
    /// Analyses one segment with `payload_len` bytes of data; returns its goodput (new bytes).
    pub fn on_segment(
        &mut self,
        tcp: &TcpInfo,
        payload_len: u32,
        counters: &mut TcpCounters,
    ) -> u64 {
        let flags = tcp.flags;
        if flags & tcp_flags::RST != 0 {
            return 0;
        }
        let syn = flags & tcp_flags::SYN != 0;
        let seg_len = payload_len
            .wrapping_add(u32::from(syn))
            .wrapping_add(u32::from(flags & tcp_flags::FIN != 0));
        let seq = tcp.seq;
        let end = seq.wrapping_add(seg_len);
        if !self.started || (syn && (!self.syn_seen || seq != self.isn)) {
            self.started = true;
            if syn {
                self.syn_seen = true;
                self.isn = seq;
            }
            self.next = end;
            self.gap = None;
            return u64::from(payload_len);
        }
        if seq == self.next {
            self.next = end;
            return u64::from(payload_len);
        }
        if before(self.next, seq) {
            // A gap: bytes [next, seq) were never seen (yet).
            counters.lost += 1;
            self.gap = Some((self.next, seq));
            self.next = end;
            return u64::from(payload_len);
        }
        // seq < next.
        if seg_len == 0 {
            // Pure ACK / window update behind the front: nothing to say.
            return 0;
        }
        if let Some((gap_start, gap_end)) = self.gap
            && seq.wrapping_sub(gap_start) < gap_end.wrapping_sub(gap_start)
        {
            {
                counters.out_of_order += 1;
                if seq == gap_start {
                    if before(end, gap_end) {
                        self.gap = Some((end, gap_end));
                    } else {
                        // Filled: it was reordering, not loss.
                        self.gap = None;
                        counters.lost = counters.lost.saturating_sub(1);
                    }
                }
                if before(self.next, end) {
                    self.next = end;
                }
                return u64::from(payload_len);
            }
        }
        counters.retransmissions += 1;
        if before(self.next, end) {
            let new = end.wrapping_sub(self.next);
            self.next = end;
            return u64::from(new.min(payload_len));
        }
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seg(seq: u32, flags: u8) -> TcpInfo {
        TcpInfo {
            seq,
            ack: 0,
            flags,
            window: 1000,
            window_scale: None,
        }
    }

    const A: u8 = tcp_flags::ACK;

    #[test]
    fn in_order_stream_has_no_events() {
        let (mut t, mut c) = (SeqTrack::default(), TcpCounters::default());
        assert_eq!(t.on_segment(&seg(100, tcp_flags::SYN), 0, &mut c), 0);
        assert_eq!(t.on_segment(&seg(101, A), 10, &mut c), 10);
        assert_eq!(t.on_segment(&seg(111, A), 10, &mut c), 10);
        assert_eq!(c, TcpCounters::default());
    }

    #[test]
    fn retransmission_gap_and_reordering() {
        let (mut t, mut c) = (SeqTrack::default(), TcpCounters::default());
        t.on_segment(&seg(0, A), 100, &mut c);
        // Same segment again: retransmission, no goodput.
        assert_eq!(t.on_segment(&seg(0, A), 100, &mut c), 0);
        assert_eq!(c.retransmissions, 1);
        // Jump: [100, 200) missing.
        t.on_segment(&seg(200, A), 100, &mut c);
        assert_eq!(c.lost, 1);
        // The missing bytes arrive late: out of order, and the gap is filled.
        assert_eq!(t.on_segment(&seg(100, A), 100, &mut c), 100);
        assert_eq!((c.out_of_order, c.lost), (1, 0));
        // Partial overlap: retransmission carrying 50 new bytes.
        assert_eq!(t.on_segment(&seg(250, A), 100, &mut c), 50);
        assert_eq!(c.retransmissions, 2);
    }

    #[test]
    fn wraps_around_the_sequence_space() {
        let (mut t, mut c) = (SeqTrack::default(), TcpCounters::default());
        t.on_segment(&seg(u32::MAX - 9, A), 20, &mut c);
        assert_eq!(t.on_segment(&seg(10, A), 10, &mut c), 10);
        assert_eq!(t.on_segment(&seg(u32::MAX - 9, A), 20, &mut c), 0);
        assert_eq!(
            c,
            TcpCounters {
                retransmissions: 1,
                ..Default::default()
            }
        );
    }
}
