//! Netwarden sensor: capture and collection, packet decoding, the flow table, and export of
//! flow batches to the bus.
//!
//! The way of the data is the layout: `capture` → `decode` → `flow` → `export`;
//! [`pipeline`] wires them together for the binary and the engine's standalone mode;
//! [`policy`] starts and stops captures as `InterfacePolicy` entries of `nw-config` ask.

pub mod bench;
pub mod capture;
pub mod collect;
pub mod decode;
pub mod dpi;
pub mod error;
pub mod eval;
pub mod export;
pub mod flow;
pub mod metrics;
pub mod pipeline;
pub mod point_stats;
pub mod policy;

pub use error::{Error, Result};
