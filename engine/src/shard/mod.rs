//! The sharded engine: `R` replicas share the `S` flow shards of `NW_FLOWS` (docs/deploy.md).
//!
//! * [`ring`]: who owns a shard — rendezvous hashing over the live replicas.
//! * [`members`]: the live replicas — leases in KV `nw-members` that expire after a TTL.
//! * [`snapshot`]: a shard's host state and the stream sequence it covers, in KV `nw-state`.
//! * [`runtime`]: the loop — heartbeat, recompute the table, hand shards over (snapshot, stop,
//!   forget) and take them over (restore, consume `nw.flows.<shard>` from `seq + 1` with an
//!   ordered consumer), apply batches, snapshot periodically and at shutdown, dead-letter
//!   corrupt batches on `nw.dlq`.
//! * [`bus`]: keeps the default core-NATS ingest away from the flow subjects in this mode.
//! * [`cli`]: the flags of `run`.
//!
//! "Applied exactly once" holds because a shard's state and the last sequence applied to it are
//! snapshotted together by the task that applies its messages: restoring the snapshot and
//! applying from `seq + 1` is the state of a replica that applied each message once.

pub mod alerts;
pub mod bus;
pub mod cli;
pub mod members;
pub mod metrics;
pub mod ring;
pub mod runtime;
pub mod snapshot;

pub use runtime::{ShardOptions, spawn};

/// The dead-letter subject: corrupt flow batches are copied there (with their subject and
/// sequence in headers) before they are skipped.
pub const DLQ_SUBJECT: &str = "nw.dlq";
/// KV bucket of the replicas' membership leases.
pub const MEMBERS_BUCKET: &str = "nw-members";
