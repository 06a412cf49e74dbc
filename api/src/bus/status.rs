//! The reporting side of `nw-status` for sensors and engines (DESIGN.md section 6): what one
//! reporter (a node's sensor, an engine replica) did with each `nw-config` entry it consumes.
//!
//! [`StatusReporter`] keeps the reporter's reports in step with what it applied: it writes a
//! report only when it changed (a snapshot that did not touch an entry writes nothing), deletes
//! the reports of entries that went away, and remembers the entries `watch_config` rejected so
//! they keep their `applied: false` report until they are fixed or deleted. A failed write is
//! logged and retried on the next [`StatusReporter::sync`]; it never stops the consumer.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::kv::{Kv, Rejected};
use crate::crd::{StatusReport, parse_config_key, status_key};

/// One reporter's `nw-status` reports.
pub struct StatusReporter {
    status: Arc<dyn Kv>,
    reporter: String,
    kinds: Vec<String>,
    written: BTreeMap<String, StatusReport>,
    rejected: BTreeMap<String, String>,
}

impl std::fmt::Debug for StatusReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusReporter")
            .field("reporter", &self.reporter)
            .field("kinds", &self.kinds)
            .field("written", &self.written.len())
            .field("rejected", &self.rejected.len())
            .finish_non_exhaustive()
    }
}

/// What one [`StatusReporter::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Reports written (new or changed).
    pub written: usize,
    /// Reports deleted (their entry went away).
    pub deleted: usize,
    /// Writes or deletes that failed (retried on the next sync).
    pub failed: usize,
}

impl StatusReporter {
    /// A reporter named `reporter` (node name or replica name) for entries of `kinds`
    /// (`InterfacePolicy` for a sensor, `AlertExclusion`… for an engine), writing to `status`.
    pub fn new(status: Arc<dyn Kv>, reporter: impl Into<String>, kinds: &[&str]) -> Self {
        Self {
            status,
            reporter: reporter.into(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            written: BTreeMap::new(),
            rejected: BTreeMap::new(),
        }
    }

    /// The reporter name.
    pub fn reporter(&self) -> &str {
        &self.reporter
    }

    fn mine(&self, key: &str) -> bool {
        parse_config_key(key).is_some_and(|k| self.kinds.contains(&k.kind))
    }

    /// Remembers the entries of this reporter's kinds that `watch_config` rejected.
    pub fn note_rejected(&mut self, rejected: &[Rejected]) {
        for r in rejected {
            if self.mine(&r.key) {
                self.rejected.insert(r.key.clone(), r.reason.clone());
            }
        }
    }

    /// Makes `nw-status` hold, for this reporter, exactly `reports` (by `nw-config` key) plus an
    /// `applied: false` report per rejected entry still present in `config` (and not valid
    /// again: `valid(key)`). Keys of other kinds in `reports` are ignored.
    pub async fn sync(
        &mut self,
        config: &dyn Kv,
        mut reports: BTreeMap<String, StatusReport>,
        valid: impl Fn(&str) -> bool,
    ) -> SyncOutcome {
        reports.retain(|k, _| self.mine(k));
        // Rejected entries: gone or fixed entries are forgotten; the others are reported with
        // the generation their (unparsable) value claims, when it says.
        let rejected: Vec<(String, String)> = self
            .rejected
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (key, reason) in rejected {
            if valid(&key) {
                self.rejected.remove(&key);
                continue;
            }
            match config.get(&key).await {
                Ok(Some(value)) => {
                    reports.entry(key).or_insert(StatusReport {
                        generation: claimed_generation(&value),
                        applied: false,
                        message: Some(bounded(&reason)),
                    });
                }
                Ok(None) => {
                    self.rejected.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot read a rejected nw-config entry");
                }
            }
        }
        let mut outcome = SyncOutcome::default();
        for (key, report) in &reports {
            if self.written.get(key) == Some(report) {
                continue;
            }
            let Some(status) = self.status_key(key) else {
                continue;
            };
            let json = match serde_json::to_vec(report) {
                Ok(json) => json,
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "cannot encode a status report");
                    continue;
                }
            };
            match self.status.put(&status, Bytes::from(json)).await {
                Ok(()) => {
                    tracing::info!(
                        key = %key, reporter = %self.reporter, generation = report.generation,
                        applied = report.applied, message = report.message.as_deref().unwrap_or(""),
                        "status reported"
                    );
                    self.written.insert(key.clone(), report.clone());
                    outcome.written += 1;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot write a status report");
                    self.written.remove(key);
                    outcome.failed += 1;
                }
            }
        }
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|k| !reports.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            let Some(status) = self.status_key(&key) else {
                self.written.remove(&key);
                continue;
            };
            match self.status.delete(&status).await {
                Ok(()) => {
                    self.written.remove(&key);
                    outcome.deleted += 1;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cannot delete a status report");
                    outcome.failed += 1;
                }
            }
        }
        outcome
    }

    fn status_key(&self, config_key: &str) -> Option<String> {
        let k = parse_config_key(config_key)?;
        Some(status_key(
            &k.kind,
            k.namespace.as_deref(),
            &k.name,
            &self.reporter,
        ))
    }

    /// The reports this reporter last wrote, by `nw-config` key.
    pub fn written(&self) -> &BTreeMap<String, StatusReport> {
        &self.written
    }
}

