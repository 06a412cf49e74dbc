//! Per-observation-point collection statistics: what a sensor's flow collectors know about
//! loss that the flow records cannot say (DESIGN.md section 5, issue 4).
//!
//! A sensor with flow listeners publishes a [`PointStatsMessage`] on `nw.stats.<sensor>`
//! ([`stats_subject`]) about once a second while something changed, and once at stop. Every
//! counter is a **total since the sensor started** (not a delta): a lost or repeated message
//! changes nothing, and the engine keeps the latest value per point. JSON, bounded: at most
//! [`MAX_POINTS_PER_MESSAGE`] points (a sensor with more sends several messages), names at most
//! [`MAX_NAME_LEN`] bytes, a payload at most [`MAX_MESSAGE_BYTES`]; [`PointStatsMessage::decode`]
//! refuses anything beyond.

use serde::{Deserialize, Serialize};

/// Prefix of the statistics subjects: `nw.stats.<sensor>`.
pub const STATS_PREFIX: &str = "nw.stats";
/// Pattern matching every statistics subject.
pub const STATS_ALL: &str = "nw.stats.>";
/// Most points in one message.
pub const MAX_POINTS_PER_MESSAGE: usize = 1024;
/// Longest sensor or exporter name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Largest payload accepted.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The subject of `sensor`'s statistics: characters other than ASCII letters, digits, `-` and
/// `_` become `_` (a NATS token), at most [`MAX_NAME_LEN`] of them. The message names the
/// sensor itself; the subject only spreads the load.
pub fn stats_subject(sensor: &str) -> String {
    let token: String = sensor
        .chars()
        .take(MAX_NAME_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        format!("{STATS_PREFIX}._")
    } else {
        format!("{STATS_PREFIX}.{token}")
    }
}

/// Statistics of one observation point of exported flows: (exporter, observation domain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointStats {
    /// Exporter address as in the flow records' observation point (sFlow: the agent address).
    pub exporter: String,
    /// Observation domain / source id / sFlow sub-agent / NetFlow v5 engine.
    pub domain_id: u32,
    /// Datagrams (IPFIX messages) received for this domain.
    pub datagrams: u64,
    /// Datagrams the sequence numbers say never arrived (NetFlow v9, sFlow).
    pub lost_datagrams: u64,
    /// Records the sequence numbers say never arrived (NetFlow v5, IPFIX).
    pub lost_records: u64,
    /// Datagrams behind the expected sequence number (late or reordered).
    pub sequence_late: u64,
    /// Sequence jumps too large to be loss (exporter restarts).
    pub sequence_resets: u64,
    /// NetFlow v9 / IPFIX templates cached now for this domain (a gauge).
    pub templates: u64,
}

/// One sensor's statistics message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointStatsMessage {
    /// Sensor name, as in the flow records' observation points.
    pub sensor: String,
    /// When the sensor sent it, ns since the Unix epoch.
    pub sent_ns: u64,
    /// The points (at most [`MAX_POINTS_PER_MESSAGE`]).
    pub points: Vec<PointStats>,
}

/// Why a statistics payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatsError {
    /// Payload larger than [`MAX_MESSAGE_BYTES`].
    #[error("statistics message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not the JSON shape.
    #[error("statistics message is not valid JSON: {0}")]
    Json(String),
    /// More than [`MAX_POINTS_PER_MESSAGE`] points, or a name over [`MAX_NAME_LEN`].
    #[error("statistics message over its bounds: {0}")]
    Bounds(&'static str),
}

impl PointStatsMessage {
    /// The JSON payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a payload (size, point count, name lengths).
    pub fn decode(payload: &[u8]) -> Result<Self, StatsError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(StatsError::TooLarge(payload.len()));
        }
        let msg: Self =
            serde_json::from_slice(payload).map_err(|e| StatsError::Json(e.to_string()))?;
        if msg.points.len() > MAX_POINTS_PER_MESSAGE {
            return Err(StatsError::Bounds("too many points"));
        }
        if msg.sensor.len() > MAX_NAME_LEN
            || msg.points.iter().any(|p| p.exporter.len() > MAX_NAME_LEN)
        {
            return Err(StatsError::Bounds("name too long"));
        }
        Ok(msg)
    }

    /// `points` of `sensor` as messages of at most [`MAX_POINTS_PER_MESSAGE`] points each
    /// (one empty message when there are none).
    pub fn chunks(sensor: &str, sent_ns: u64, points: &[PointStats]) -> Vec<Self> {
        if points.is_empty() {
            return vec![Self {
                sensor: sensor.to_owned(),
                sent_ns,
                points: Vec::new(),
            }];
        }
        points
            .chunks(MAX_POINTS_PER_MESSAGE)
            .map(|c| Self {
                sensor: sensor.to_owned(),
                sent_ns,
                points: c.to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_one_token() {
        assert_eq!(stats_subject("node-1"), "nw.stats.node-1");
        assert_eq!(stats_subject("a.b c>*"), "nw.stats.a_b_c__");
        assert_eq!(stats_subject(""), "nw.stats._");
        assert!(crate::names::subject_matches(
            STATS_ALL,
            &stats_subject("x.y")
        ));
    }

    #[test]
    fn round_trip_and_bounds() {
        let p = PointStats {
            exporter: "192.0.2.1".into(),
            domain_id: 7,
            datagrams: 10,
            lost_datagrams: 3,
            ..PointStats::default()
        };
        let m = PointStatsMessage {
            sensor: "s".into(),
            sent_ns: 1,
            points: vec![p.clone()],
        };
        assert_eq!(PointStatsMessage::decode(&m.encode()), Ok(m));
        let many = vec![p; MAX_POINTS_PER_MESSAGE + 1];
        let chunks = PointStatsMessage::chunks("s", 1, &many);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].points.len(), 1);
        let over = PointStatsMessage {
            points: many,
            ..PointStatsMessage::default()
        };
        assert_eq!(
            PointStatsMessage::decode(&over.encode()),
            Err(StatsError::Bounds("too many points"))
        );
        let long = PointStatsMessage {
            sensor: "x".repeat(MAX_NAME_LEN + 1),
            ..PointStatsMessage::default()
        };
        assert!(PointStatsMessage::decode(&long.encode()).is_err());
        assert!(matches!(
            PointStatsMessage::decode(b"{\"points\": 5}"),
            Err(StatsError::Json(_))
        ));
        assert!(PointStatsMessage::decode(&vec![b' '; MAX_MESSAGE_BYTES + 1]).is_err());
    }
}
