//! Key-value buckets (`nw-config`, `nw-status`, …) over NATS JetStream KV or in-process, and the
//! typed config watcher every consumer uses: "watch `nw-config` and give me a validated
//! snapshot on change".
//!
//! [`Kv`] is the transport ([`NatsKv`] or [`MemoryKv`]); [`ConfigSnapshot`] is pure: it folds
//! [`KvChange`]s into typed, validated specs per kind and reports entries it had to ignore
//! (never panics on a malformed entry). [`watch_config`] glues the two.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, future::BoxFuture};
use serde::de::DeserializeOwned;

use crate::crd::{
    AlertExclusionSpec, ConfigEntry, InterfacePolicySpec, NotificationEndpointSpec,
    ServicePolicySpec, Validate, validate::describe,
};
use crate::names::subject_matches;
use crate::{Error, Result};

/// One change of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChange {
    /// `key` now holds `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// `key` was deleted or purged.
    Delete {
        /// The key.
        key: String,
    },
}

/// A stream of changes: first the current value of every matching key, then changes as they happen.
pub type KvStream = Pin<Box<dyn Stream<Item = KvChange> + Send>>;

/// A key-value bucket.
pub trait Kv: Send + Sync {
    /// Writes `value` under `key`.
    fn put<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<()>>;
    /// Deletes `key` (watchers see a [`KvChange::Delete`]); deleting a missing key is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;
    /// The current value of `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    /// Every key matching `filter` (NATS wildcards) with its value, sorted by key.
    fn entries<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<(String, Bytes)>>>;
    /// Current values of the keys matching `filter`, then every change.
    fn watch<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<KvStream>>;
}

fn kv_error(bucket: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Kv {
        bucket: bucket.to_string(),
        reason: format!("{what}: {e}"),
    }
}

/// A JetStream KV bucket.
#[derive(Clone)]
pub struct NatsKv {
    store: async_nats::jetstream::kv::Store,
    bucket: String,
}

impl NatsKv {
    /// Opens `bucket`, creating it (history 5, file storage) when it does not exist.
    pub async fn open(client: async_nats::Client, bucket: &str) -> Result<Self> {
        let js = async_nats::jetstream::new(client);
        let store = match js.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_or_update_key_value(async_nats::jetstream::kv::Config {
                    bucket: bucket.to_string(),
                    history: 5,
                    ..Default::default()
                })
                .await
                .map_err(|e| kv_error(bucket, "create", e))?,
        };
        Ok(Self {
            store,
            bucket: bucket.to_string(),
        })
    }
}

