//! The report's device section: hosts per type, and the most confident guesses with their
//! evidence.

use std::io::Write;

use serde::Serialize;

use super::{DeviceTable, DeviceType, DeviceView};

/// Devices listed with their evidence in the report.
pub const TOP_DEVICES: usize = 10;
/// Evidence items shown per device in the text report.
const TEXT_EVIDENCE: usize = 4;

/// Hosts of one type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// The type.
    pub device_type: DeviceType,
    /// Local hosts guessed to be of it.
    pub hosts: u64,
}

/// The device section.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceSection {
    /// Hosts per type, most first (types without hosts left out).
    pub counts: Vec<TypeCount>,
    /// Up to [`TOP_DEVICES`] typed hosts, most confident first, with their evidence.
    pub top: Vec<DeviceView>,
}

// Confidences and weights are clamped to [0, 1] when made, never NaN: equality is total.
impl Eq for DeviceSection {}

impl DeviceSection {
    /// The section for `table` (no directory: the standalone engine has none).
    pub fn build(table: &DeviceTable) -> Self {
        let mut views: Vec<DeviceView> = table
            .addresses()
            .filter_map(|ip| table.view(ip, None))
            .collect();
        let mut counts: Vec<TypeCount> = DeviceType::ALL
            .iter()
            .map(|t| TypeCount {
                device_type: *t,
                hosts: views.iter().filter(|v| v.device_type == *t).count() as u64,
            })
            .filter(|c| c.hosts > 0)
            .collect();
        counts.sort_by(|a, b| {
            b.hosts
                .cmp(&a.hosts)
                .then(a.device_type.cmp(&b.device_type))
        });
        views.retain(|v| v.device_type != DeviceType::Unknown);
        views.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| a.ip.cmp(&b.ip))
        });
        views.truncate(TOP_DEVICES);
        Self { counts, top: views }
    }

    /// Writes the section as text.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "Device types")?;
        if self.counts.is_empty() {
            writeln!(out, "  (no local hosts)")?;
            return writeln!(out);
        }
        for c in &self.counts {
            writeln!(out, "  {:<20} {:>7}", c.device_type.as_str(), c.hosts)?;
        }
        if !self.top.is_empty() {
            writeln!(
                out,
                "  {:<40} {:<18} {:>10}  evidence",
                "host", "type", "confidence"
            )?;
        }
        for d in &self.top {
            let evidence: Vec<String> = d
                .evidence
                .iter()
                .filter(|e| e.device_type == d.device_type)
                .take(TEXT_EVIDENCE)
                .map(|e| format!("{}: {}", e.source.as_str(), e.detail))
                .collect();
            writeln!(
                out,
                "  {:<40} {:<18} {:>10.2}  {}",
                d.ip.to_string(),
                d.device_type.as_str(),
                d.confidence,
                evidence.join("; ")
            )?;
        }
        writeln!(out)
    }
}
