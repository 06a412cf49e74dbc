//! The flow table proper: lookup, creation, expiry sweeps, eviction.

use std::sync::Arc;

use hashbrown::HashMap;
use netwarden_api::flow::{EndReason, FlowRecord, FlowUpdate};

use super::entry::Flow;
use super::fragments::{FragmentId, FragmentMap, FragmentTarget};
use super::key::FlowKey;
use super::{FlowConfig, FlowStats};
use crate::decode::{Fragment, PacketView};
use crate::dpi::Dpi;

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Timeouts in nanoseconds, converted once.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    idle: u64,
    tcp_established_idle: u64,
    active: u64,
    linger: u64,
    fragment: u64,
    sweep: u64,
}

/// Why a flow leaves the table now, if it does.
fn due(key: &FlowKey, flow: &Flow, now: u64, t: &Timeouts) -> Option<EndReason> {
    if let Some((closed_at, reason)) = flow.closed
        && now.saturating_sub(closed_at) >= t.linger
    {
        return Some(reason);
    }
    let idle = if flow.closed.is_none() && flow.is_established_tcp(key) {
        t.tcp_established_idle
    } else {
        t.idle
    };
    (now.saturating_sub(flow.last_ns) >= idle).then_some(EndReason::IdleTimeout)
}

/// A bounded table of bidirectional flows. See the module documentation.
///
/// Records leave through a caller-supplied sink (`FnMut(FlowRecord)`), in a deterministic
/// order: within one sweep, by flow id.
#[derive(Debug)]
pub struct FlowTable {
    config: FlowConfig,
    timeouts: Timeouts,
    sensor: String,
    interfaces: Vec<String>,
    interface: u16,
    flows: HashMap<FlowKey, Flow, ahash::RandomState>,
    fragments: FragmentMap,
    next_id: u64,
    /// Highest packet time seen (packet time never goes back for the table).
    now: u64,
    last_sweep: u64,
    stats: FlowStats,
    scratch: Vec<(u64, FlowKey, EndReason)>,
    /// The DPI engine, when enabled (shared with other tables).
    dpi: Option<Arc<Dpi>>,
}

