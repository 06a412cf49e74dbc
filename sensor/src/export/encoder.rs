//! Per-shard batches encoded as records arrive (DESIGN.md sections 3 and 5). Pure: time is an
//! argument.
//!
//! Each record is protobuf-encoded once, straight into the growing `FlowBatch` buffer of its
//! shard(s): no `FlowRecord` is kept, cloned or queued after [`BatchEncoder::add`] returns.
//! The buffer of a batch is exactly what `FlowBatch::encode` would produce, field for field:
//!
//! * `records` (field 1, repeated message): each record is `0x0A`, its length as a varint and
//!   the record's bytes. A repeated field is a concatenation of such entries, so appending one
//!   per record is the protobuf encoding of the list.
//! * inside a record, `role` (field 24) is written last, after every other field the record
//!   has: the record is encoded once without a role (prost omits a zero enum) and each copy
//!   (client, server) gets its three role bytes appended. Protobuf parsers accept fields in any
//!   order (prost included), so the engine decodes the same `FlowRecord` as before.
//! * `sensor` (field 2) and `seq` (field 3) close the batch when it is taken.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use netwarden_api::flow::{FlowRecord, Role};
use netwarden_api::names::shard_of;
use prost::Message as _;
use prost::encoding::{encode_varint, encoded_len_varint};

/// Tag of `FlowBatch.records` (field 1, length-delimited).
const RECORDS_TAG: u8 = 0x0A;
/// Tag of `FlowBatch.sensor` (field 2, length-delimited).
const SENSOR_TAG: u8 = 0x12;
/// Tag of `FlowBatch.seq` (field 3, varint).
const SEQ_TAG: u8 = 0x18;
/// `FlowRecord.role` (field 24, varint): tag 24 << 3 = 192 as a varint.
const ROLE_TAG: [u8; 2] = [0xC0, 0x01];
/// Bytes of the role field of a copy (tag and a one-byte value).
const ROLE_LEN: usize = 3;

/// An encoded batch, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Target shard.
    pub shard: u32,
    /// The encoded `FlowBatch`.
    pub payload: Bytes,
    /// Records in it (client and server copies).
    pub records: usize,
    /// How many of them are client copies (each flow record is counted once by them).
    pub client_records: usize,
    /// The batch's sequence number.
    pub seq: u64,
}

#[derive(Debug, Default)]
struct Pending {
    buf: BytesMut,
    records: usize,
    client_records: usize,
    since: Option<Instant>,
}

/// One `FlowBatch` buffer per shard, filled as records arrive; says when a batch must go.
#[derive(Debug)]
pub struct BatchEncoder {
    /// The encoded `sensor` field, appended to every batch.
    sensor_field: Vec<u8>,
    shards: u32,
    max_bytes: usize,
    linger: Duration,
    /// Bytes a batch may need besides its records: the sensor field and the largest `seq`.
    base: usize,
    pending: Vec<Pending>,
    /// Shards with a non-empty batch.
    busy: usize,
    seq: u64,
    /// One record encoded without its role, reused.
    scratch: Vec<u8>,
}

impl BatchEncoder {
    /// An encoder for `shards` shards, batches ≤ `max_bytes` encoded, held ≤ `linger`.
    pub fn new(sensor: &str, shards: u32, max_bytes: usize, linger: Duration) -> Self {
        let shards = shards.max(1);
        let mut sensor_field = Vec::with_capacity(sensor.len() + 6);
        sensor_field.push(SENSOR_TAG);
        encode_varint(sensor.len() as u64, &mut sensor_field);
        sensor_field.extend_from_slice(sensor.as_bytes());
        Self {
            base: sensor_field.len() + 1 + 10,
            sensor_field,
            shards,
            max_bytes,
            linger,
            pending: (0..shards).map(|_| Pending::default()).collect(),
            busy: 0,
            seq: 0,
            scratch: Vec::with_capacity(1024),
        }
    }

    fn shard(&self, ip: &[u8]) -> u32 {
        netwarden_api::flow::ip_from_bytes(ip).map_or(0, |ip: IpAddr| shard_of(ip, self.shards))
    }

