//! Generates the Rust types of `proto/netwarden.proto` with prost.
//!
//! The `.proto` is parsed by `protox` (pure Rust), so the build needs no `protoc`
//! binary and works offline.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/netwarden.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;

    let mut config = prost_build::Config::new();
    config.type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]");
    config.message_attribute(".", "#[serde(default)]");
    // Addresses travel as bytes but read as text in JSON.
    for field in ["FlowRecord.client_ip", "FlowRecord.server_ip"] {
        config.field_attribute(field, "#[serde(with = \"crate::serde_support::ip_bytes\")]");
    }
    // Enums travel as numbers but read as lower-case names in JSON.
    for (field, module) in [
        ("FlowRecord.source", "flow_source"),
        ("FlowRecord.update", "flow_update"),
        ("FlowRecord.end_reason", "end_reason"),
        ("FlowRecord.role", "role"),
        ("L7Info.confidence", "confidence"),
    ] {
        config.field_attribute(
            field,
            format!("#[serde(with = \"crate::serde_support::{module}\")]"),
        );
    }
    config.compile_fds(fds)?;
    Ok(())
}
