//! Merging the two one-way records of a conversation into one bidirectional flow.
//!
//! NetFlow v5/v9 and IPFIX (without RFC 5103 biflows) report each direction separately. When
//! merging is on (`CollectorConfig::merge_window_ms` > 0), a one-way record is held for at most
//! the window; if the other direction of the same conversation (same observation point,
//! protocol, VLAN and endpoint pair, reversed) arrives in that time, one record leaves with
//! both directions; otherwise the record leaves alone when its time is up.
//!
//! Client and server of a merged flow: the side whose record has SYN without ACK (TCP; it
//! opened the connection); else the port rule of [`super::source_is_server`] (the well-known
//! or lower listed port is the server); else the side whose first packet came first.
//!
//! Not merged (passed at once): records that already carry both directions (RFC 5103
//! biflows, records with reverse counters) and sFlow records (samples, or flows built from
//! both directions by the sFlow flow tables). A second record of the *same* direction while one
//! waits sends the waiting one alone (a new flow of the exporter, not the other side).
//! Bounded: at most `merge_max_held` records wait; beyond, the oldest leaves unmerged
//! (`evicted`).

use std::collections::VecDeque;

use hashbrown::HashMap;
use netwarden_api::flow::{DirectionStats, FlowRecord, FlowSource};

use super::{ExportedFlow, Output, source_is_server};

/// TCP SYN.
const SYN: u32 = 0x02;
/// TCP ACK.
const ACK: u32 = 0x10;

/// Counters of the merge stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MergeStats {
    /// One-way records held, waiting for their other direction.
    pub held: u64,
    /// Pairs merged into one flow.
    pub merged: u64,
    /// Records that left alone (the window passed without the other direction).
    pub unpaired: u64,
    /// Records that left early because the table was full.
    pub evicted: u64,
    /// Records that passed without waiting (already two-way).
    pub passed: u64,
}

/// The conversation key: point, protocol, VLAN, and the endpoint pair in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    exporter: String,
    domain: u32,
    proto: u32,
    vlan: u32,
    lo: (Vec<u8>, u32),
    hi: (Vec<u8>, u32),
}

/// A held record: the record, its sending side (`src`, as `(address, port)`), and when it
/// must leave.
#[derive(Debug)]
struct Held {
    flow: ExportedFlow,
    src: (Vec<u8>, u32),
    seq: u64,
}

/// The bounded table of held one-way records.
#[derive(Debug, Default)]
pub struct MergeTable {
    held: HashMap<Key, Held>,
    order: VecDeque<(u64, u64, Key)>,
    next_seq: u64,
    stats: MergeStats,
}

/// An endpoint: address bytes and port.
type Endpoint = (Vec<u8>, u32);

/// The one direction a one-way record carries, as `(src, dst, stats)`; `None` for two-way.
fn one_way(r: &FlowRecord) -> Option<(Endpoint, Endpoint, DirectionStats)> {
    let c2s = r.c2s.unwrap_or_default();
    let s2c = r.s2c.unwrap_or_default();
    let client = (r.client_ip.clone(), r.client_port);
    let server = (r.server_ip.clone(), r.server_port);
    match (
        c2s.packets > 0 || c2s.bytes > 0,
        s2c.packets > 0 || s2c.bytes > 0,
    ) {
        (true, false) => Some((client, server, c2s)),
        (false, true) => Some((server, client, s2c)),
        _ => None,
    }
}

fn key_of(r: &FlowRecord, a: &(Vec<u8>, u32), b: &(Vec<u8>, u32)) -> Key {
    let point = r.observation_point.as_ref();
    let (lo, hi) = if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    Key {
        exporter: point.map(|p| p.exporter.clone()).unwrap_or_default(),
        domain: point.map_or(0, |p| p.domain_id),
        proto: r.l4_proto,
        vlan: r.vlan,
        lo,
        hi,
    }
}

/// Whether the record's direction opened a TCP connection (SYN seen, ACK never).
fn opened(proto: u32, d: &DirectionStats) -> bool {
    proto == 6 && d.tcp_flags & SYN != 0 && d.tcp_flags & ACK == 0
}

