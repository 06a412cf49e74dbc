//! Running totals per L4 protocol and per L7 application protocol.

use std::collections::HashMap;

use serde::Serialize;

use crate::hosts::Counters;

/// Distinct L7 names kept; further names are folded into `Other`.
pub const MAX_L7_NAMES: usize = 1024;

/// Totals of one protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProtocolTotalsRow {
    /// `TCP`, `UDP`, ... or nDPI's `TLS.Google`, `Unknown`.
    pub name: String,
    /// Flows.
    pub flows: u64,
    /// Packets, both directions.
    pub packets: u64,
    /// Bytes, both directions.
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    flows: u64,
    packets: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, delta: Counters, new_flow: bool) {
        self.flows += u64::from(new_flow);
        self.packets = self.packets.saturating_add(delta.packets());
        self.bytes = self.bytes.saturating_add(delta.bytes());
    }
}

/// Totals per L4 protocol number and per L7 name.
#[derive(Default)]
pub struct ProtocolTotals {
    l4: HashMap<u8, Totals>,
    l7: HashMap<String, Totals>,
}

impl ProtocolTotals {
    /// Adds a client-side delta under L4 protocol `l4` (its flow counted when `new_flow`).
    pub fn add_l4(&mut self, l4: u8, delta: Counters, new_flow: bool) {
        self.l4.entry(l4).or_default().add(delta, new_flow);
    }

    /// Adds a client-side delta under L7 name `name` (its flow counted when `count_flow`).
    pub fn add_l7(&mut self, name: &str, delta: Counters, count_flow: bool) {
        if name.is_empty() || (delta == Counters::default() && !count_flow) {
            return;
        }
        if let Some(t) = self.l7.get_mut(name) {
            t.add(delta, count_flow);
        } else if self.l7.len() < MAX_L7_NAMES {
            self.l7
                .entry(name.to_owned())
                .or_default()
                .add(delta, count_flow);
        } else {
            self.l7
                .entry("Other".to_owned())
                .or_default()
                .add(delta, count_flow);
        }
    }

    /// L4 rows, most bytes first.
    pub fn l4_rows(&self) -> Vec<ProtocolTotalsRow> {
        let rows = self
            .l4
            .iter()
            .map(|(p, t)| row(netwarden_api::flow::proto::name(*p).into_owned(), *t));
        sorted(rows.collect())
    }

    /// L7 rows, most bytes first.
    pub fn l7_rows(&self) -> Vec<ProtocolTotalsRow> {
        sorted(self.l7.iter().map(|(n, t)| row(n.clone(), *t)).collect())
    }
}

fn row(name: String, t: Totals) -> ProtocolTotalsRow {
    ProtocolTotalsRow {
        name,
        flows: t.flows,
        packets: t.packets,
        bytes: t.bytes,
    }
}

fn sorted(mut rows: Vec<ProtocolTotalsRow>) -> Vec<ProtocolTotalsRow> {
    rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    rows
}