/// Longest message written to a report (messages may quote untrusted KV content).
pub const MAX_MESSAGE: usize = 1024;

/// `text` cut to [`MAX_MESSAGE`] bytes at a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The `generation` an entry that did not parse claims (0 when it does not say).
fn claimed_generation(value: &[u8]) -> i64 {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|v| v.get("generation").and_then(serde_json::Value::as_i64))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::MemoryKv;

    fn report(generation: i64, applied: bool) -> StatusReport {
        StatusReport {
            generation,
            applied,
            message: None,
        }
    }

    #[tokio::test]
    async fn writes_changes_only_deletes_gone_and_keeps_rejected() {
        let status = MemoryKv::default();
        let config = MemoryKv::default();
        let mut r = StatusReporter::new(Arc::new(status.clone()), "node.a", &["AlertExclusion"]);
        let key = "AlertExclusion.ns.x".to_owned();
        let mut reports = BTreeMap::from([(key.clone(), report(1, true))]);
        reports.insert("InterfacePolicy._cluster.p".into(), report(1, true));
        let out = r.sync(&config, reports.clone(), |_| false).await;
        assert_eq!(out.written, 1, "other kinds are not reported");
        let got = status
            .get("AlertExclusion.ns.x.node_a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<StatusReport>(&got).unwrap(),
            report(1, true)
        );
        assert_eq!(r.sync(&config, reports, |_| false).await.written, 0);

        config
            .put(
                "AlertExclusion.ns.bad",
                Bytes::from_static(br#"{"generation":7,"spec":1}"#),
            )
            .await
            .unwrap();
        r.note_rejected(&[Rejected {
            key: "AlertExclusion.ns.bad".into(),
            reason: "not a valid entry".into(),
        }]);
        let out = r.sync(&config, BTreeMap::new(), |_| false).await;
        assert_eq!((out.written, out.deleted), (1, 1));
        assert!(
            status
                .get("AlertExclusion.ns.x.node_a")
                .await
                .unwrap()
                .is_none()
        );
        let bad: StatusReport = serde_json::from_slice(
            &status
                .get("AlertExclusion.ns.bad.node_a")
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!((bad.generation, bad.applied), (7, false));
        // Deleted from nw-config: the report goes too.
        config.delete("AlertExclusion.ns.bad").await.unwrap();
        assert_eq!(r.sync(&config, BTreeMap::new(), |_| false).await.deleted, 1);
        assert!(r.written().is_empty());
    }

    #[test]
    fn messages_are_bounded() {
        let long = "é".repeat(MAX_MESSAGE);
        let b = bounded(&long);
        assert!(b.len() <= MAX_MESSAGE + "…".len());
        assert_eq!(bounded("short"), "short");
    }
}
