//! The flags of `netwarden-engine run` for the sharded mode.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use netwarden_api::bus::jetstream::FlowStreamLimits;

use super::ShardOptions;
use crate::store::db::config::{parse_bytes, parse_duration_secs};

/// Where `run` takes flows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IngestMode {
    /// The `NW_FLOWS` stream, shards shared among the live replicas, snapshots in `nw-state`.
    Jetstream,
    /// A plain core-NATS subscription to every flow subject (one replica; a restart loses what
    /// was published meanwhile).
    Core,
}

/// Sharding and stream flags.
#[derive(Debug, Clone, Args)]
pub struct ShardArgs {
    /// Where flows come from: the JetStream stream, sharded among replicas, or core NATS.
    #[arg(long, value_enum, default_value_t = IngestMode::Jetstream, env = "NETWARDEN_INGEST")]
    pub ingest: IngestMode,
    /// Oldest flow batch kept in `NW_FLOWS` (`3600`, `1h`, `2d`): a replica that takes a shard
    /// over replays from its snapshot, so this must exceed the snapshot interval by far.
    #[arg(long, default_value = "1h", value_parser = parse_duration_secs)]
    pub flows_max_age: u64,
    /// Bytes kept in `NW_FLOWS` (`512M`, `4G`).
    #[arg(long, default_value = "1G", value_parser = parse_bytes)]
    pub flows_max_bytes: u64,
    /// Replicas of the `NW_FLOWS` stream on a NATS cluster (1 on a single server).
    #[arg(long, default_value_t = 1)]
    pub flows_replicas: usize,
    /// Lifetime of a replica's membership lease, seconds: a replica that stops renewing it
    /// loses its shards after this long (renewed every third of it).
    #[arg(long, default_value = "6", value_parser = parse_duration_secs)]
    pub lease_ttl: u64,
    /// Seconds between shard snapshots to `nw-state` (also at hand-over and shutdown).
    #[arg(long, default_value = "10", value_parser = parse_duration_secs)]
    pub snapshot_interval: u64,
    /// Largest value written to `nw-state`; bigger snapshots are cut into chunks.
    #[arg(long, default_value = "512K", value_parser = parse_bytes)]
    pub snapshot_chunk: u64,
    /// Oldest alert kept in `NW_ALERTS` (`7d`), which every replica indexes.
    #[arg(long, default_value = "7d", value_parser = parse_duration_secs)]
    pub alerts_max_age: u64,
    /// Bytes kept in `NW_ALERTS` (`256M`).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    pub alerts_max_bytes: u64,
    /// The API address other replicas forward to (`http://10.1.2.3:8080`; default: from
    /// `--listen`, with `$POD_IP` for an unspecified address).
    #[arg(long, env = "NETWARDEN_ADVERTISE")]
    pub advertise: Option<String>,
}

impl ShardArgs {
    /// The runtime options for replica `replica` with the API at `listen`.
    pub fn options(&self, replica: &str, listen: SocketAddr, shards: u32) -> ShardOptions {
        let api = self.advertise.clone().unwrap_or_else(|| {
            let host = if listen.ip().is_unspecified() {
                std::env::var("POD_IP").unwrap_or_else(|_| "127.0.0.1".to_owned())
            } else {
                listen.ip().to_string()
            };
            if host.contains(':') {
                format!("http://[{host}]:{}", listen.port())
            } else {
                format!("http://{host}:{}", listen.port())
            }
        });
        ShardOptions {
            replica: replica.to_owned(),
            api,
            shards: shards.max(1),
            lease_ttl: Duration::from_secs(self.lease_ttl.max(1)),
            snapshot_interval: Duration::from_secs(self.snapshot_interval.max(1)),
            max_chunk: usize::try_from(self.snapshot_chunk.clamp(1024, 8 << 20)).unwrap_or(1 << 19),
            limits: FlowStreamLimits {
                max_age: Duration::from_secs(self.flows_max_age.max(1)),
                max_bytes: i64::try_from(self.flows_max_bytes).unwrap_or(i64::MAX),
                replicas: self.flows_replicas.max(1),
            },
            alerts: super::alerts::AlertStreamLimits {
                max_age: Duration::from_secs(self.alerts_max_age.max(1)),
                max_bytes: i64::try_from(self.alerts_max_bytes).unwrap_or(i64::MAX),
                replicas: self.flows_replicas.max(1),
            },
        }
    }
}
