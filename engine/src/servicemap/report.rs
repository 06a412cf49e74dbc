//! The service-map part of the end-of-run report (`standalone --report text|json`): counts by
//! status, the top edges by flows, periodic pairs.

use std::io::Write;

use serde::Serialize;

use super::ServiceMap;
use super::api::{EdgeView, StatusCounts};

/// Edges listed in the text report.
pub const TOP_EDGES: usize = 20;
/// Edges kept in the JSON report.
pub const JSON_EDGES: usize = 1000;

/// One periodic pair of the report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeriodicRow {
    /// `client -> server:port/L4`.
    pub pair: String,
    /// Period, milliseconds.
    pub period_ms: u64,
    /// Jitter, milliseconds.
    pub jitter_ms: u64,
    /// Consistent intervals.
    pub observations: u32,
}

/// The service-map section.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServiceMapSection {
    /// Edges held.
    pub edges: usize,
    /// Flows counted on them (each flow once).
    pub flows: u64,
    /// By status.
    pub counts: StatusCounts,
    /// Evicted or expired edges.
    pub evictions: super::EdgeEvictions,
    /// Whether the learning period was still running at the end (flow time).
    pub learning: bool,
    /// The edges with the most flows (at most [`JSON_EDGES`]; the text shows [`TOP_EDGES`]).
    pub top_edges: Vec<EdgeView>,
    /// Pairs periodic at the end.
    pub periodic: Vec<PeriodicRow>,
}

impl ServiceMapSection {
    /// The section of `sm` at flow time `now_ns`.
    pub fn build(sm: &ServiceMap, now_ns: u64) -> Self {
        let mut edges: Vec<_> = sm.edges.iter().collect();
        edges.sort_by(|a, b| b.flows.cmp(&a.flows).then_with(|| a.id.cmp(&b.id)));
        let mut periodic: Vec<_> = sm
            .periodic_pairs()
            .filter(|(_, d)| d.is_periodic())
            .collect();
        periodic.sort_by(|a, b| b.1.flows.cmp(&a.1.flows).then_with(|| a.0.cmp(&b.0)));
        Self {
            edges: sm.edges.len(),
            flows: sm.edges.iter().map(|e| e.flows + e.remote[0]).sum(),
            counts: StatusCounts::of(sm.edges.iter()),
            evictions: sm.edges.evictions,
            learning: sm.learning_ends_ns().is_none_or(|e| now_ns < e),
            top_edges: edges
                .into_iter()
                .take(JSON_EDGES)
                .map(EdgeView::of)
                .collect(),
            periodic: periodic
                .into_iter()
                .take(TOP_EDGES)
                .map(|(k, d)| PeriodicRow {
                    pair: format!(
                        "{} -> {}:{}/{}",
                        k.client,
                        k.server,
                        k.port,
                        super::edge::l4_name(k.l4)
                    ),
                    period_ms: d.period() / 1_000_000,
                    jitter_ms: d.jitter() / 1_000_000,
                    observations: d.observations,
                })
                .collect(),
        }
    }

    /// Writes the section as text.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let c = self.counts;
        writeln!(
            out,
            "Service map: {} edges, {} flows ({} allowed, {} denied, {} undecided){}",
            self.edges,
            self.flows,
            c.allowed,
            c.denied,
            c.undecided,
            if self.learning {
                ", still learning"
            } else {
                ""
            }
        )?;
        if self.evictions.undecided + self.evictions.decided + self.evictions.expired > 0 {
            writeln!(
                out,
                "  evicted: {} undecided, {} decided; expired: {}",
                self.evictions.undecided, self.evictions.decided, self.evictions.expired
            )?;
        }
        if !self.top_edges.is_empty() {
            writeln!(
                out,
                "  {:<32} {:<32} {:<22} {:>7} {:>12} {:<10}",
                "client", "server", "service", "flows", "bytes", "status"
            )?;
        }
        for e in self.top_edges.iter().take(TOP_EDGES) {
            writeln!(
                out,
                "  {:<32} {:<32} {:<22} {:>7} {:>12} {:<10}",
                e.client,
                e.server,
                format!("{}/{} {}", e.l4, e.port, e.l7),
                e.flows,
                e.bytes_c2s.saturating_add(e.bytes_s2c),
                e.status.as_str()
            )?;
        }
        if !self.periodic.is_empty() {
            writeln!(out, "  periodic flows:")?;
            for p in &self.periodic {
                writeln!(
                    out,
                    "    {} every {:.1} s ± {:.1} s ({} observations)",
                    p.pair,
                    ms_to_secs(p.period_ms),
                    ms_to_secs(p.jitter_ms),
                    p.observations
                )?;
            }
        }
        writeln!(out)
    }
}

#[allow(clippy::cast_precision_loss)]
fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
