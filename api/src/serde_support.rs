//! JSON shapes for generated protobuf types: addresses as text, enums as lower-case names.
//!
//! Protobuf keeps addresses as 4/16 raw bytes and enums as numbers (compact on the wire);
//! people and scripts reading JSON want `"10.0.0.1"` and `"final"`.

/// `bytes` holding an IPv4/IPv6 address <-> `"10.0.0.1"` / `"2001:db8::1"`.
pub mod ip_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::net::IpAddr;

    /// Serializes 4 or 16 bytes as an address; anything else as an empty string.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match crate::flow::ip_from_bytes(bytes) {
            Some(ip) => s.collect_str(&ip),
            None => s.serialize_str(""),
        }
    }

    /// Parses an address; an empty string is an absent address.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let ip: IpAddr = text.parse().map_err(D::Error::custom)?;
        Ok(crate::flow::ip_to_bytes(ip))
    }
}

/// Generates a serde `with` module for a prost enum stored as `i32`.
macro_rules! enum_names {
    ($module:ident, $ty:ty, $prefix:literal) => {
        #[doc = concat!("`", stringify!($ty), "` as a lower-case name without its `", $prefix, "` prefix.")]
        pub mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

            /// Serializes the name; an unknown number stays a number in text form.
            pub fn serialize<S: Serializer>(value: &i32, s: S) -> Result<S::Ok, S::Error> {
                match <$ty>::try_from(*value) {
                    Ok(v) => {
                        let name = v.as_str_name();
                        let short = name.strip_prefix($prefix).unwrap_or(name);
                        s.serialize_str(&short.to_ascii_lowercase())
                    }
                    Err(_) => s.collect_str(value),
                }
            }

            /// Accepts the short name, the full protobuf name or the number.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
                let text = String::deserialize(d)?;
                if let Ok(n) = text.parse::<i32>() {
                    return Ok(n);
                }
                let upper = text.to_ascii_uppercase();
                let full = if upper.starts_with($prefix) { upper } else { format!("{}{}", $prefix, upper) };
                <$ty>::from_str_name(&full)
                    .map(|v| v as i32)
                    .ok_or_else(|| D::Error::custom(format!("unknown value {text:?}")))
            }
        }
    };
}

enum_names!(flow_source, crate::flow::FlowSource, "FLOW_SOURCE_");
enum_names!(flow_update, crate::flow::FlowUpdate, "FLOW_UPDATE_");
enum_names!(end_reason, crate::flow::EndReason, "END_REASON_");
enum_names!(role, crate::flow::Role, "ROLE_");
enum_names!(confidence, crate::flow::Confidence, "CONFIDENCE_");