impl FlowTable {
    /// An empty table; records name `sensor` in their observation point.
    pub fn new(config: FlowConfig, sensor: impl Into<String>) -> Self {
        let timeouts = Timeouts {
            idle: nanos(config.idle_timeout),
            tcp_established_idle: nanos(config.tcp_established_idle_timeout),
            active: nanos(config.active_timeout),
            linger: nanos(config.close_linger),
            fragment: nanos(config.fragment_timeout),
            sweep: nanos(config.sweep_interval).max(1),
        };
        let capacity = config.max_flows.min(16_384);
        let dpi = config.dpi.as_ref().map(|d| Arc::clone(&d.0));
        Self {
            dpi,
            config,
            timeouts,
            sensor: sensor.into(),
            interfaces: vec![String::new()],
            interface: 0,
            flows: HashMap::with_capacity_and_hasher(capacity, ahash::RandomState::new()),
            fragments: FragmentMap::default(),
            next_id: 1,
            now: 0,
            last_sweep: 0,
            stats: FlowStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Names the interface (or pcap file) the next packets come from, for the records'
    /// observation point of flows created from now on.
    pub fn set_interface(&mut self, name: &str) {
        if let Some(i) = self.interfaces.iter().position(|n| n == name) {
            self.interface = i as u16;
        } else if self.interfaces.len() < usize::from(u16::MAX) {
            self.interfaces.push(name.to_owned());
            self.interface = (self.interfaces.len() - 1) as u16;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FlowConfig {
        &self.config
    }

    /// What the table counted so far.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Flows in the table now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Counts a frame that did not decode, under `kind` (`decode::decode_stats_key`).
    pub fn count_decode_error(&mut self, kind: &'static str) {
        self.stats.decode_errors += 1;
        *self.stats.decode_errors_by_kind.entry(kind).or_insert(0) += 1;
    }

    /// Accounts one decoded packet; records of flows that end meanwhile go to `sink`.
    #[inline]
    pub fn process(&mut self, pkt: &PacketView<'_>, sink: &mut impl FnMut(FlowRecord)) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(pkt.wire_len);
        self.advance(pkt.ts_ns, sink);
        if let Fragment::Later { id, more } = pkt.fragment {
            self.later_fragment(pkt, id, more);
            return;
        }
        let (key, forward) = FlowKey::of_packet(pkt);
        let dir = usize::from(!forward);
        // A flow found past its time (between two sweeps) ends before this packet starts anew.
        if let Some(flow) = self.flows.get_mut(&key) {
            if due(&key, flow, pkt.ts_ns, &self.timeouts).is_none() {
                flow.update(pkt, dir);
                if let Some(dpi) = &self.dpi {
                    flow.inspect(dpi, &key, pkt, dir);
                }
                if let Fragment::First { id } = pkt.fragment {
                    self.first_fragment(pkt, key, dir, id);
                }
                return;
            }
            self.end_flow(&key, pkt.ts_ns, sink);
        }
        self.make_room(sink);
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flows_created += 1;
        let mut flow = Flow::new(id, self.interface, pkt, forward);
        flow.update(pkt, dir);
        match &self.dpi {
            Some(dpi) => flow.inspect(dpi, &key, pkt, dir),
            None => flow.dpi_done = true,
        }
        self.flows.insert(key, flow);
        self.stats.flows_active = self.flows.len() as u64;
        if let Fragment::First { id } = pkt.fragment {
            self.first_fragment(pkt, key, dir, id);
        }
    }

    /// Moves the table's clock to `now` (packet time) and runs an expiry sweep when the clock
    /// advanced by the sweep interval. A live capture calls this when no packet arrives.
    pub fn advance(&mut self, now: u64, sink: &mut impl FnMut(FlowRecord)) {
        if now > self.now {
            self.now = now;
        }
        if self.now.saturating_sub(self.last_sweep) >= self.timeouts.sweep {
            self.sweep(sink);
        }
    }

    /// Ends every flow (end of capture): a final record each, by flow id. Flows closed by
    /// FIN/RST keep that reason; the others end with `END_REASON_END_OF_CAPTURE`.
    pub fn finish(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        let mut all: Vec<(FlowKey, Flow)> = self.flows.drain().collect();
        all.sort_unstable_by_key(|(_, f)| f.id);
        for (key, flow) in all {
            let reason = if let Some((_, reason)) = flow.closed {
                self.stats.closed += 1;
                reason
            } else {
                self.stats.ended_at_capture_end += 1;
                EndReason::EndOfCapture
            };
            self.emit(&key, &flow, FlowUpdate::Final, reason, sink);
        }
        self.stats.flows_active = 0;
    }

    fn emit(
        &mut self,
        key: &FlowKey,
        flow: &Flow,
        update: FlowUpdate,
        reason: EndReason,
        sink: &mut impl FnMut(FlowRecord),
    ) {
        let interface = self
            .interfaces
            .get(usize::from(flow.interface))
            .map_or("", String::as_str);
        self.stats.records += 1;
        if update == FlowUpdate::Periodic {
            self.stats.periodic_records += 1;
        }
        let mut record = flow.record(key, &self.sensor, interface, update, reason);
        if let Some(dpi) = &self.dpi {
            dpi.fill(&flow.dpi, &mut record);
        }
        flow.flow_risks(&mut record, update == FlowUpdate::Final);
        sink(record);
    }

    /// Removes `key` and emits its final record (reason decided at `now`).
    fn end_flow(&mut self, key: &FlowKey, now: u64, sink: &mut impl FnMut(FlowRecord)) {
        if let Some(flow) = self.flows.remove(key) {
            let reason = due(key, &flow, now, &self.timeouts).unwrap_or(EndReason::IdleTimeout);
            self.count_end(reason);
            self.emit(key, &flow, FlowUpdate::Final, reason, sink);
            self.stats.flows_active = self.flows.len() as u64;
        }
    }

    fn count_end(&mut self, reason: EndReason) {
        match reason {
            EndReason::IdleTimeout => self.stats.expired += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            EndReason::EndOfCapture => self.stats.ended_at_capture_end += 1,
            _ => self.stats.closed += 1,
        }
    }

    /// Ends flows past their time and emits periodic records of long-lived ones.
    fn sweep(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        let now = self.now;
        self.last_sweep = now;
        let t = self.timeouts;
        let mut due_list = std::mem::take(&mut self.scratch);
        due_list.clear();
        let mut periodic = Vec::new();
        for (key, flow) in &self.flows {
            if let Some(reason) = due(key, flow, now, &t) {
                due_list.push((flow.id, *key, reason));
            } else if t.active > 0
                && flow.closed.is_none()
                && flow.last_ns > flow.last_report_ns
                && now.saturating_sub(flow.last_report_ns) >= t.active
            {
                periodic.push((flow.id, *key));
            }
        }
        due_list.sort_unstable_by_key(|e| e.0);
        for (_, key, reason) in &due_list {
            if let Some(flow) = self.flows.remove(key) {
                self.count_end(*reason);
                self.emit(key, &flow, FlowUpdate::Final, *reason, sink);
            }
        }
        periodic.sort_unstable_by_key(|e| e.0);
        for (_, key) in periodic {
            if let Some(mut flow) = self.flows.remove(&key) {
                self.emit(
                    &key,
                    &flow,
                    FlowUpdate::Periodic,
                    EndReason::ActiveTimeout,
                    sink,
                );
                flow.update_seq += 1;
                flow.last_report_ns = now;
                self.flows.insert(key, flow);
            }
        }
        self.scratch = due_list;
        self.fragments.expire(now, t.fragment);
        self.stats.flows_active = self.flows.len() as u64;
    }

    /// Makes room for one more flow: sweep, then evict the oldest ~1% by last packet.
    fn make_room(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        let max = self.config.max_flows.max(1);
        if self.flows.len() < max {
            return;
        }
        if self.last_sweep != self.now {
            self.sweep(sink);
            if self.flows.len() < max {
                return;
            }
        }
        let n = (max / 100).max(1).min(self.flows.len());
        let mut oldest: Vec<(u64, u64, FlowKey)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.last_ns, f.id, *k))
            .collect();
        oldest.select_nth_unstable_by_key(n - 1, |e| (e.0, e.1));
        oldest.truncate(n);
        oldest.sort_unstable_by_key(|e| (e.0, e.1));
        for (_, _, key) in oldest {
            if let Some(flow) = self.flows.remove(&key) {
                self.count_end(EndReason::Evicted);
                self.emit(&key, &flow, FlowUpdate::Final, EndReason::Evicted, sink);
            }
        }
        self.stats.flows_active = self.flows.len() as u64;
    }

    fn first_fragment(&mut self, pkt: &PacketView<'_>, key: FlowKey, dir: usize, id: u32) {
        let fid = FragmentId {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            id,
        };
        let target = FragmentTarget {
            key,
            dir,
            seen_ns: pkt.ts_ns,
        };
        if !self
            .fragments
            .insert(fid, target, self.config.max_fragments)
        {
            self.stats.fragment_map_full += 1;
        }
    }

    fn later_fragment(&mut self, pkt: &PacketView<'_>, id: u32, more: bool) {
        let fid = FragmentId {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            id,
        };
        let flow = self
            .fragments
            .lookup(&fid, more)
            .filter(|t| pkt.ts_ns.saturating_sub(t.seen_ns) < self.timeouts.fragment)
            .and_then(|t| self.flows.get_mut(&t.key).map(|f| (f, t.dir)));
        match flow {
            Some((flow, dir)) => {
                flow.update_fragment(pkt, dir);
                self.stats.fragments_matched += 1;
            }
            None => self.stats.fragments_unmatched += 1,
        }
    }

    /// Bytes of DPI state held by the flows in the table now, summed (see
    /// [`crate::dpi::FlowDpi::state_bytes`]).
    pub fn dpi_state_bytes(&self) -> usize {
        self.flows.values().map(|f| f.dpi.state_bytes()).sum()
    }

    /// Fragment ids remembered now.
    pub fn fragment_ids(&self) -> usize {
        self.fragments.len()
    }
}
