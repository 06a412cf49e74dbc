//! Flow collection: NetFlow v5, NetFlow v9 (RFC 3954), IPFIX (RFC 7011/7012, RFC 5103
//! biflows) and sFlow v5 datagrams from exporters, turned into [`FlowRecord`]s (and sFlow
//! interface counters into [`InterfaceCounters`]).
//!
//! Owns: the pure decoders (one folder per protocol), the template caches and the bounded
//! buffer of data that arrived before its template ([`templates`]), per-exporter statistics
//! and sequence tracking ([`stats`]), the UDP [`listener`] and the IPFIX-over-TCP one
//! ([`tcp`]). [`Collector`] is the state machine that ties them: one datagram in, records out
//! through a sink closure.
//!
//! Must not: trust an exporter (every table is bounded, every length checked, no panic on any
//! input), block, or know about the bus (records leave through the caller's sink).
//! See `docs/collect.md` for the policies (buffering, expiry, sampling, limits).

use std::net::IpAddr;
use std::sync::Arc;

use netwarden_api::flow::FlowRecord;
use serde::{Deserialize, Serialize};

mod error;
mod exporters;
mod fields;
pub mod ipfix;
pub mod listener;
pub mod merge;
pub mod netflow5;
pub mod netflow9;
pub mod sflow;
pub mod stats;
pub mod tcp;
pub mod templates;
mod wire;

pub use error::{CollectError, ErrorKind};
pub use exporters::{DomainState, Exporter};
pub use fields::{is_server_port, source_is_server};
pub use listener::{Listener, ListenerConfig, ListenerStats};
pub use stats::{
    CollectorStats, ExporterStats, GlobalCounters, MAX_BOARD_POINTS, PointBoard, SeqOutcome,
    Sequence,
};
pub use tcp::{TcpCollector, TcpListenerConfig, TcpStats};

use error::At;
use exporters::{ExporterTable, MAX_SAMPLERS_PER_DOMAIN};
use fields::{FlowFields, Origin, TimeBase};
use templates::{Learned, Template};

/// Result alias of this module.
pub type Result<T, E = CollectError> = std::result::Result<T, E>;

/// Export protocol of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Cisco NetFlow v5.
    Netflow5,
    /// NetFlow v9 (RFC 3954).
    Netflow9,
    /// IPFIX (RFC 7011).
    Ipfix,
    /// sFlow version 5.
    Sflow,
    /// None of the above.
    Unknown,
}

impl Protocol {
    /// Detects the protocol from the first bytes: a 16-bit version 5, 9 or 10, or sFlow's
    /// 32-bit version 5 (whose first 16 bits are 0). One port can so take every protocol.
    pub fn detect(datagram: &[u8]) -> Self {
        match wire::u16_at(datagram, 0) {
            Some(5) => Self::Netflow5,
            Some(9) => Self::Netflow9,
            Some(10) => Self::Ipfix,
            Some(0) if wire::u32_at(datagram, 0) == Some(5) => Self::Sflow,
            _ => Self::Unknown,
        }
    }

    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Netflow5 => "netflow5",
            Self::Netflow9 => "netflow9",
            Self::Ipfix => "ipfix",
            Self::Sflow => "sflow",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the exporter said about a flow that [`FlowRecord`] has no field for yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowExtras {
    /// Ingress interface index (NetFlow input / IPFIX 10).
    pub ingress_if: Option<u32>,
    /// Egress interface index (NetFlow output / IPFIX 14).
    pub egress_if: Option<u32>,
    /// Top MPLS label (IPFIX 70), 20 bits.
    pub mpls_top_label: Option<u32>,
    /// IPFIX applicationId (95): classification engine id and selector id. Also written to
    /// `l7.app_protocol` as `ipfix-app:<engine>:<selector>` with confidence EXPORTER.
    pub application_id: Option<(u8, u64)>,
    /// flowDirection (61): 0 ingress, 1 egress.
    pub direction: Option<u8>,
    /// Whether the record's source was judged the server (so `client` = record destination).
    pub swapped: bool,
}

/// One flow reported by an exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedFlow {
    /// The record (update FINAL, end reason EXPORTER, counters already scaled by sampling).
    pub record: FlowRecord,
    /// Exporter facts the record cannot carry yet.
    pub extras: FlowExtras,
}

