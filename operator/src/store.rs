//! The operator's side of the KV buckets: it writes `nw-config` and reads `nw-status`.
//! Both go through [`netwarden_api::bus::Kv`], so tests can use a real nats-server or memory.

use std::sync::Arc;

use netwarden_api::bus::{Kv, NatsKv};
use netwarden_api::names::{CONFIG_BUCKET, STATUS_BUCKET};

use crate::{Error, Result};

/// The two buckets the reconcilers use.
#[derive(Clone)]
pub struct Stores {
    /// `nw-config`: validated specs (written).
    pub config: Arc<dyn Kv>,
    /// `nw-status`: reports of sensors and engines (read; purged on delete).
    pub status: Arc<dyn Kv>,
}

impl Stores {
    /// Opens (creating when missing) both buckets over a NATS connection.
    pub async fn nats(client: async_nats::Client) -> Result<Self> {
        let config = NatsKv::open(client.clone(), CONFIG_BUCKET)
            .await
            .map_err(|e| Error::Kv {
                bucket: CONFIG_BUCKET,
                reason: e.to_string(),
            })?;
        let status = NatsKv::open(client, STATUS_BUCKET)
            .await
            .map_err(|e| Error::Kv {
                bucket: STATUS_BUCKET,
                reason: e.to_string(),
            })?;
        Ok(Self {
            config: Arc::new(config),
            status: Arc::new(status),
        })
    }

    /// In-process buckets (tests, dry runs).
    pub fn memory() -> Self {
        Self {
            config: Arc::new(netwarden_api::bus::MemoryKv::default()),
            status: Arc::new(netwarden_api::bus::MemoryKv::default()),
        }
    }
}
