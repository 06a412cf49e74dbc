//! Reloading the threat-intelligence lists while the sensor runs: a [`ListWatcher`] notices
//! that a list file of a folder changed (size or modification time; added or removed files
//! count) and swaps the engine's lists with [`Dpi::set_lists`]; flows exported from then on
//! are judged against the new lists. [`watch`] runs one on a thread of its own, polling.
//!
//! A folder that cannot be read keeps the lists in force (the error is logged and counted,
//! and the next poll tries again). Must not: block the packet path (only the swap takes a
//! write lock, for the time of a pointer store).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::{Dpi, Lists, lists};

/// How often [`watch`] looks at the folder.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// Size and modification time of each list file (`None`: absent).
type Stamp = Vec<Option<(u64, SystemTime)>>;

fn stamp(dir: &Path) -> Stamp {
    lists::FILES
        .iter()
        .map(|f| {
            let m = std::fs::metadata(dir.join(f)).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

/// Counters of a watcher (also logged).
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Successful reloads after the first load.
    pub reloads: AtomicU64,
    /// Reloads that failed (the previous lists stayed).
    pub failures: AtomicU64,
}

/// Watches one folder of list files for changes.
#[derive(Debug)]
pub struct ListWatcher {
    dir: PathBuf,
    stamp: Stamp,
    stats: Arc<ReloadStats>,
}

impl ListWatcher {
    /// Loads the lists of `dir` (errors are returned: a sensor asked for lists it cannot read
    /// should not start without them) and remembers their state.
    ///
    /// # Errors
    /// The folder's files cannot be read.
    pub fn load(dir: &Path) -> std::io::Result<(Self, Lists)> {
        let stamp = stamp(dir);
        let lists = Lists::load_dir(dir)?;
        let watcher = Self {
            dir: dir.to_owned(),
            stamp,
            stats: Arc::default(),
        };
        Ok((watcher, lists))
    }

    /// The watcher's counters.
    pub fn stats(&self) -> Arc<ReloadStats> {
        Arc::clone(&self.stats)
    }

    /// Reloads into `dpi` if a file changed since the last load; returns whether it did.
    ///
    /// # Errors
    /// A changed file could not be read (the lists in force stay; the next call retries).
    pub fn poll(&mut self, dpi: &Dpi) -> std::io::Result<bool> {
        let now = stamp(&self.dir);
        if now == self.stamp {
            return Ok(false);
        }
        match Lists::load_dir(&self.dir) {
            Ok(lists) => {
                tracing::info!(
                    dir = %self.dir.display(),
                    skipped_lines = lists.skipped,
                    "DPI lists reloaded"
                );
                dpi.set_lists(lists);
                self.stamp = now;
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Builds an engine with the lists of `dir` and reloads them every `interval` on a thread of
/// its own while the engine lives (the thread holds it weakly and ends after it is dropped).
///
/// # Errors
/// The lists cannot be read, or the thread cannot be started.
pub fn watch(dpi: Dpi, dir: &Path, interval: Duration) -> std::io::Result<Arc<Dpi>> {
    let (mut watcher, lists) = ListWatcher::load(dir)?;
    tracing::info!(dir = %dir.display(), skipped_lines = lists.skipped, "DPI lists loaded");
    let dpi = Arc::new(dpi.with_lists(lists));
    let weak: Weak<Dpi> = Arc::downgrade(&dpi);
    std::thread::Builder::new()
        .name("dpi-lists".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(dpi) = weak.upgrade() else { break };
                if let Err(e) = watcher.poll(&dpi) {
                    tracing::warn!(
                        dir = %watcher.dir.display(),
                        error = %e,
                        "DPI lists not reloaded; the previous ones stay"
                    );
                }
            }
        })?;
    Ok(dpi)
}

/// The engine a sensor command uses: the process's default one without `dir`, else one with
/// the lists of `dir`, reloaded on change every [`DEFAULT_INTERVAL`].
///
/// # Errors
/// The lists cannot be read.
pub fn engine(dir: Option<&Path>) -> std::io::Result<Option<crate::flow::SharedDpi>> {
    match dir {
        None => Ok(Some(crate::flow::SharedDpi::default_engine())),
        Some(dir) => Ok(Some(crate::flow::SharedDpi(watch(
            Dpi::new(super::DpiConfig::default()),
            dir,
            DEFAULT_INTERVAL,
        )?))),
    }
}

#[cfg(test)]
mod tests;