/// sFlow interface counters (counter sample records 1 "generic interface" and 2 "ethernet").
/// Not a flow: a separate output so they are not dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceCounters {
    /// Agent address from the sFlow datagram.
    pub agent: Option<IpAddr>,
    /// Sub-agent id.
    pub sub_agent: u32,
    /// Counter sample sequence number.
    pub sequence: u32,
    /// sFlow data source (type << 24 | index).
    pub source_id: u32,
    /// ifIndex.
    pub if_index: u32,
    /// ifType (IANA).
    pub if_type: u32,
    /// ifSpeed, bits per second.
    pub if_speed: u64,
    /// ifDirection: 0 unknown, 1 full duplex, 2 half, 3 in, 4 out.
    pub if_direction: u32,
    /// ifAdminStatus (bit 0) and ifOperStatus (bit 1).
    pub if_status: u32,
    /// ifInOctets.
    pub in_octets: u64,
    /// ifInUcastPkts + ifInMulticastPkts + ifInBroadcastPkts.
    pub in_packets: u64,
    /// ifInDiscards.
    pub in_discards: u32,
    /// ifInErrors.
    pub in_errors: u32,
    /// ifOutOctets.
    pub out_octets: u64,
    /// ifOutUcastPkts + ifOutMulticastPkts + ifOutBroadcastPkts.
    pub out_packets: u64,
    /// ifOutDiscards.
    pub out_discards: u32,
    /// ifOutErrors.
    pub out_errors: u32,
    /// Receive time (ns): counters carry no time of their own.
    pub received_ns: u64,
}

/// What the collector emits.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "outputs travel in batches (Vec<Output>): a box would cost one allocation per record"
)]
pub enum Output {
    /// A flow record.
    Flow(ExportedFlow),
    /// sFlow interface counters.
    Counters(InterfaceCounters),
}

/// Collector settings. Defaults in [`CollectorConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Sensor name written in observation points.
    pub sensor: String,
    /// A template not refreshed for this long is forgotten (seconds). RFC 7011 leaves UDP
    /// template lifetime to the collector; exporters resend every few minutes.
    pub template_timeout_secs: u64,
    /// Most exporters tracked; the least recently heard is forgotten beyond.
    pub max_exporters: usize,
    /// Most templates per exporter; its oldest is evicted beyond.
    pub max_templates_per_exporter: usize,
    /// Most templates over all exporters; new ones are refused beyond.
    pub max_templates_total: usize,
    /// Most observation domains (source ids, sub-agents) per exporter.
    pub max_domains_per_exporter: usize,
    /// Data sets buffered per exporter while waiting for their template (0 disables).
    pub pending_max_sets: usize,
    /// Bytes buffered per exporter while waiting for templates.
    pub pending_max_bytes: usize,
    /// How long a buffered data set waits for its template (milliseconds).
    pub pending_max_age_ms: u64,
    /// Flow ids start after this value. The engine keys flows by (observation point, flow id):
    /// collectors of one sensor that may hear the same exporter (several listeners) need
    /// disjoint id spaces, which the pipeline gives them (listener `i` starts at `i << 48`).
    pub flow_id_base: u64,
    /// Where per-observation-point sequence and template statistics go (shared by the
    /// collectors of one sensor, published as `nw.stats.<sensor>`); none: not kept.
    #[serde(skip)]
    pub points: Option<PointBoard>,
    /// Merge the two one-way records of a conversation that arrive within this many
    /// milliseconds into one bidirectional flow (0: off, every record leaves at once). A
    /// one-way record waits up to this long; see [`merge`].
    pub merge_window_ms: u64,
    /// Most one-way records waiting for their other direction; beyond, the oldest leaves alone.
    pub merge_max_held: usize,
    /// sFlow sampled packet headers go through a flow table (with DPI) per observation point,
    /// counters scaled by the sampling rate, instead of one record per sample. Records then
    /// leave as flows end (idle/active timeouts; [`Collector::expire_merge`] moves the clock,
    /// [`Collector::flush_merge`] ends them).
    pub sflow_flow_table: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            sensor: String::new(),
            template_timeout_secs: 30 * 60,
            max_exporters: 1024,
            max_templates_per_exporter: 512,
            max_templates_total: 65_536,
            max_domains_per_exporter: 256,
            pending_max_sets: 64,
            pending_max_bytes: 256 * 1024,
            pending_max_age_ms: 5_000,
            flow_id_base: 0,
            points: None,
            merge_window_ms: 0,
            merge_max_held: 65_536,
            sflow_flow_table: false,
        }
    }
}

