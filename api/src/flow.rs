//! The flow record and batch (generated from `proto/netwarden.proto`) and their helpers.
//!
//! Counters in a [`FlowRecord`] are cumulative since the flow's first packet: a consumer
//! that needs deltas (host totals) subtracts the last record it applied for the same flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use prost::Message as _;

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/netwarden.v1.rs"));
}

pub use generated::*;

/// Largest encoded `FlowBatch` a producer may publish (DESIGN.md section 3).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Longest a producer may hold a record before publishing its batch (DESIGN.md section 3).
pub const MAX_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// IANA protocol numbers used across the code base.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;

    /// Upper-case protocol name as ndpiReader prints it (`TCP`, `ICMPV6`), or the number.
    pub fn name(proto: u8) -> std::borrow::Cow<'static, str> {
        match proto {
            ICMP => "ICMP".into(),
            IGMP => "IGMP".into(),
            TCP => "TCP".into(),
            UDP => "UDP".into(),
            GRE => "GRE".into(),
            ICMPV6 => "ICMPV6".into(),
            SCTP => "SCTP".into(),
            50 => "ESP".into(),
            51 => "AH".into(),
            other => other.to_string().into(),
        }
    }

    /// Inverse of [`name`], case-insensitive; also accepts a decimal number.
    pub fn from_name(name: &str) -> Option<u8> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "ICMP" => Some(ICMP),
            "IGMP" => Some(IGMP),
            "TCP" => Some(TCP),
            "UDP" => Some(UDP),
            "GRE" => Some(GRE),
            "ICMPV6" | "IPV6-ICMP" => Some(ICMPV6),
            "SCTP" => Some(SCTP),
            "ESP" => Some(50),
            "AH" => Some(51),
            other => other.parse().ok(),
        }
    }
}

/// Address bytes as carried in the record: 4 bytes for IPv4, 16 for IPv6.
pub fn ip_to_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Inverse of [`ip_to_bytes`]; `None` for any other length.
pub fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

impl FlowRecord {
    /// The client address, if the record carries a valid one.
    pub fn client_addr(&self) -> Option<IpAddr> {
        ip_from_bytes(&self.client_ip)
    }

    /// The server address, if the record carries a valid one.
    pub fn server_addr(&self) -> Option<IpAddr> {
        ip_from_bytes(&self.server_ip)
    }

    /// Packets in both directions.
    pub fn total_packets(&self) -> u64 {
        self.c2s.as_ref().map_or(0, |d| d.packets) + self.s2c.as_ref().map_or(0, |d| d.packets)
    }

    /// Bytes in both directions.
    pub fn total_bytes(&self) -> u64 {
        self.c2s.as_ref().map_or(0, |d| d.bytes) + self.s2c.as_ref().map_or(0, |d| d.bytes)
    }

    /// Whether this is the last record of its flow.
    pub fn is_final(&self) -> bool {
        self.update == FlowUpdate::Final as i32
    }

    /// Whether risk `id` of the catalogue is set.
    pub fn has_risk(&self, id: u16) -> bool {
        let (word, bit) = (usize::from(id / 64), id % 64);
        self.risk_bits
            .get(word)
            .is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Sets risk `id` of the catalogue, with an optional short detail.
    pub fn set_risk(&mut self, id: u16, detail: Option<String>) {
        let (word, bit) = (usize::from(id / 64), id % 64);
        if self.risk_bits.len() <= word {
            self.risk_bits.resize(word + 1, 0);
        }
        self.risk_bits[word] |= 1 << bit;
        if let Some(detail) = detail {
            self.risk_details.push(RiskDetail {
                risk: u32::from(id),
                detail,
            });
        }
    }

    /// Ids of every risk set, in increasing order.
    pub fn risk_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.risk_bits.iter().enumerate().flat_map(|(word, bits)| {
            (0..64u16)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| word as u16 * 64 + b)
        })
    }
}

impl FlowBatch {
    /// Encodes the batch as protobuf.
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.encode_to_vec())
    }

    /// Decodes a batch received on `subject`.
    pub fn from_bytes(subject: &str, payload: &[u8]) -> crate::Result<Self> {
        Self::decode(payload).map_err(|source| crate::Error::Decode {
            subject: subject.to_owned(),
            len: payload.len(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlowRecord {
        FlowRecord {
            flow_id: 7,
            client_ip: ip_to_bytes("10.0.0.1".parse().unwrap()),
            server_ip: ip_to_bytes("2001:db8::1".parse().unwrap()),
            client_port: 40000,
            server_port: 443,
            l4_proto: u32::from(proto::TCP),
            source: FlowSource::Pcap as i32,
            update: FlowUpdate::Final as i32,
            end_reason: EndReason::Fin as i32,
            c2s: Some(DirectionStats {
                packets: 3,
                bytes: 200,
                ..Default::default()
            }),
            s2c: Some(DirectionStats {
                packets: 2,
                bytes: 100,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn batch_round_trips_through_protobuf() {
        let batch = FlowBatch {
            records: vec![sample(), sample()],
            sensor: "n1".into(),
            seq: 9,
        };
        let bytes = batch.to_bytes();
        let back = FlowBatch::from_bytes("nw.flows.1", &bytes).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.records[0].total_packets(), 5);
        assert_eq!(back.records[0].total_bytes(), 300);
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_subject() {
        let err = FlowBatch::from_bytes("nw.flows.3", &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("nw.flows.3"), "{err}");
    }

    #[test]
    fn json_reads_addresses_and_enums_as_text() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["client_ip"], "10.0.0.1");
        assert_eq!(json["server_ip"], "2001:db8::1");
        assert_eq!(json["update"], "final");
        assert_eq!(json["end_reason"], "fin");
        assert_eq!(json["source"], "pcap");
        let back: FlowRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn risk_bits_set_and_read() {
        let mut r = sample();
        assert!(!r.has_risk(6));
        r.set_risk(6, Some("CN=x".into()));
        r.set_risk(70, None);
        assert!(r.has_risk(6) && r.has_risk(70) && !r.has_risk(7));
        assert_eq!(r.risk_ids().collect::<Vec<_>>(), vec![6, 70]);
        assert_eq!(r.risk_details.len(), 1);
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in [1u8, 2, 6, 17, 47, 58, 132, 50, 51, 99] {
            assert_eq!(proto::from_name(&proto::name(p)), Some(p));
        }
    }
}
