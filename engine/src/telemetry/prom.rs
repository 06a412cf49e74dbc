//! The business metrics on `/metrics`: a `prometheus_client` collector that takes a
//! [`Snapshot`] at scrape time.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::snapshot::{Kind, Snapshot};
use crate::Engine;

/// Prefix of every business metric (`netwarden_host_bytes_total`).
pub const PREFIX: &str = "netwarden";

/// Encodes the business metrics of the engine in `slot` (nothing until it is set).
pub struct BusinessCollector {
    /// The engine, set once it is launched.
    pub slot: Arc<OnceLock<Engine>>,
    /// Hosts exported (top N).
    pub top: usize,
}

impl std::fmt::Debug for BusinessCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusinessCollector")
            .field("top", &self.top)
            .field("attached", &self.slot.get().is_some())
            .finish()
    }
}

/// `host.bytes` → `netwarden_host_bytes`.
pub fn prom_name(name: &str) -> String {
    format!("{PREFIX}_{}", name.replace('.', "_"))
}

impl Collector for BusinessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(engine) = self.slot.get() else {
            return Ok(());
        };
        let snapshot = Snapshot::take(engine, self.top);
        for family in snapshot.families() {
            let name = prom_name(family.name);
            let unit = (family.unit == "By").then_some(prometheus_client::registry::Unit::Bytes);
            let (kind, name) = match family.kind {
                Kind::Counter => (MetricType::Counter, name),
                Kind::Gauge => (MetricType::Gauge, name),
            };
            // A unit suffix is appended by the encoder (`_bytes`): strip ours to avoid `_bytes_bytes`.
            let name = match &unit {
                Some(_) => name
                    .strip_suffix("_bytes")
                    .map_or(name.clone(), str::to_owned),
                None => name,
            };
            let mut metric = encoder.encode_descriptor(&name, family.help, unit.as_ref(), kind)?;
            for (labels, value) in &family.points {
                let mut m = metric.encode_family(labels)?;
                match family.kind {
                    Kind::Counter => m.encode_counter::<NoLabelSet, _, u64>(value, None)?,
                    Kind::Gauge => m.encode_gauge(value)?,
                }
            }
        }
        Ok(())
    }
}