impl Kv for NatsKv {
    fn put<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<()>> {
        async move {
            self.store
                .put(key, value)
                .await
                .map(|_| ())
                .map_err(|e| kv_error(&self.bucket, "put", e))
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            self.store
                .delete(key)
                .await
                .map_err(|e| kv_error(&self.bucket, "delete", e))
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        async move {
            self.store
                .get(key)
                .await
                .map_err(|e| kv_error(&self.bucket, "get", e))
        }
        .boxed()
    }

    fn entries<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<(String, Bytes)>>> {
        async move {
            let keys = self
                .store
                .keys()
                .await
                .map_err(|e| kv_error(&self.bucket, "keys", e))?;
            let keys: Vec<String> = keys
                .filter_map(|k| async move { k.ok() })
                .filter(|k| std::future::ready(subject_matches(filter, k)))
                .collect()
                .await;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(value) = self
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| kv_error(&self.bucket, "get", e))?
                {
                    out.push((key, value));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        }
        .boxed()
    }

    fn watch<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<KvStream>> {
        async move {
            let watch = self
                .store
                .watch_with_history(filter)
                .await
                .map_err(|e| kv_error(&self.bucket, "watch", e))?;
            let bucket = self.bucket.clone();
            let stream = watch.filter_map(move |entry| {
                let change = match entry {
                    Ok(e) => Some(match e.operation {
                        async_nats::jetstream::kv::Operation::Put => KvChange::Put {
                            key: e.key,
                            value: e.value,
                        },
                        _ => KvChange::Delete { key: e.key },
                    }),
                    Err(err) => {
                        tracing::warn!(bucket = %bucket, error = %err, "KV watch error");
                        None
                    }
                };
                std::future::ready(change)
            });
            Ok(Box::pin(stream) as KvStream)
        }
        .boxed()
    }
}

/// An in-process bucket (standalone mode and tests), with the same watch semantics.
#[derive(Clone)]
pub struct MemoryKv {
    inner: Arc<Mutex<BTreeMap<String, Bytes>>>,
    changes: tokio::sync::broadcast::Sender<KvChange>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl MemoryKv {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Kv for MemoryKv {
    fn put<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<()>> {
        self.map().insert(key.to_string(), value.clone());
        let _ = self.changes.send(KvChange::Put {
            key: key.to_string(),
            value,
        });
        futures::future::ready(Ok(())).boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        if self.map().remove(key).is_some() {
            let _ = self.changes.send(KvChange::Delete {
                key: key.to_string(),
            });
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        futures::future::ready(Ok(self.map().get(key).cloned())).boxed()
    }

    fn entries<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<Vec<(String, Bytes)>>> {
        let out = self
            .map()
            .iter()
            .filter(|(k, _)| subject_matches(filter, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        futures::future::ready(Ok(out)).boxed()
    }

    fn watch<'a>(&'a self, filter: &'a str) -> BoxFuture<'a, Result<KvStream>> {
        // Subscribe before reading the current values so no change falls in between.
        let rx = self.changes.subscribe();
        let current: Vec<KvChange> = self
            .map()
            .iter()
            .filter(|(k, _)| subject_matches(filter, k))
            .map(|(k, v)| KvChange::Put {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let filter = filter.to_string();
        let live = tokio_stream_from(rx).filter(move |c| {
            let key = match c {
                KvChange::Put { key, .. } | KvChange::Delete { key } => key,
            };
            std::future::ready(subject_matches(&filter, key))
        });
        futures::future::ready(Ok(
            Box::pin(futures::stream::iter(current).chain(live)) as KvStream
        ))
        .boxed()
    }
}

fn tokio_stream_from(
    rx: tokio::sync::broadcast::Receiver<KvChange>,
) -> impl Stream<Item = KvChange> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(change) => return Some((change, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "in-process KV watcher lagged");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// A `nw-config` entry that was ignored, and why (for a log line and a `nw-status` report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The key.
    pub key: String,
    /// Why it was ignored.
    pub reason: String,
}

/// Typed, validated view of `nw-config`, keyed by `nw-config` key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSnapshot {
    /// `AlertExclusion` entries.
    pub alert_exclusions: BTreeMap<String, ConfigEntry<AlertExclusionSpec>>,
    /// `NotificationEndpoint` entries.
    pub notification_endpoints: BTreeMap<String, ConfigEntry<NotificationEndpointSpec>>,
    /// `InterfacePolicy` entries.
    pub interface_policies: BTreeMap<String, ConfigEntry<InterfacePolicySpec>>,
    /// `ServicePolicy` entries.
    pub service_policies: BTreeMap<String, ConfigEntry<ServicePolicySpec>>,
}

fn decode<S: DeserializeOwned + Validate>(
    key: &str,
    value: &[u8],
) -> std::result::Result<ConfigEntry<S>, String> {
    let entry: ConfigEntry<S> =
        serde_json::from_slice(value).map_err(|e| format!("not a valid entry: {e}"))?;
    let errors = entry.spec.validate();
    if !errors.is_empty() {
        return Err(format!("invalid spec: {}", describe(&errors)));
    }
    if crate::crd::config_key(&entry.kind, entry.namespace.as_deref(), &entry.name) != key {
        return Err(format!(
            "entry names {}/{:?}/{} but is stored under another key",
            entry.kind, entry.namespace, entry.name
        ));
    }
    Ok(entry)
}

impl ConfigSnapshot {
    /// Folds one change in. A malformed or invalid entry removes what the key held before and
    /// is returned as [`Rejected`]; keys of unknown kinds are ignored (newer operators).
    pub fn apply(&mut self, change: &KvChange) -> std::result::Result<(), Rejected> {
        let key = match change {
            KvChange::Put { key, .. } | KvChange::Delete { key } => key.as_str(),
        };
        let kind = key.split('.').next().unwrap_or_default();
        macro_rules! fold {
            ($map:ident) => {{
                self.$map.remove(key);
                if let KvChange::Put { value, .. } = change {
                    let entry = decode(key, value).map_err(|reason| Rejected {
                        key: key.to_string(),
                        reason,
                    })?;
                    self.$map.insert(key.to_string(), entry);
                }
            }};
        }
        match kind {
            "AlertExclusion" => fold!(alert_exclusions),
            "NotificationEndpoint" => fold!(notification_endpoints),
            "InterfacePolicy" => fold!(interface_policies),
            "ServicePolicy" => fold!(service_policies),
            _ => {}
        }
        Ok(())
    }
}

/// Watches `nw-config` and yields the whole validated snapshot after each change (bursts that
/// are already queued are folded into one snapshot). Rejected entries are logged and passed on
/// so the caller can report them to `nw-status`.
pub async fn watch_config(
    kv: &dyn Kv,
) -> Result<impl Stream<Item = (ConfigSnapshot, Vec<Rejected>)> + Send + use<>> {
    let changes = kv.watch(">").await?;
    let stream = futures::stream::unfold(
        (changes, ConfigSnapshot::default()),
        |(mut changes, mut snapshot)| async move {
            let first = changes.next().await?;
            let mut rejected = Vec::new();
            let mut fold = |change: KvChange| {
                if let Err(r) = snapshot.apply(&change) {
                    tracing::error!(key = %r.key, reason = %r.reason, "ignoring nw-config entry");
                    rejected.push(r);
                }
            };
            fold(first);
            while let Some(Some(change)) = changes.next().now_or_never() {
                fold(change);
            }
            Some(((snapshot.clone(), rejected), (changes, snapshot)))
        },
    );
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, cidr: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion", "namespace": "payments",
                "name": name, "generation": 1,
                "spec": {"hosts": [{"cidr": cidr}], "alertTypes": ["all"]}
            })
            .to_string(),
        )
    }

    #[tokio::test]
    async fn memory_kv_watch_gives_current_then_changes() {
        let kv = MemoryKv::default();
        kv.put("AlertExclusion.payments.a", entry("a", "10.0.0.0/8"))
            .await
            .unwrap();
        let updates = watch_config(&kv).await.unwrap();
        futures::pin_mut!(updates);
        let (snapshot, rejected) = updates.next().await.unwrap();
        assert_eq!(snapshot.alert_exclusions.len(), 1);
        assert!(rejected.is_empty());
        kv.put("AlertExclusion.payments.b", entry("b", "not-a-cidr"))
            .await
            .unwrap();
        let (snapshot, rejected) = updates.next().await.unwrap();
        assert_eq!(
            snapshot.alert_exclusions.len(),
            1,
            "the invalid entry is not in the snapshot"
        );
        assert_eq!(rejected[0].key, "AlertExclusion.payments.b");
        assert!(
            rejected[0].reason.contains("spec.hosts[0].cidr"),
            "{}",
            rejected[0].reason
        );
        kv.delete("AlertExclusion.payments.a").await.unwrap();
        let (snapshot, _) = updates.next().await.unwrap();
        assert!(snapshot.alert_exclusions.is_empty());
        assert_eq!(kv.entries("AlertExclusion.>").await.unwrap().len(), 1);
    }

    #[test]
    fn garbage_and_misplaced_entries_are_rejected() {
        let mut snapshot = ConfigSnapshot::default();
        let garbage = KvChange::Put {
            key: "AlertExclusion.payments.a".into(),
            value: Bytes::from_static(b"{nope"),
        };
        assert!(snapshot.apply(&garbage).is_err());
        let misplaced = KvChange::Put {
            key: "AlertExclusion.other.a".into(),
            value: entry("a", "10.0.0.1"),
        };
        assert!(snapshot.apply(&misplaced).is_err());
        let unknown = KvChange::Put {
            key: "FutureKind.x.y".into(),
            value: Bytes::from_static(b"?"),
        };
        assert!(snapshot.apply(&unknown).is_ok());
    }
}
