//! `standalone --config DIR`: the directory plays the operator. Every `*.yaml`/`*.yml` file
//! (name order, several documents each) is read; each document of a Netwarden kind becomes the
//! `nw-config` entry the operator would publish ([`entry_from_manifest`]: same validation, same
//! key) in an in-process bucket, which the engine follows through the very code of a cluster.
//!
//! The directory is polled ([`POLL_EVERY`]): when a file's name, size or modification time
//! changes, everything is read again and only the keys whose entry changed are written (or
//! deleted), so an untouched exclusion keeps its report. A document that does not validate is
//! still written under its key, as it is, so the engine rejects it and reports why, as it does
//! for a bad entry in a cluster — unless an earlier version of the same object was valid: then,
//! as the operator does, the last valid version stays in force and the error is logged.
//! `kind: Analysis` and unknown kinds belong to other readers.
//! Bounded: files over [`MAX_FILE_BYTES`] and documents past [`MAX_DOCUMENTS`] are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use netwarden_api::bus::{Kv, MemoryKv};
use netwarden_api::crd::{KINDS, config_key, entry_from_manifest};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// How often the directory is checked for changes.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Larger files are skipped (and logged).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Documents read over the whole directory at most.
pub const MAX_DOCUMENTS: usize = 10_000;

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The directory mirrored into a bucket.
pub struct ConfigDir {
    dir: PathBuf,
    kv: MemoryKv,
    seen: Option<Fingerprint>,
    entries: BTreeMap<String, Bytes>,
}

impl std::fmt::Debug for ConfigDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDir")
            .field("dir", &self.dir)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Problems of one read: `(file, message)`.
pub type Problems = Vec<(String, String)>;

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The entry of one document: the operator's, or (when it does not validate but names its
/// kind and name) the document as it is under its key, for the consumer to reject and report.
fn entry_of(doc: &serde_json::Value) -> Result<(String, Vec<u8>), String> {
    let mut doc = doc.clone();
    if doc.get("apiVersion").is_none()
        && let Some(map) = doc.as_object_mut()
    {
        // The engine's YAML has long accepted documents without it; they mean this version.
        map.insert(
            "apiVersion".into(),
            format!(
                "{}/{}",
                netwarden_api::crd::GROUP,
                netwarden_api::crd::VERSION
            )
            .into(),
        );
    }
    match entry_from_manifest(&doc) {
        Ok(entry) => Ok(entry),
        Err(reason) => {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let Some(name) = doc["metadata"]["name"].as_str().filter(|n| !n.is_empty()) else {
                return Err(reason);
            };
            let namespace = (kind != "InterfacePolicy")
                .then(|| doc["metadata"]["namespace"].as_str().unwrap_or("default"));
            let raw = serde_json::json!({
                "apiVersion": doc["apiVersion"], "kind": kind, "namespace": namespace,
                "name": name, "generation": doc["metadata"]["generation"].as_i64().unwrap_or(1),
                "spec": doc["spec"],
            });
            warn!(kind, name, %reason, "invalid configuration document");
            Ok((
                config_key(kind, namespace, name),
                raw.to_string().into_bytes(),
            ))
        }
    }
}

/// Whether `value` is an entry the consumers accept under `key`.
fn valid(key: &str, value: &Bytes) -> bool {
    netwarden_api::bus::ConfigSnapshot::default()
        .apply(&netwarden_api::bus::KvChange::Put {
            key: key.to_owned(),
            value: value.clone(),
        })
        .is_ok()
}

/// Reads every entry of `dir`.
pub fn read_dir(dir: &Path) -> (BTreeMap<String, Bytes>, Problems) {
    let mut entries = BTreeMap::new();
    let mut problems = Vec::new();
    let files = match yaml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            problems.push((dir.display().to_string(), e.to_string()));
            return (entries, problems);
        }
    };
    let mut documents = 0usize;
    for file in files {
        let name = file.display().to_string();
        let size = std::fs::metadata(&file).map_or(0, |m| m.len());
        if size > MAX_FILE_BYTES {
            problems.push((name, format!("{size} bytes: larger than {MAX_FILE_BYTES}")));
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push((name, e.to_string()));
                continue;
            }
        };
        let docs: Vec<serde_json::Value> = match serde_saphyr::from_multiple(&text) {
            Ok(d) => d,
            Err(e) => {
                problems.push((name, format!("not YAML: {e}")));
                continue;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            let Some(kind) = doc.get("kind").and_then(|k| k.as_str()) else {
                continue;
            };
            if !KINDS.contains(&kind) {
                continue;
            }
            documents += 1;
            if documents > MAX_DOCUMENTS {
                problems.push((name.clone(), format!("more than {MAX_DOCUMENTS} documents")));
                return (entries, problems);
            }
            match entry_of(doc) {
                Ok((key, json)) => {
                    if entries.insert(key.clone(), Bytes::from(json)).is_some() {
                        problems
                            .push((name.clone(), format!("{key} defined twice; the last wins")));
                    }
                }
                Err(reason) => problems.push((format!("{name}#{i}"), reason)),
            }
        }
    }
    (entries, problems)
}