/// The collection state machine: datagrams in, [`Output`]s out. Single-threaded; run one per
/// listener (templates of one exporter arrive at one listener).
#[derive(Debug)]
pub struct Collector {
    config: CollectorConfig,
    exporters: ExporterTable,
    totals: ExporterStats,
    global: GlobalCounters,
    templates_total: usize,
    next_flow_id: u64,
    merge: merge::MergeTable,
    sflow: sflow::FlowTables,
}

impl Collector {
    /// A collector with no exporter known yet.
    pub fn new(config: CollectorConfig) -> Self {
        let next_flow_id = config.flow_id_base.saturating_add(1);
        Self {
            config,
            exporters: ExporterTable::default(),
            totals: ExporterStats::default(),
            global: GlobalCounters::default(),
            templates_total: 0,
            next_flow_id,
            merge: merge::MergeTable::default(),
            sflow: sflow::FlowTables::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// Decodes one datagram from `exporter` received at `now_ns`, calling `sink` for every
    /// output. Returns the protocol, or the error that stopped decoding (outputs emitted
    /// before it stand; the error is counted).
    pub fn handle(
        &mut self,
        exporter: IpAddr,
        datagram: &[u8],
        now_ns: u64,
        sink: &mut dyn FnMut(Output),
    ) -> Result<Protocol> {
        let protocol = Protocol::detect(datagram);
        if protocol == Protocol::Unknown {
            let version = match wire::u16_at(datagram, 0) {
                Some(0) => wire::u32_at(datagram, 0).unwrap_or(0),
                Some(v) => u32::from(v),
                None => 0,
            };
            let kind = ErrorKind::UnknownVersion(version);
            self.global.count_error(kind);
            let at = At {
                exporter,
                protocol,
                domain: 0,
            };
            return Err(at.err(0, 0, kind));
        }
        match protocol {
            Protocol::Netflow5 => self.global.datagrams_netflow5 += 1,
            Protocol::Netflow9 => self.global.datagrams_netflow9 += 1,
            Protocol::Ipfix => self.global.datagrams_ipfix += 1,
            Protocol::Sflow => self.global.datagrams_sflow += 1,
            Protocol::Unknown => {}
        }
        let (exp, evicted) = self
            .exporters
            .touch(exporter, now_ns, self.config.max_exporters);
        if let Some(mut evicted) = evicted {
            self.global.exporters_evicted += 1;
            self.templates_total = self.templates_total.saturating_sub(evicted.templates.len());
            if let Some(board) = &self.config.points {
                evicted.unreport_templates(board);
            }
        }
        let before = exp.stats;
        exp.stats.datagrams += 1;
        exp.stats.bytes += datagram.len() as u64;
        let mut cx = Cx {
            exp,
            config: &self.config,
            now_ns,
            next_flow_id: &mut self.next_flow_id,
            templates_total: &mut self.templates_total,
            at: At {
                exporter,
                protocol,
                domain: 0,
            },
            seen: None,
            sflow: &mut self.sflow,
        };
        cx.expire_pending();
        let merging = self.config.merge_window_ms > 0;
        let window_ns = self.config.merge_window_ms.saturating_mul(1_000_000);
        let max_held = self.config.merge_max_held;
        let merge = &mut self.merge;
        let mut merged_sink = |o: Output| merge.offer(o, now_ns, window_ns, max_held, sink);
        let sink: &mut dyn FnMut(Output) = if merging { &mut merged_sink } else { sink };
        let result = match protocol {
            Protocol::Netflow5 => netflow5::decode(&mut cx, datagram, sink),
            Protocol::Netflow9 => netflow9::decode(&mut cx, datagram, sink),
            Protocol::Ipfix => ipfix::decode(&mut cx, datagram, sink),
            Protocol::Sflow => sflow::decode(&mut cx, datagram, sink),
            Protocol::Unknown => Ok(()),
        };
        if let Err(e) = &result {
            cx.exp.stats.errors += 1;
            self.global.count_error(e.kind);
        }
        let after = cx.exp.stats;
        if let Some(board) = &self.config.points {
            report_point(board, cx.exp, cx.seen, &before, &after);
        }
        self.totals.add_delta(&after, &before);
        result.map(|()| protocol)
    }

    /// Sends the one-way records whose merge window passed by `now_ns` (alone); call it now
    /// and then (the listener does every second) so a record whose other direction never
    /// comes does not wait for the next datagram. Nothing when merging is off.
    /// The sFlow flow tables' clocks move to `now_ns` too (idle flows end).
    pub fn expire_merge(&mut self, now_ns: u64, sink: &mut dyn FnMut(Output)) {
        if !self.merge.is_empty() {
            self.merge.expire(now_ns, sink);
        }
        if !self.sflow.is_empty() {
            self.sflow.advance(now_ns, self.config.flow_id_base, sink);
        }
    }

    /// Sends every one-way record still waiting for its other direction, and ends every flow
    /// of the sFlow flow tables (at stop).
    pub fn flush_merge(&mut self, sink: &mut dyn FnMut(Output)) {
        self.merge.flush(sink);
        self.sflow.finish(self.config.flow_id_base, sink);
    }

    /// Sampled sFlow headers given to flow tables, and those beyond the table bound.
    pub fn sflow_table_counts(&self) -> (u64, u64) {
        (self.sflow.packets, self.sflow.overflow)
    }

    /// The merge stage's counters.
    pub fn merge_stats(&self) -> merge::MergeStats {
        self.merge.stats()
    }

    /// Counts a record the caller's sink could not take (a full channel).
    pub fn count_sink_drop(&mut self, n: u64) {
        self.global.sink_dropped += n;
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> CollectorStats {
        CollectorStats {
            totals: self.totals,
            global: self.global,
            exporters: self.exporters.len() as u64,
            templates: self.templates_total as u64,
        }
    }

    /// Statistics of one exporter, if tracked.
    pub fn exporter_stats(&self, exporter: IpAddr) -> Option<ExporterStats> {
        self.exporters.get(&exporter).map(|e| e.stats)
    }

    /// Every tracked exporter with its statistics.
    pub fn exporters(&self) -> impl Iterator<Item = (IpAddr, &ExporterStats)> {
        self.exporters.iter().map(|(a, e)| (*a, &e.stats))
    }
}

impl Drop for Collector {
    /// Takes back the template gauges this collector added to its board (a TCP connection's
    /// collector goes when the connection closes, with its templates).
    fn drop(&mut self) {
        if let Some(board) = &self.config.points {
            for (_, exp) in self.exporters.iter_mut() {
                exp.unreport_templates(board);
            }
        }
    }
}

/// Adds one datagram's sequence outcome to its point on `board`, and the exporter's template
/// counts when they changed.
fn report_point(
    board: &PointBoard,
    exp: &mut Exporter,
    seen: Option<Seen>,
    before: &ExporterStats,
    after: &ExporterStats,
) {
    if let Some(seen) = seen {
        let name = exp
            .domains
            .get(&seen.domain)
            .and_then(|d| d.point_exporter.clone())
            .unwrap_or_else(|| Arc::clone(&exp.text));
        board.update(&name, seen.domain, |p| {
            p.datagrams += 1;
            match seen.outcome {
                SeqOutcome::InOrder => {}
                SeqOutcome::Gap(n) if seen.in_records => p.lost_records += u64::from(n),
                SeqOutcome::Gap(n) => p.lost_datagrams += u64::from(n),
                SeqOutcome::Late => p.sequence_late += 1,
                SeqOutcome::Reset => p.sequence_resets += 1,
            }
        });
    }
    let changes = |s: &ExporterStats| {
        s.templates_learned + s.templates_withdrawn + s.templates_expired + s.templates_evicted
    };
    if changes(after) != changes(before) {
        exp.sync_templates(board);
    }
}

/// The sequence number a datagram carried, as judged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    domain: u32,
    outcome: SeqOutcome,
    in_records: bool,
}

/// What a protocol decoder works with for one datagram.
pub(crate) struct Cx<'a> {
    exp: &'a mut Exporter,
    config: &'a CollectorConfig,
    now_ns: u64,
    next_flow_id: &'a mut u64,
    templates_total: &'a mut usize,
    at: At,
    /// The datagram's sequence number, once judged.
    seen: Option<Seen>,
    /// sFlow flow tables per observation point.
    sflow: &'a mut sflow::FlowTables,
}

impl Cx<'_> {
    /// Emits a flow built from `fields`, or counts a record without addresses.
    fn emit(
        &mut self,
        fields: &FlowFields,
        origin: &Origin<'_>,
        time: &TimeBase,
        rate: u32,
        sink: &mut dyn FnMut(Output),
    ) {
        match fields::build_flow(fields, origin, time, rate, *self.next_flow_id) {
            Some(flow) => {
                *self.next_flow_id += 1;
                self.exp.stats.records += 1;
                sink(Output::Flow(flow));
            }
            None => self.exp.stats.records_without_addresses += 1,
        }
    }

