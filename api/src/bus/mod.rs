//! The bus: how records travel between components.
//!
//! Two implementations of the same traits: [`nats::NatsBus`] (the cluster) and
//! [`memory::MemoryBus`] (standalone and tests: tokio channels, same semantics for what we use).
//! Everything else in Netwarden talks to `dyn Bus`, so the standalone mode runs the very code
//! path of the cluster except for the transport.

pub mod jetstream;
pub mod kv;
pub mod memory;
pub mod nats;
pub mod status;

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, future::BoxFuture};

pub use kv::{ConfigSnapshot, Kv, KvChange, MemoryKv, NatsKv, watch_config};
pub use memory::MemoryBus;
pub use nats::NatsBus;
pub use status::StatusReporter;

/// A message received from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published on.
    pub subject: String,
    /// The payload (a protobuf `FlowBatch` on flow subjects).
    pub payload: Bytes,
}

/// A stream of received messages. Ends when the bus closes.
pub type MessageStream = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// Publishing side of the bus.
pub trait Publisher: Send + Sync {
    /// Publishes `payload` on `subject`. May wait for room (backpressure); callers that must
    /// not block wrap it in a timeout and count what they drop.
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, crate::Result<()>>;

    /// Waits until everything published so far has left this process.
    fn flush(&self) -> BoxFuture<'_, crate::Result<()>>;
}

/// Subscribing side of the bus.
pub trait Subscriber: Send + Sync {
    /// Subscribes to a subject or a pattern (`*` and `>` wildcards, NATS rules).
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, crate::Result<MessageStream>>;
}

/// Both sides, and what a component needs to know about the transport's health.
pub trait Bus: Publisher + Subscriber {
    /// Whether the transport is connected now (always true in-process).
    fn is_connected(&self) -> bool;
    /// A short name for logs and `/readyz` (`nats`, `memory`).
    fn kind(&self) -> &'static str;
}
