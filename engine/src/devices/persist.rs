//! Manual device types that survive a restart: with `--data DIR` the overrides set through
//! `PUT /api/v2/devices/{ip}/type` are written to `DIR/device-types.json` (replaced atomically:
//! a temporary file renamed over it) and read back at start.
//!
//! The file is ours (the SQLite store's schema is not touched). Must not: trust it — it is
//! bounded ([`MAX_FILE_BYTES`], the table's `max_overrides`), an entry with an unknown type or
//! a bad address is skipped and counted, a file that does not parse is reported and the engine
//! starts without overrides (rather than not at all); the next change replaces it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DeviceType;
use super::table::DeviceTable;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "device-types.json";
/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverridesFile {
    version: u32,
    overrides: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    ip: String,
    #[serde(rename = "type")]
    device_type: String,
}

/// What loading found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Overrides applied.
    pub applied: usize,
    /// Entries skipped (bad address, unknown type, over the table's bound).
    pub skipped: usize,
}

/// The overrides file of data directory `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the overrides of `path` into `table` (a missing file is no override) and makes
/// `table` write them back there on every change.
pub fn attach(table: &mut DeviceTable, path: PathBuf) -> Result<Loaded, String> {
    let loaded = load(table, &path);
    table.set_overrides_file(Some(path));
    loaded
}

/// [`attach`] for the engine's device table with the overrides file of data directory `dir`
/// (logged; a bad file leaves the engine without overrides).
pub fn attach_engine(engine: &crate::Engine, dir: &Path) {
    let mut state = engine
        .state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match attach(&mut state.devices, path_in(dir)) {
        Ok(l) if l.applied + l.skipped > 0 => {
            tracing::info!(
                applied = l.applied,
                skipped = l.skipped,
                "manual device types read back"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "manual device types not read back"),
    }
}

fn load(table: &mut DeviceTable, path: &Path) -> Result<Loaded, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes, more than {MAX_FILE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: OverridesFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Loaded::default();
    for e in file.overrides {
        let ip = e.ip.parse::<IpAddr>().ok();
        let t = DeviceType::parse(&e.device_type);
        match (ip, t) {
            (Some(ip), Some(t)) if table.set_override(ip, Some(t)) => out.applied += 1,
            _ => out.skipped += 1,
        }
    }
    Ok(out)
}

/// Writes every override of `table` to `path` (a temporary file renamed over it).
pub fn save(table: &DeviceTable, path: &Path) -> Result<(), String> {
    let mut overrides: Vec<(IpAddr, DeviceType)> = table.overrides().collect();
    overrides.sort_unstable_by_key(|(ip, _)| *ip);
    let file = OverridesFile {
        version: 1,
        overrides: overrides
            .into_iter()
            .map(|(ip, t)| Entry {
                ip: ip.to_string(),
                device_type: t.as_str().to_owned(),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::devices::table::DeviceConfig;

    #[test]
    fn overrides_round_trip_and_bad_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let mut t = DeviceTable::new(DeviceConfig::default());
        assert_eq!(attach(&mut t, path.clone()).unwrap(), Loaded::default());
        let ip: IpAddr = "192.168.1.20".parse().unwrap();
        t.set_override(ip, Some(DeviceType::Printer));
        save(&t, &path).unwrap();
        let mut again = DeviceTable::new(DeviceConfig::default());
        assert_eq!(
            attach(&mut again, path.clone()).unwrap(),
            Loaded {
                applied: 1,
                skipped: 0
            }
        );
        assert_eq!(again.override_of(ip), Some(DeviceType::Printer));
        std::fs::write(
            &path,
            r#"{"version": 1, "overrides": [{"ip": "10.0.0.1", "type": "toaster"},
                {"ip": "not an address", "type": "printer"}, {"ip": "10.0.0.2", "type": "nas"}]}"#,
        )
        .unwrap();
        let mut third = DeviceTable::new(DeviceConfig::default());
        assert_eq!(
            attach(&mut third, path.clone()).unwrap(),
            Loaded {
                applied: 1,
                skipped: 2
            }
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert!(attach(&mut DeviceTable::new(DeviceConfig::default()), path).is_err());
    }
}