/// The `kind: Analysis` document of `dir` (defaults when there is none), blocklists loaded:
/// what `standalone --config` reads once at start (changing it resets scores, so it is not
/// followed live).
pub fn analysis_config(
    dir: &Path,
) -> Result<crate::alerts::AnalysisConfig, crate::exclusions::LoadError> {
    let mut config = None;
    for f in crate::exclusions::yaml_files(dir)? {
        let path = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| crate::exclusions::LoadError {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(c) = crate::alerts::config::parse_analysis(&path, &text)? {
            if config.is_some() {
                return Err(crate::exclusions::LoadError {
                    path,
                    message: "a second `kind: Analysis` document".into(),
                });
            }
            config = Some(c);
        }
    }
    let mut config: crate::alerts::AnalysisConfig = config.unwrap_or_default();
    config.checks = config.checks.with_blocklists_loaded();
    Ok(config)
}

fn fingerprint(dir: &Path) -> Fingerprint {
    yaml_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect()
}

impl ConfigDir {
    /// `dir` mirrored into `kv` (nothing read yet: call [`ConfigDir::sync`]).
    pub fn new(dir: impl Into<PathBuf>, kv: MemoryKv) -> Self {
        Self {
            dir: dir.into(),
            kv,
            seen: None,
            entries: BTreeMap::new(),
        }
    }

    /// Reads the directory again if it changed and writes what differs. Whether it changed.
    pub async fn sync(&mut self) -> bool {
        let now = fingerprint(&self.dir);
        if self.seen.as_ref() == Some(&now) {
            return false;
        }
        self.seen = Some(now);
        let (mut entries, problems) = read_dir(&self.dir);
        for (file, message) in &problems {
            error!(file = %file, %message, "configuration file problem");
        }
        // As the operator does: an invalid edit of an object that was valid keeps the last valid
        // version in force (a typo must not silently drop an exclusion); the error is logged.
        for (key, value) in &mut entries {
            if let Some(old) = self.entries.get(key)
                && old != value
                && valid(key, old)
                && !valid(key, value)
            {
                error!(key = %key, "invalid edit: keeping the last valid version in force");
                *value = old.clone();
            }
        }
        let mut changed = 0usize;
        for (key, value) in &entries {
            if self.entries.get(key) != Some(value) {
                changed += 1;
                if let Err(e) = self.kv.put(key, value.clone()).await {
                    warn!(key = %key, error = %e, "cannot store a configuration entry");
                }
            }
        }
        for key in self.entries.keys().filter(|k| !entries.contains_key(*k)) {
            changed += 1;
            if let Err(e) = self.kv.delete(key).await {
                warn!(key = %key, error = %e, "cannot remove a configuration entry");
            }
        }
        if changed > 0 {
            info!(dir = %self.dir.display(), entries = entries.len(), changed, "configuration directory read");
        } else {
            debug!(dir = %self.dir.display(), "configuration directory touched, nothing changed");
        }
        self.entries = entries;
        true
    }

    /// Polls every [`POLL_EVERY`] until `shutdown`.
    pub async fn watch(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => { self.sync().await; }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netwarden_api::bus::ConfigSnapshot;
    use netwarden_api::bus::KvChange;

    const GOOD: &str = "kind: AlertExclusion\nmetadata: {name: scanner}\nspec: {hosts: [{cidr: 10.9.0.0/16}], alertTypes: [syn_scan]}\n---\nkind: Analysis\nspec: {}\n";
    const BAD: &str = "apiVersion: netwarden.io/v1alpha1\nkind: AlertExclusion\nmetadata: {name: bad, namespace: lab}\nspec: {hosts: [{cidr: 10.0.0.0/33}], alertTypes: [all]}\n";

    #[tokio::test]
    async fn a_directory_becomes_entries_and_changes_become_puts_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.yml"), BAD).unwrap();
        std::fs::write(dir.path().join("c.yaml"), "{ not: [yaml").unwrap();
        let kv = MemoryKv::default();
        let mut cd = ConfigDir::new(dir.path(), kv.clone());
        assert!(cd.sync().await);
        assert!(!cd.sync().await, "nothing changed");
        let all = kv.entries(">").await.unwrap();
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["AlertExclusion.default.scanner", "AlertExclusion.lab.bad"]
        );
        // The consumer sees the good one and rejects the bad one with the field's message.
        let mut snapshot = ConfigSnapshot::default();
        let mut rejected = Vec::new();
        for (key, value) in all {
            if let Err(r) = snapshot.apply(&KvChange::Put { key, value }) {
                rejected.push(r);
            }
        }
        assert_eq!(snapshot.alert_exclusions.len(), 1);
        assert!(
            rejected[0].reason.contains("spec.hosts[0].cidr"),
            "{rejected:?}"
        );

        std::fs::remove_file(dir.path().join("b.yml")).unwrap();
        assert!(cd.sync().await);
        assert_eq!(kv.entries(">").await.unwrap().len(), 1);
    }
}