/// Merges `a` (held) and `b` (the other direction) into one record.
fn merge(a: ExportedFlow, b: &ExportedFlow) -> ExportedFlow {
    let (Some((a_src, a_dst, a_dir)), Some((b_src, _, b_dir))) =
        (one_way(&a.record), one_way(&b.record))
    else {
        return a;
    };
    let proto = a.record.l4_proto;
    let port = |x: &(Vec<u8>, u32)| u16::try_from(x.1).unwrap_or(0);
    // Whether `a`'s sender is the client.
    let a_client = if opened(proto, &a_dir) != opened(proto, &b_dir) {
        opened(proto, &a_dir)
    } else if source_is_server(proto as u8, port(&a_src), port(&a_dst))
        != source_is_server(proto as u8, port(&b_src), port(&a_src))
    {
        !source_is_server(proto as u8, port(&a_src), port(&a_dst))
    } else {
        a.record.first_seen_ns <= b.record.first_seen_ns
    };
    let (client, server, c2s, s2c) = if a_client {
        (a_src, a_dst, a_dir, b_dir)
    } else {
        (b_src, a_src, b_dir, a_dir)
    };
    let mut out = a;
    let r = &mut out.record;
    r.client_ip = client.0;
    r.client_port = client.1;
    r.server_ip = server.0;
    r.server_port = server.1;
    r.c2s = Some(c2s);
    r.s2c = Some(s2c);
    r.first_seen_ns = r.first_seen_ns.min(b.record.first_seen_ns);
    r.last_seen_ns = r.last_seen_ns.max(b.record.last_seen_ns);
    r.sampling_rate = r.sampling_rate.max(b.record.sampling_rate);
    if r.l7.is_none() {
        r.l7.clone_from(&b.record.l7);
    }
    out.extras.swapped = !a_client;
    out
}

