//! Membership: each replica keeps a lease under its name in KV `nw-members`, a bucket whose
//! entries expire after the lease TTL. The live replicas are the keys present.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::MEMBERS_BUCKET;

/// What a replica says about itself in its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The replica's name (its key).
    pub replica: String,
    /// Where its API answers (`http://10.1.2.3:8080`).
    pub api: String,
    /// The shards it owns now.
    pub owned: Vec<u32>,
    /// How many live replicas it sees.
    pub members: usize,
    /// When it wrote the lease, ms since the epoch.
    pub at_ms: u64,
}

/// The `nw-members` bucket.
#[derive(Clone)]
pub struct Members {
    store: kv::Store,
}

/// Whether `name` can be a KV key (and so a replica name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b))
}

impl Members {
    /// Opens (creates or updates) the bucket with entries living `ttl`.
    pub async fn open(client: async_nats::Client, ttl: Duration) -> Result<Self, String> {
        let js = jetstream::new(client);
        let store = js
            .create_or_update_key_value(kv::Config {
                bucket: MEMBERS_BUCKET.to_owned(),
                description: "Netwarden engine replicas (leases)".to_owned(),
                history: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { store })
    }

    /// Writes (renews) `lease`.
    pub async fn renew(&self, lease: &Lease) -> Result<(), String> {
        let body = serde_json::to_vec(lease).map_err(|e| e.to_string())?;
        self.store
            .put(&lease.replica, body.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Removes `replica`'s lease (a clean shutdown: the others take its shards at once).
    pub async fn leave(&self, replica: &str) -> Result<(), String> {
        self.store.purge(replica).await.map_err(|e| e.to_string())
    }

    /// The live leases, sorted by replica name (unreadable entries skipped).
    pub async fn live(&self) -> Result<Vec<Lease>, String> {
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| e.to_string())?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = self.store.get(&k).await.map_err(|e| e.to_string())?
                && let Ok(lease) = serde_json::from_slice::<Lease>(&v)
                && lease.replica == k
            {
                out.push(lease);
            }
        }
        out.sort_by(|a, b| a.replica.cmp(&b.replica));
        Ok(out)
    }
}

/// Now, ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_names_are_kv_keys() {
        assert!(valid_name("netwarden-engine-0"));
        assert!(!valid_name(""));
        assert!(!valid_name("a.b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(200)));
    }
}