    /// Encodes one record: into its client's shard with `role = client` and, when the server's
    /// shard differs, into the server's shard with `role = server`. Batches that became full
    /// are appended to `out`. Returns true when this record made the first pending batch (so a
    /// publisher waiting for one should wake up to arm its linger timer).
    pub fn add(&mut self, record: &FlowRecord, now: Instant, out: &mut Vec<EncodedBatch>) -> bool {
        let was_idle = self.busy == 0;
        let client_shard = self.shard(&record.client_ip);
        let server_shard = self.shard(&record.server_ip);
        self.scratch.clear();
        if record.role == 0 {
            // Infallible: a Vec grows as needed.
            let _ = record.encode(&mut self.scratch);
        } else {
            let mut plain = record.clone();
            plain.role = 0;
            let _ = plain.encode(&mut self.scratch);
        }
        if server_shard != client_shard {
            self.push(server_shard, Role::Server, now, out);
        }
        self.push(client_shard, Role::Client, now, out);
        was_idle && self.busy > 0
    }

    fn push(&mut self, shard: u32, role: Role, now: Instant, out: &mut Vec<EncodedBatch>) {
        let len = self.scratch.len() + ROLE_LEN;
        let framed = 1 + encoded_len_varint(len as u64) + len;
        let idx = shard as usize;
        if self.base + self.pending[idx].buf.len() + framed > self.max_bytes
            && self.pending[idx].records > 0
        {
            out.push(self.take(shard));
        }
        let max_bytes = self.max_bytes;
        let p = &mut self.pending[idx];
        if p.records == 0 {
            self.busy += 1;
            p.since = Some(now);
            // Room for a full batch at once: no regrowth (and copy) while it fills.
            p.buf.reserve(max_bytes.max(framed + self.base));
        }
        p.buf.put_u8(RECORDS_TAG);
        encode_varint(len as u64, &mut p.buf);
        p.buf.extend_from_slice(&self.scratch);
        p.buf.extend_from_slice(&ROLE_TAG);
        p.buf.put_u8(role as u8);
        p.records += 1;
        p.client_records += usize::from(role == Role::Client);
        // A lone record larger than a batch still travels, alone.
        if self.base + p.buf.len() >= self.max_bytes {
            out.push(self.take(shard));
        }
    }

    fn take(&mut self, shard: u32) -> EncodedBatch {
        let p = &mut self.pending[shard as usize];
        p.buf.extend_from_slice(&self.sensor_field);
        if self.seq != 0 {
            // prost omits a zero scalar; do the same so the bytes match `FlowBatch::encode`.
            p.buf.put_u8(SEQ_TAG);
            encode_varint(self.seq, &mut p.buf);
        }
        let batch = EncodedBatch {
            shard,
            payload: p.buf.split().freeze(),
            records: std::mem::take(&mut p.records),
            client_records: std::mem::take(&mut p.client_records),
            seq: self.seq,
        };
        p.since = None;
        self.busy -= 1;
        self.seq += 1;
        batch
    }

    /// Records waiting in batches that are not ready yet.
    pub fn pending_records(&self) -> usize {
        self.pending.iter().map(|p| p.records).sum()
    }