impl MergeTable {
    /// Counters so far.
    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Records waiting now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes one output: a one-way flow waits (or completes a waiting one), anything else
    /// goes to `sink` at once. `window_ns` is how long a record may wait, `max_held` the most
    /// that may wait.
    pub fn offer(
        &mut self,
        output: Output,
        now_ns: u64,
        window_ns: u64,
        max_held: usize,
        sink: &mut dyn FnMut(Output),
    ) {
        let Output::Flow(flow) = output else {
            sink(output);
            return;
        };
        // sFlow records are samples, or flows its tables built from both directions already.
        let sampled = flow.record.source == FlowSource::Sflow as i32;
        let Some((src, dst, _)) = one_way(&flow.record).filter(|_| !sampled) else {
            self.stats.passed += 1;
            sink(Output::Flow(flow));
            return;
        };
        let key = key_of(&flow.record, &src, &dst);
        if let Some(held) = self.held.get(&key)
            && held.src != src
        {
            let held = self.held.remove(&key).map(|h| h.flow);
            if let Some(held) = held {
                self.stats.merged += 1;
                sink(Output::Flow(merge(held, &flow)));
            }
            return;
        }
        if let Some(old) = self.held.remove(&key) {
            // The same direction again (a new flow of the exporter): the older one leaves.
            self.stats.unpaired += 1;
            sink(Output::Flow(old.flow));
        }
        while self.held.len() >= max_held.max(1) {
            if !self.pop_oldest(sink, true) {
                break;
            }
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let deadline_ns = now_ns.saturating_add(window_ns);
        self.order.push_back((deadline_ns, seq, key.clone()));
        self.held.insert(key, Held { flow, src, seq });
        self.stats.held += 1;
    }

    /// Sends the oldest waiting record alone; whether there was one.
    fn pop_oldest(&mut self, sink: &mut dyn FnMut(Output), evicted: bool) -> bool {
        while let Some((_, seq, key)) = self.order.pop_front() {
            if self.held.get(&key).is_some_and(|h| h.seq == seq)
                && let Some(h) = self.held.remove(&key)
            {
                if evicted {
                    self.stats.evicted += 1;
                } else {
                    self.stats.unpaired += 1;
                }
                sink(Output::Flow(h.flow));
                return true;
            }
        }
        false
    }

    /// Sends alone every record whose window passed by `now_ns`.
    pub fn expire(&mut self, now_ns: u64, sink: &mut dyn FnMut(Output)) {
        while let Some((deadline, seq, key)) = self.order.front() {
            let live = self.held.get(key).is_some_and(|h| h.seq == *seq);
            if live && *deadline > now_ns {
                break;
            }
            if live {
                self.pop_oldest(sink, false);
            } else {
                self.order.pop_front();
            }
        }
        if self.held.is_empty() {
            self.order.clear();
        }
    }

    /// Sends every waiting record alone (shutdown).
    pub fn flush(&mut self, sink: &mut dyn FnMut(Output)) {
        while self.pop_oldest(sink, false) {}
        self.order.clear();
        debug_assert!(self.held.is_empty());
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use netwarden_api::flow::{ObservationPoint, ip_to_bytes};

    use super::super::FlowExtras;
    use super::*;

    fn one(
        src: &str,
        sport: u32,
        dst: &str,
        dport: u32,
        packets: u64,
        flags: u32,
        t: u64,
    ) -> Output {
        // Oriented as the collector does: the port rule may put the sender on either side.
        let swapped = source_is_server(6, sport as u16, dport as u16);
        let dir = DirectionStats {
            packets,
            bytes: packets * 100,
            tcp_flags: flags,
            ..DirectionStats::default()
        };
        let (c, cp, s, sp, c2s, s2c) = if swapped {
            (dst, dport, src, sport, DirectionStats::default(), dir)
        } else {
            (src, sport, dst, dport, dir, DirectionStats::default())
        };
        Output::Flow(ExportedFlow {
            record: FlowRecord {
                observation_point: Some(ObservationPoint {
                    sensor: "s".into(),
                    interface: String::new(),
                    exporter: "192.0.2.1".into(),
                    domain_id: 0,
                }),
                client_ip: ip_to_bytes(c.parse().unwrap()),
                server_ip: ip_to_bytes(s.parse().unwrap()),
                client_port: cp,
                server_port: sp,
                l4_proto: 6,
                first_seen_ns: t,
                last_seen_ns: t + 10,
                c2s: Some(c2s),
                s2c: Some(s2c),
                ..FlowRecord::default()
            },
            extras: FlowExtras::default(),
        })
    }

    fn flows(out: Vec<Output>) -> Vec<FlowRecord> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Flow(f) => Some(f.record),
                Output::Counters(_) => None,
            })
            .collect()
    }

    #[test]
    fn two_directions_merge_client_by_syn_then_ports_then_time() {
        let mut t = MergeTable::default();
        let mut out = Vec::new();
        // Server's record first; the client (SYN, no ACK: a scan answered) comes second.
        t.offer(
            one("10.0.0.2", 50000, "10.0.0.1", 60000, 1, 0x12, 5),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        assert!(out.is_empty() && t.len() == 1);
        t.offer(
            one("10.0.0.1", 60000, "10.0.0.2", 50000, 2, 0x02, 6),
            1,
            100,
            10,
            &mut |o| out.push(o),
        );
        let f = flows(std::mem::take(&mut out));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].client_ip, ip_to_bytes("10.0.0.1".parse().unwrap()));
        assert_eq!((f[0].client_port, f[0].server_port), (60000, 50000));
        assert_eq!(
            (f[0].c2s.unwrap().packets, f[0].s2c.unwrap().packets),
            (2, 1)
        );
        assert_eq!((f[0].first_seen_ns, f[0].last_seen_ns), (5, 16));
        // Flags say nothing (both SYN+ACK): the well-known port is the server.
        t.offer(
            one("10.0.0.3", 443, "10.0.0.4", 40000, 7, 0x12, 1),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        t.offer(
            one("10.0.0.4", 40000, "10.0.0.3", 443, 9, 0x12, 0),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        let f = flows(std::mem::take(&mut out));
        assert_eq!(f[0].server_port, 443);
        assert_eq!(
            (f[0].c2s.unwrap().packets, f[0].s2c.unwrap().packets),
            (9, 7)
        );
        // No flag, no well-known port: the earlier first packet is the client.
        t.offer(
            one("10.0.0.5", 50001, "10.0.0.6", 50002, 3, 0, 20),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        t.offer(
            one("10.0.0.6", 50002, "10.0.0.5", 50001, 4, 0, 10),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        let f = flows(std::mem::take(&mut out));
        assert_eq!(f[0].client_port, 50002);
        assert_eq!(t.stats().merged, 3);
        assert!(t.is_empty());
    }

    #[test]
    fn unpaired_leave_after_the_window_and_the_table_is_bounded() {
        let mut t = MergeTable::default();
        let mut out = Vec::new();
        for i in 0..5u32 {
            t.offer(
                one("10.0.0.1", 40000 + i, "10.0.0.2", 443, 1, 0, 0),
                u64::from(i),
                100,
                3,
                &mut |o| out.push(o),
            );
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.stats().evicted, 2, "the two oldest left early");
        t.expire(101, &mut |o| out.push(o));
        assert_eq!(
            t.len(),
            3,
            "the oldest waiting record (received at 2) is due at 102"
        );
        t.expire(102, &mut |o| out.push(o));
        assert_eq!((t.len(), t.stats().unpaired), (2, 1));
        t.flush(&mut |o| out.push(o));
        assert_eq!(flows(out).len(), 5, "nothing is lost");
        assert_eq!(t.stats().unpaired, 3);
        // A two-way record (a biflow) passes at once.
        let mut out = Vec::new();
        let Output::Flow(mut f) = one("10.0.0.1", 1, "10.0.0.2", 2, 1, 0, 0) else {
            unreachable!()
        };
        f.record.s2c = f.record.c2s;
        t.offer(Output::Flow(f), 0, 100, 3, &mut |o| out.push(o));
        assert_eq!((out.len(), t.stats().passed, t.len()), (1, 1, 0));
    }

    #[test]
    fn same_direction_twice_does_not_merge() {
        let mut t = MergeTable::default();
        let mut out = Vec::new();
        t.offer(
            one("10.0.0.1", 40000, "10.0.0.2", 443, 1, 0, 0),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        t.offer(
            one("10.0.0.1", 40000, "10.0.0.2", 443, 1, 0, 0),
            0,
            100,
            10,
            &mut |o| out.push(o),
        );
        assert_eq!((out.len(), t.len(), t.stats().merged), (1, 1, 0));
    }
}