    /// The state of `domain`.
    fn domain(&mut self, domain: u32) -> &mut DomainState {
        self.exp
            .domain(domain, self.config.max_domains_per_exporter)
    }

    /// Counts what a sequence number says.
    fn sequence(&mut self, domain: u32, seq: u32, advance: u32, in_records: bool) {
        let outcome = self.domain(domain).seq.observe(seq, advance);
        self.seen = Some(Seen {
            domain,
            outcome,
            in_records,
        });
        let stats = &mut self.exp.stats;
        match outcome {
            SeqOutcome::InOrder => {}
            SeqOutcome::Gap(n) if in_records => stats.lost_records += u64::from(n),
            SeqOutcome::Gap(n) => stats.lost_datagrams += u64::from(n),
            SeqOutcome::Late => stats.sequence_late += 1,
            SeqOutcome::Reset => stats.sequence_resets += 1,
        }
    }

    /// Sampling rate for a data record: stated in the record, else its sampler's rate from
    /// options data, else the domain's rate from options data, else 1.
    fn sampling_rate(&mut self, domain: u32, fields: &FlowFields) -> u32 {
        if let Some(rate) = fields.inline_sampling_rate() {
            return rate;
        }
        let Some(state) = self.exp.domains.get(&domain) else {
            return 1;
        };
        fields
            .sampler_id
            .and_then(|id| state.samplers.get(&id).copied())
            .or(state.sampling)
            .unwrap_or(1)
    }

