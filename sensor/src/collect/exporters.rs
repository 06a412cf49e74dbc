//! The bounded table of exporters and what the collector keeps per exporter: statistics,
//! templates, data sets waiting for a template, and per observation domain the sequence
//! tracker and sampling state.
//!
//! Exporters are untrusted: every map here is bounded, and what is evicted is counted.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::stats::{ExporterStats, Sequence};
use super::templates::{PendingSets, TemplateCache};

/// Per observation domain (NetFlow v9 source id, IPFIX domain, sFlow sub-agent, NetFlow v5
/// engine type/id) state.
#[derive(Debug, Default)]
pub struct DomainState {
    /// Sequence tracking.
    pub seq: Sequence,
    /// Sampling rate from options data without a sampler id (applies to the whole domain).
    pub sampling: Option<u32>,
    /// Sampling rate per sampler / selector id, from options data.
    pub samplers: HashMap<u64, u32>,
    /// systemInitTimeMilliseconds from options data (IPFIX relative times).
    pub sys_init_ms: Option<u64>,
    /// The exporter name of this domain's observation point when it is not the UDP source
    /// (sFlow: the agent address in the datagram).
    pub point_exporter: Option<Arc<str>>,
}

/// Most samplers remembered per domain.
pub const MAX_SAMPLERS_PER_DOMAIN: usize = 256;

/// Everything kept about one exporter.
#[derive(Debug)]
pub struct Exporter {
    /// Its address as text, for observation points.
    pub text: Arc<str>,
    /// Last datagram (ns).
    pub last_seen_ns: u64,
    /// Its counters.
    pub stats: ExporterStats,
    /// NetFlow v9 / IPFIX templates.
    pub templates: TemplateCache,
    /// Data sets waiting for their template.
    pub pending: PendingSets,
    /// Per domain state.
    pub domains: HashMap<u32, DomainState>,
    /// Templates per domain as last added to the [`super::PointBoard`] (so what this
    /// collector added can be taken back when the exporter or the collector goes).
    pub reported_templates: HashMap<u32, u64>,
}

impl Exporter {
    fn new(addr: IpAddr, now_ns: u64) -> Self {
        Self {
            text: addr.to_string().into(),
            last_seen_ns: now_ns,
            stats: ExporterStats::default(),
            templates: TemplateCache::default(),
            pending: PendingSets::default(),
            domains: HashMap::new(),
            reported_templates: HashMap::new(),
        }
    }

    /// Brings the board's template gauges of this exporter to its cache's counts.
    pub(crate) fn sync_templates(&mut self, board: &super::PointBoard) {
        let now = self.templates.per_domain();
        for (domain, was) in &mut self.reported_templates {
            let is = now.get(domain).copied().unwrap_or(0);
            board.add_templates(&self.text, *domain, is.cast_signed() - was.cast_signed());
            *was = is;
        }
        for (domain, is) in now {
            self.reported_templates.entry(domain).or_insert_with(|| {
                board.add_templates(&self.text, domain, is.cast_signed());
                is
            });
        }
        self.reported_templates.retain(|_, n| *n > 0);
    }

    /// Takes back from the board every template gauge this exporter added (it is forgotten).
    pub(crate) fn unreport_templates(&mut self, board: &super::PointBoard) {
        for (domain, was) in self.reported_templates.drain() {
            board.add_templates(&self.text, domain, -was.cast_signed());
        }
    }

    /// The state of `domain`, created if needed; at most `max` domains are kept (an arbitrary
    /// one is forgotten to make room).
    pub fn domain(&mut self, domain: u32, max: usize) -> &mut DomainState {
        if !self.domains.contains_key(&domain) && self.domains.len() >= max.max(1) {
            let victim = self.domains.keys().next().copied();
            if let Some(victim) = victim {
                self.domains.remove(&victim);
            }
        }
        self.domains.entry(domain).or_default()
    }
}

/// Exporters by UDP source address, at most `max` of them: the least recently heard one is
/// forgotten to make room.
#[derive(Debug, Default)]
pub struct ExporterTable {
    map: HashMap<IpAddr, Exporter>,
}

impl ExporterTable {
    /// Number of exporters tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// One exporter.
    pub fn get(&self, addr: &IpAddr) -> Option<&Exporter> {
        self.map.get(addr)
    }

    /// Every exporter.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &Exporter)> {
        self.map.iter()
    }

    /// Every exporter, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&IpAddr, &mut Exporter)> {
        self.map.iter_mut()
    }

    /// The exporter at `addr`, created if needed. When the table is full the least recently
    /// heard exporter is removed first and returned, so the caller can count it.
    pub fn touch(
        &mut self,
        addr: IpAddr,
        now_ns: u64,
        max: usize,
    ) -> (&mut Exporter, Option<Exporter>) {
        let mut evicted = None;
        if !self.map.contains_key(&addr) && self.map.len() >= max.max(1) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_seen_ns)
                .map(|(a, _)| *a);
            evicted = oldest.and_then(|a| self.map.remove(&a));
        }
        let exp = self
            .map
            .entry(addr)
            .or_insert_with(|| Exporter::new(addr, now_ns));
        exp.last_seen_ns = exp.last_seen_ns.max(now_ns);
        (exp, evicted)
    }
}
