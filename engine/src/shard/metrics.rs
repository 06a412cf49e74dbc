//! Metrics of the shard runtime (`netwarden_engine_shard_*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the shard runtime did.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Shards this replica owns now.
    pub owned: Gauge,
    /// Live replicas this replica sees.
    pub members: Gauge,
    /// Shards taken over (restored from a snapshot or started empty).
    pub taken: Counter,
    /// Shards handed over to another replica.
    pub released: Counter,
    /// Snapshots written to `nw-state`.
    pub snapshots: Counter,
    /// Snapshot writes or reads that failed.
    pub snapshot_errors: Counter,
    /// Size of the last snapshot written, bytes.
    pub snapshot_bytes: Gauge,
    /// Corrupt batches skipped and copied to `nw.dlq`.
    pub dead_letters: Counter,
    /// Messages at or below a shard's applied sequence, skipped (redelivery).
    pub skipped_duplicates: Counter,
    /// Times the consumers were recreated after an error.
    pub consumer_restarts: Counter,
    /// Membership heartbeats that could not be written.
    pub heartbeat_errors: Counter,
    /// Alerts from `NW_ALERTS` stored in this replica's alert store.
    pub alerts_indexed: Counter,
    /// Alerts from `NW_ALERTS` already known (raised here, or replayed): skipped.
    pub alerts_known: Counter,
    /// Messages on `NW_ALERTS` that are not alerts (too big, not JSON, bad key): skipped.
    pub alerts_refused: Counter,
    /// API requests forwarded to the replica that owns the host.
    pub forwarded: Counter,
    /// Forwarded requests or list gathers that a replica did not answer.
    pub forward_errors: Counter,
    /// Requests answered 503 because the host's shard had no reachable owner.
    pub no_owner: Counter,
    /// Lists gathered from every live replica.
    pub gathered: Counter,
}

impl ShardMetrics {
    /// Registers under `netwarden_engine_shard_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine_shard");
        r.register("owned", "Shards this replica owns", self.owned.clone());
        r.register("members", "Live engine replicas seen", self.members.clone());
        r.register("taken", "Shards taken over", self.taken.clone());
        r.register("released", "Shards handed over", self.released.clone());
        r.register(
            "snapshots",
            "Shard snapshots written",
            self.snapshots.clone(),
        );
        r.register(
            "snapshot_errors",
            "Shard snapshot writes or reads that failed",
            self.snapshot_errors.clone(),
        );
        r.register(
            "snapshot_bytes",
            "Size of the last shard snapshot written",
            self.snapshot_bytes.clone(),
        );
        r.register(
            "dead_letters",
            "Corrupt flow batches skipped and copied to nw.dlq",
            self.dead_letters.clone(),
        );
        r.register(
            "skipped_duplicates",
            "Redelivered flow batches skipped (already applied)",
            self.skipped_duplicates.clone(),
        );
        r.register(
            "consumer_restarts",
            "Times the shard consumers were recreated after an error",
            self.consumer_restarts.clone(),
        );
        r.register(
            "heartbeat_errors",
            "Membership heartbeats that could not be written",
            self.heartbeat_errors.clone(),
        );
        r.register(
            "alerts_indexed",
            "Alerts from NW_ALERTS stored in this replica's alert store",
            self.alerts_indexed.clone(),
        );
        r.register(
            "alerts_known",
            "Alerts from NW_ALERTS already known here, skipped",
            self.alerts_known.clone(),
        );
        r.register(
            "alerts_refused",
            "Messages on NW_ALERTS that are not alerts, skipped",
            self.alerts_refused.clone(),
        );
        r.register(
            "forwarded",
            "API requests forwarded to the replica owning the host",
            self.forwarded.clone(),
        );
        r.register(
            "forward_errors",
            "Forwarded requests or gathers a replica did not answer",
            self.forward_errors.clone(),
        );
        r.register(
            "no_owner",
            "Requests answered 503: the host's shard had no reachable owner",
            self.no_owner.clone(),
        );
        r.register(
            "gathered",
            "Lists gathered from every live replica",
            self.gathered.clone(),
        );
    }
}