    /// Records what an options data record says (sampling, system init time).
    fn apply_options(&mut self, domain: u32, fields: &FlowFields) {
        self.exp.stats.options_records += 1;
        let rate = fields.inline_sampling_rate();
        let state = self.domain(domain);
        if let Some(init) = fields.sys_init_ms {
            state.sys_init_ms = Some(init);
        }
        if let Some(rate) = rate {
            match fields.sampler_id {
                Some(id) => {
                    if state.samplers.len() < MAX_SAMPLERS_PER_DOMAIN
                        || state.samplers.contains_key(&id)
                    {
                        state.samplers.insert(id, rate);
                    }
                }
                None => state.sampling = Some(rate),
            }
        }
    }

    /// Caches a template within the per-exporter and total bounds; whether it is usable.
    fn learn(&mut self, domain: u32, id: u16, template: Template) -> bool {
        let stats = &mut self.exp.stats;
        if !self.exp.templates.contains(domain, id) {
            if self.exp.templates.len() >= self.config.max_templates_per_exporter
                && self.exp.templates.evict_oldest()
            {
                stats.templates_evicted += 1;
                *self.templates_total = self.templates_total.saturating_sub(1);
            }
            if *self.templates_total >= self.config.max_templates_total
                || self.config.max_templates_per_exporter == 0
            {
                stats.templates_rejected += 1;
                return false;
            }
            *self.templates_total += 1;
        }
        match self.exp.templates.insert(domain, id, template) {
            Learned::New => stats.templates_learned += 1,
            Learned::Refreshed => stats.templates_refreshed += 1,
            Learned::Replaced => stats.templates_replaced += 1,
        }
        true
    }

