//! RTP (RFC 3550 §5.1): a fixed 12-byte header is too weak to name a flow from one datagram,
//! so a candidate (version 2, a payload type outside RTCP's 72–76, RFC 5761 §4) is confirmed
//! by the next datagram of the same direction: same SSRC, same payload type, sequence number
//! one to ten ahead. Per-flow state: SSRC, payload type and sequence number (8 bytes).

/// What the first candidate datagram said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFlow {
    from_client: bool,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    /// Whether a second datagram confirmed the stream.
    pub confirmed: bool,
}

/// The header fields of an RTP candidate: (payload type, sequence number, SSRC).
fn header(p: &[u8]) -> Option<(u8, u16, u32)> {
    let h = p.get(..12)?;
    let pt = h[1] & 0x7f;
    if h[0] >> 6 != 2 || (72..=76).contains(&pt) {
        return None;
    }
    // With the CSRC list (CC, 4 bits) the header must still fit.
    if p.len() < 12 + 4 * usize::from(h[0] & 0x0f) {
        return None;
    }
    Some((
        pt,
        u16::from_be_bytes([h[2], h[3]]),
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
    ))
}

/// What a later datagram means for a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet (a datagram of the other direction).
    Pending,
    /// The stream is RTP.
    Confirmed,
    /// It is not.
    Rejected,
}

impl RtpFlow {
    /// A candidate from the first datagram of a flow.
    pub fn probe(from_client: bool, p: &[u8]) -> Option<Self> {
        let (payload_type, seq, ssrc) = header(p)?;
        Some(Self {
            from_client,
            ssrc,
            payload_type,
            seq,
            confirmed: false,
        })
    }

    /// Judges a later datagram.
    pub fn on_payload(&mut self, from_client: bool, p: &[u8]) -> Verdict {
        if self.confirmed {
            return Verdict::Confirmed;
        }
        if from_client != self.from_client {
            return Verdict::Pending;
        }
        match header(p) {
            // The same datagram again (the one that made the candidate, or a duplicate).
            Some((_, seq, ssrc)) if ssrc == self.ssrc && seq == self.seq => Verdict::Pending,
            Some((pt, seq, ssrc))
                if ssrc == self.ssrc
                    && pt == self.payload_type
                    && (1..=10).contains(&seq.wrapping_sub(self.seq)) =>
            {
                self.confirmed = true;
                Verdict::Confirmed
            }
            _ => Verdict::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3550 §5.1 headers: PCMU (PT 0) from SSRC 0x11223344, sequence 7, 8.
    fn packet(seq: u16, ssrc: u32, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend(seq.to_be_bytes());
        p.extend(1000u32.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend([0xffu8; 160]);
        p
    }

    #[test]
    fn a_second_packet_confirms_or_rejects() {
        let mut f = RtpFlow::probe(true, &packet(7, 0x1122_3344, 0)).expect("candidate");
        assert_eq!(f.on_payload(false, &packet(1, 9, 0)), Verdict::Pending);
        assert_eq!(
            f.on_payload(true, &packet(8, 0x1122_3344, 0)),
            Verdict::Confirmed
        );
        let mut f = RtpFlow::probe(true, &packet(65535, 5, 8)).expect("candidate");
        assert_eq!(f.on_payload(true, &packet(0, 5, 8)), Verdict::Confirmed);
        let mut f = RtpFlow::probe(true, &packet(7, 5, 0)).expect("candidate");
        assert_eq!(f.on_payload(true, &packet(300, 5, 0)), Verdict::Rejected);
        let mut f = RtpFlow::probe(true, &packet(7, 5, 0)).expect("candidate");
        assert_eq!(f.on_payload(true, &packet(8, 6, 0)), Verdict::Rejected);
        assert!(RtpFlow::probe(true, &packet(7, 5, 72)).is_none());
        assert!(RtpFlow::probe(true, &[0x8f; 20]).is_none());
        assert!(RtpFlow::probe(true, b"\x80\x00short").is_none());
    }

    /// Through the engine: two datagrams of a stream name the flow RTP (by payload); a
    /// candidate that the next datagram contradicts leaves the flow unclaimed.
    #[test]
    fn engine_confirms_a_stream() {
        use crate::dpi::{Dpi, DpiConfig, FlowDpi, PacketCtx};
        use netwarden_api::flow::{Confidence, FlowRecord};
        let dpi = Dpi::new(DpiConfig::default());
        let ctx = PacketCtx {
            from_client: true,
            l4_proto: 17,
            client_port: 16384,
            server_port: 16386,
            ts_ns: 0,
            tcp_seq: None,
            fragmented: false,
        };
        let fill = |flow: &FlowDpi| {
            let mut rec = FlowRecord {
                l4_proto: 17,
                client_port: 16384,
                server_port: 16386,
                ..FlowRecord::default()
            };
            dpi.fill(flow, &mut rec);
            rec.l7.unwrap_or_default()
        };
        let mut flow = FlowDpi::default();
        assert!(!dpi.inspect(&mut flow, &ctx, &packet(7, 42, 0)));
        assert_eq!(fill(&flow).master_protocol, "");
        assert!(dpi.inspect(&mut flow, &ctx, &packet(8, 42, 0)));
        let l7 = fill(&flow);
        assert_eq!(l7.master_protocol, "RTP");
        assert_eq!(l7.confidence, Confidence::Dpi as i32);
        let mut flow = FlowDpi::default();
        assert!(!dpi.inspect(&mut flow, &ctx, &packet(7, 42, 0)));
        assert!(!dpi.inspect(&mut flow, &ctx, &packet(9000, 43, 0)));
        assert!(!dpi.inspect(&mut flow, &ctx, &packet(9001, 43, 0)));
        assert_eq!(fill(&flow).master_protocol, "");
    }
}
