//! Netwarden's contracts: what every component agrees on.
//!
//! * [`flow`]: the flow record and batch (protobuf, `proto/netwarden.proto`), with helpers.
//! * [`alert`]: the alert model (severity from score, entities, attacker/victim).
//! * [`risk`]: the flow-risk catalogue (nDPI keys, severities, client/server score split).
//! * [`names`]: NATS subjects, streams and key-value buckets, and the shard rule.
//! * [`crd`]: the CRD kinds (`netwarden.io/v1alpha1`), their validation and the `nw-config`/`nw-status` entry shapes.
//! * [`directory`]: the `nw-directory` entries (IP → namespace, pod, workload, node, services) and their keys.
//! * [`stats`]: per-observation-point collection statistics (`nw.stats.<sensor>`, JSON, bounded).
//! * [`bus`]: publish/subscribe over NATS or in-process — the one place that knows how records travel.
//!
//! This crate does no I/O other than the bus.

pub mod alert;
pub mod bus;
pub mod crd;
pub mod directory;
pub mod error;
pub mod flow;
pub mod names;
pub mod risk;
mod serde_support;
pub mod stats;

pub use error::{Error, Result};