    /// The template `(domain, id)` if cached and fresh (an expired one is dropped and counted).
    fn template(&mut self, domain: u32, id: u16) -> Option<Arc<Template>> {
        let ttl = self
            .config
            .template_timeout_secs
            .saturating_mul(1_000_000_000);
        match self.exp.templates.get(domain, id, self.now_ns, ttl) {
            Ok(t) => Some(Arc::clone(t)),
            Err(expired) => {
                if expired {
                    self.exp.stats.templates_expired += 1;
                    *self.templates_total = self.templates_total.saturating_sub(1);
                }
                None
            }
        }
    }

    /// Removes a template (IPFIX withdrawal).
    fn withdraw(&mut self, domain: u32, id: u16) {
        if self.exp.templates.withdraw(domain, id) {
            self.exp.stats.templates_withdrawn += 1;
            *self.templates_total = self.templates_total.saturating_sub(1);
        }
    }

    /// Removes every template of a kind in a domain (IPFIX withdraw-all).
    fn withdraw_all(&mut self, domain: u32, kind: templates::TemplateKind) {
        let n = self.exp.templates.withdraw_all(domain, kind);
        self.exp.stats.templates_withdrawn += n as u64;
        *self.templates_total = self.templates_total.saturating_sub(n);
    }

    /// Buffers a data set whose template is unknown (bounded; overflow counted).
    fn buffer(&mut self, set: templates::PendingSet) {
        self.exp.stats.missing_template += 1;
        if self.config.pending_max_sets == 0 {
            self.exp.stats.pending_dropped += 1;
            return;
        }
        self.exp.stats.pending_buffered += 1;
        let dropped = self.exp.pending.push(
            set,
            self.config.pending_max_sets,
            self.config.pending_max_bytes,
        );
        self.exp.stats.pending_dropped += dropped;
    }

    /// Drops buffered sets that waited longer than allowed.
    fn expire_pending(&mut self) {
        if self.exp.pending.is_empty() {
            return;
        }
        let max_age = self.config.pending_max_age_ms.saturating_mul(1_000_000);
        let dropped = self.exp.pending.expire(self.now_ns.saturating_sub(max_age));
        self.exp.stats.pending_expired += dropped;
    }

