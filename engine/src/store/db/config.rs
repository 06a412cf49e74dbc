//! Where the persistent store lives and how much it keeps (`--data DIR` and the retention flags).

use std::path::PathBuf;

use serde::Deserialize;

/// Alert rows kept on disk by default.
pub const DEFAULT_MAX_ALERTS: u64 = 1_000_000;
/// Ended flows kept on disk by default.
pub const DEFAULT_MAX_FLOWS: u64 = 2_000_000;
/// Age kept by default: 7 days of flow time, seconds.
pub const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;
/// Database size kept by default: 2 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// Writes waiting for the writer thread before new ones are dropped (and counted).
pub const DEFAULT_QUEUE: usize = 65_536;
/// The database file's name inside the data directory.
pub const DB_FILE: &str = "netwarden.db";

/// The persistent store's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The data directory (created when missing); the database is `DIR/netwarden.db`.
    pub dir: PathBuf,
    /// Most alert rows kept (oldest rows deleted first).
    pub max_alerts: u64,
    /// Most ended flows kept (oldest deleted first).
    pub max_flows: u64,
    /// Rows whose last seen is older than the newest row by more than this are deleted
    /// (seconds of flow time; engaged host alerts stay).
    pub max_age_secs: u64,
    /// Most bytes of live database pages; over it, the oldest flows (then alerts) go first.
    pub max_bytes: u64,
    /// Writes queued for the writer thread; when full, new writes are dropped and counted.
    pub queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("netwarden-data"),
            max_alerts: DEFAULT_MAX_ALERTS,
            max_flows: DEFAULT_MAX_FLOWS,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            max_bytes: DEFAULT_MAX_BYTES,
            queue: DEFAULT_QUEUE,
        }
    }
}

impl StoreConfig {
    /// The default configuration in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }
}

/// Parses a duration: a number of seconds, or a number with `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 3600, 90m, 12h, 7d)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("invalid duration unit in {s:?} (s, m, h, d or w)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Parses a size: bytes, or a number with `K`, `M`, `G`, `T` (powers of 1024; `KiB`, `MB`… accepted).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 500M, 2G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("invalid size unit in {s:?} (K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_secs("3600").unwrap(), 3600);
        assert_eq!(parse_duration_secs("7d").unwrap(), 7 * 86_400);
        assert_eq!(parse_duration_secs("90m").unwrap(), 5400);
        assert!(parse_duration_secs("7 days").is_err());
        assert!(parse_duration_secs("d").is_err());
        assert!(parse_duration_secs("99999999999999999999w").is_err());
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("").is_err());
    }
}