    /// When the oldest pending record must leave, if any is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.busy == 0 {
            return None;
        }
        self.pending
            .iter()
            .filter_map(|p| p.since)
            .min()
            .map(|t| t + self.linger)
    }

    /// Appends to `out` every batch whose oldest record waited the linger at `now`.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<EncodedBatch>) {
        if self.busy == 0 {
            return;
        }
        for shard in 0..self.shards {
            if self.pending[shard as usize]
                .since
                .is_some_and(|t| t + self.linger <= now)
            {
                out.push(self.take(shard));
            }
        }
    }

    /// Appends every non-empty batch to `out`.
    pub fn flush_all(&mut self, out: &mut Vec<EncodedBatch>) {
        for shard in 0..self.shards {
            if self.pending[shard as usize].records > 0 {
                out.push(self.take(shard));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netwarden_api::flow::{FlowBatch, MAX_BATCH_BYTES, ip_to_bytes};

    fn rec(client: &str, server: &str, id: u64) -> FlowRecord {
        FlowRecord {
            flow_id: id,
            client_ip: ip_to_bytes(client.parse().unwrap()),
            server_ip: ip_to_bytes(server.parse().unwrap()),
            client_port: 40_000 + (id % 1000) as u32,
            server_port: 443,
            l4_proto: 6,
            first_seen_ns: 1_700_000_000_000_000_000 + id,
            update_seq: (id % 7) as u32,
            client_mac: vec![2, 0, 0, 0, 0, 1],
            ..Default::default()
        }
    }

    #[test]
    fn batches_decode_to_the_records_with_roles_and_match_prost_byte_for_byte() {
        let mut e = BatchEncoder::new("sensor-1", 64, MAX_BATCH_BYTES, Duration::from_millis(100));
        let (c, s) = ("10.0.0.1", "2001:db8::1");
        let mut out = Vec::new();
        let now = Instant::now();
        assert!(e.add(&rec(c, s, 1), now, &mut out));
        assert!(!e.add(&rec(c, s, 2), now, &mut out));
        assert_eq!(e.pending_records(), 4);
        e.flush_all(&mut out);
        assert_eq!(out.len(), 2);
        for b in &out {
            let batch = FlowBatch::decode(b.payload.clone()).unwrap();
            assert_eq!(batch.sensor, "sensor-1");
            assert_eq!(batch.seq, b.seq);
            assert_eq!(batch.records.len(), 2);
            let role = if b.shard == 44 {
                Role::Client
            } else {
                Role::Server
            };
            assert_eq!(b.client_records, if role == Role::Client { 2 } else { 0 });
            for (i, r) in batch.records.iter().enumerate() {
                let mut want = rec(c, s, i as u64 + 1);
                want.role = role as i32;
                assert_eq!(r, &want);
            }
        }
        assert_eq!(out.iter().map(|b| b.shard).collect::<Vec<_>>(), [20, 44]);
        // Same shard, so one copy and the role is the record's last field anyway when the
        // record has no field after 24 set: then the bytes are prost's own.
        let mut e = BatchEncoder::new("s", 1, MAX_BATCH_BYTES, Duration::from_millis(100));
        let mut plain = rec("10.0.0.1", "10.0.0.2", 5);
        plain.client_mac.clear();
        plain.update_seq = 0;
        let mut out = Vec::new();
        e.add(&plain, now, &mut out);
        e.add(&plain, now, &mut out);
        e.flush_all(&mut out);
        e.add(&plain, now, &mut out);
        e.flush_all(&mut out);
        plain.role = Role::Client as i32;
        for (seq, b) in out.iter().enumerate() {
            let n = if seq == 0 { 2 } else { 1 };
            let want = FlowBatch {
                records: vec![plain.clone(); n],
                sensor: "s".into(),
                seq: seq as u64,
            };
            assert_eq!(b.payload, want.to_bytes());
        }
    }

    #[test]
    fn a_record_that_already_has_a_role_gets_the_right_one() {
        let mut e = BatchEncoder::new("s", 1, MAX_BATCH_BYTES, Duration::from_millis(100));
        let mut r = rec("10.0.0.1", "10.0.0.2", 1);
        r.role = Role::Server as i32;
        let mut out = Vec::new();
        e.add(&r, Instant::now(), &mut out);
        e.flush_all(&mut out);
        let batch = FlowBatch::decode(out[0].payload.clone()).unwrap();
        assert_eq!(batch.records[0].role, Role::Client as i32);
    }

    #[test]
    fn batches_stay_under_the_limit_and_seq_increases() {
        let mut e = BatchEncoder::new("sensor-1", 1, 4096, Duration::from_millis(100));
        let mut out = Vec::new();
        for i in 0..1000 {
            let r = FlowRecord {
                tunnel: "t".repeat(100),
                ..rec("10.0.0.1", "10.0.0.2", i)
            };
            e.add(&r, Instant::now(), &mut out);
        }
        e.flush_all(&mut out);
        assert!(out.len() > 5);
        assert!(out.iter().all(|b| b.payload.len() <= 4096));
        let batches: Vec<FlowBatch> = out
            .iter()
            .map(|b| FlowBatch::decode(b.payload.clone()).unwrap())
            .collect();
        assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 1000);
        let ids: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.records.iter().map(|r| r.flow_id))
            .collect();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        assert!(batches.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert_eq!(e.pending_records(), 0);
    }

    #[test]
    fn a_lone_record_larger_than_a_batch_travels_alone() {
        let mut e = BatchEncoder::new("s", 1, 64, Duration::from_millis(100));
        let mut out = Vec::new();
        let big = FlowRecord {
            tunnel: "t".repeat(500),
            ..rec("10.0.0.1", "10.0.0.2", 1)
        };
        e.add(&big, Instant::now(), &mut out);
        e.add(&big, Instant::now(), &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|b| FlowBatch::decode(b.payload.clone()).unwrap().records.len() == 1)
        );
        assert_eq!(e.next_deadline(), None);
    }

    #[test]
    fn linger_deadline() {
        let mut e = BatchEncoder::new("s", 4, MAX_BATCH_BYTES, Duration::from_millis(100));
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert_eq!(e.next_deadline(), None);
        e.add(&rec("10.0.0.1", "10.0.0.1", 1), t0, &mut out);
        assert_eq!(e.next_deadline(), Some(t0 + Duration::from_millis(100)));
        e.flush_due(t0 + Duration::from_millis(50), &mut out);
        assert!(out.is_empty());
        e.flush_due(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(e.next_deadline(), None);
    }
}