    /// Decodes the records of one data set (`body` without the set header) with `template`;
    /// `offset` is where `body` starts in its datagram. Returns how many records it held.
    #[allow(clippy::too_many_arguments)]
    fn data_set(
        &mut self,
        template: &Template,
        domain: u32,
        id: u16,
        body: &[u8],
        offset: usize,
        time: &TimeBase,
        source: netwarden_api::flow::FlowSource,
        sink: &mut dyn FnMut(Output),
    ) -> Result<u32> {
        let at = At { domain, ..self.at };
        let config = self.config;
        let exporter = Arc::clone(&self.exp.text);
        let origin = Origin {
            source,
            sensor: &config.sensor,
            exporter: &exporter,
            domain,
        };
        let mut time = *time;
        if time.uptime_ms.is_none() {
            time.sys_init_ms = self.exp.domains.get(&domain).and_then(|d| d.sys_init_ms);
        }
        let mut pos = 0;
        let mut records = 0u32;
        // Whatever is left shorter than one record is padding (RFC 3954 section 5.3,
        // RFC 7011 section 3.3.1). `min_len >= 1`, so this loop always advances.
        while body.len() - pos >= template.min_len {
            let mut fields = FlowFields::default();
            pos = template
                .walk(body, pos, |spec, value| {
                    fields.apply(spec.id, spec.pen, value);
                })
                .map_err(|(o, what)| at.truncated(id, offset + o, what))?;
            records += 1;
            match template.kind {
                templates::TemplateKind::Options => self.apply_options(domain, &fields),
                templates::TemplateKind::Data => {
                    let rate = self.sampling_rate(domain, &fields);
                    self.emit(&fields, &origin, &time, rate, sink);
                }
            }
        }
        Ok(records)
    }

    /// Builds a template from `specs` and learns it as `(at.domain, id)`, noting `id` in
    /// `learned` when it was taken; `offset` is where an error about it points.
    #[allow(clippy::too_many_arguments)]
    fn learn_specs(
        &mut self,
        at: At,
        id: u16,
        offset: usize,
        kind: templates::TemplateKind,
        scope_fields: u16,
        specs: Vec<templates::FieldSpec>,
        learned: &mut Vec<u16>,
    ) -> Result<()> {
        let Some(t) = Template::new(kind, scope_fields, specs, self.now_ns) else {
            return Err(at.malformed(id, offset, "template without length"));
        };
        if self.learn(at.domain, id, t) {
            learned.push(id);
        }
        Ok(())
    }

    /// Decodes a data set with the template `(domain, id)` when it is known, or buffers it
    /// until the template comes. Returns how many records were decoded (0 when buffered).
    #[allow(clippy::too_many_arguments)]
    fn data_or_buffer(
        &mut self,
        domain: u32,
        id: u16,
        body: &[u8],
        offset: usize,
        time: &TimeBase,
        source: netwarden_api::flow::FlowSource,
        sink: &mut dyn FnMut(Output),
    ) -> Result<u32> {
        if let Some(t) = self.template(domain, id) {
            self.data_set(&t, domain, id, body, offset, time, source, sink)
        } else {
            self.buffer(templates::PendingSet {
                domain,
                template: id,
                received_ns: self.now_ns,
                time: *time,
                offset,
                body: body.into(),
            });
            Ok(0)
        }
    }

    /// Decodes the sets that waited for `(domain, id)`.
    fn replay(
        &mut self,
        domain: u32,
        id: u16,
        source: netwarden_api::flow::FlowSource,
        sink: &mut dyn FnMut(Output),
    ) -> Result<()> {
        let ready = self.take_pending(domain, id);
        if ready.is_empty() {
            return Ok(());
        }
        let Some(template) = self.template(domain, id) else {
            return Ok(());
        };
        for set in ready {
            self.data_set(
                &template, domain, id, &set.body, set.offset, &set.time, source, sink,
            )?;
        }
        Ok(())
    }

    /// Sets buffered for `(domain, template)`, now that it is known.
    fn take_pending(&mut self, domain: u32, template: u16) -> Vec<templates::PendingSet> {
        if self.exp.pending.is_empty() {
            return Vec::new();
        }
        let ready = self.exp.pending.take(domain, template);
        self.exp.stats.pending_replayed += ready.len() as u64;
        ready
    }
}

#[cfg(test)]
mod tests;
