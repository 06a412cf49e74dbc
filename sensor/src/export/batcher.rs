//! Per-shard batching of flow records (DESIGN.md sections 3 and 5). Pure: time is an argument.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use netwarden_api::flow::{FlowBatch, FlowRecord, Role};
use netwarden_api::names::shard_of;
use prost::Message as _;
use prost::encoding::encoded_len_varint;

/// Bytes a record adds to a batch: field tag, length prefix and the record itself.
fn framed_len(record: &FlowRecord) -> usize {
    let len = record.encoded_len();
    1 + encoded_len_varint(len as u64) + len
}

#[derive(Debug, Default)]
struct Pending {
    records: Vec<FlowRecord>,
    bytes: usize,
    since: Option<Instant>,
}

/// A batch ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyBatch {
    /// Target shard.
    pub shard: u32,
    /// The batch (with its sequence number set).
    pub batch: FlowBatch,
    /// How many of its records are client copies (each flow record is counted once by them).
    pub client_records: usize,
}

/// Collects records into one pending batch per shard and says when a batch must go.
#[derive(Debug)]
pub struct Batcher {
    sensor: String,
    shards: u32,
    max_bytes: usize,
    linger: Duration,
    /// Bytes of an empty batch with the largest possible `seq` and the sensor name.
    base: usize,
    pending: Vec<Pending>,
    seq: u64,
}

impl Batcher {
    /// A batcher for `shards` shards, batches ≤ `max_bytes` encoded, held ≤ `linger`.
    pub fn new(sensor: &str, shards: u32, max_bytes: usize, linger: Duration) -> Self {
        let shards = shards.max(1);
        let base = 1 + encoded_len_varint(sensor.len() as u64) + sensor.len() + 1 + 10;
        Self {
            sensor: sensor.to_owned(),
            shards,
            max_bytes,
            linger,
            base,
            pending: (0..shards).map(|_| Pending::default()).collect(),
            seq: 0,
        }
    }

    fn shard(&self, ip: &[u8]) -> u32 {
        netwarden_api::flow::ip_from_bytes(ip).map_or(0, |ip: IpAddr| shard_of(ip, self.shards))
    }

    /// Adds one record: to its client's shard with `role = client` and, when the server's shard
    /// differs, a copy to the server's shard with `role = server`. Batches that became full are
    /// appended to `out`.
    pub fn add(&mut self, mut record: FlowRecord, now: Instant, out: &mut Vec<ReadyBatch>) {
        let client_shard = self.shard(&record.client_ip);
        let server_shard = self.shard(&record.server_ip);
        if server_shard != client_shard {
            let mut copy = record.clone();
            copy.role = Role::Server as i32;
            self.push(server_shard, copy, now, out);
        }
        record.role = Role::Client as i32;
        self.push(client_shard, record, now, out);
    }

    fn push(&mut self, shard: u32, record: FlowRecord, now: Instant, out: &mut Vec<ReadyBatch>) {
        let len = framed_len(&record);
        let idx = shard as usize;
        let fits = self.base + self.pending[idx].bytes + len <= self.max_bytes;
        if !fits && !self.pending[idx].records.is_empty() {
            out.push(self.take(shard));
        }
        let p = &mut self.pending[idx];
        p.records.push(record);
        p.bytes += len;
        p.since.get_or_insert(now);
        // A lone record larger than a batch still travels, alone.
        if self.base + p.bytes >= self.max_bytes {
            out.push(self.take(shard));
        }
    }

    fn take(&mut self, shard: u32) -> ReadyBatch {
        let p = std::mem::take(&mut self.pending[shard as usize]);
        let client_records = p
            .records
            .iter()
            .filter(|r| r.role == Role::Client as i32)
            .count();
        let batch = FlowBatch {
            records: p.records,
            sensor: self.sensor.clone(),
            seq: self.seq,
        };
        self.seq += 1;
        ReadyBatch {
            shard,
            batch,
            client_records,
        }
    }

    /// When the oldest pending record must leave, if any is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|p| p.since)
            .min()
            .map(|t| t + self.linger)
    }

    /// Appends to `out` every batch whose oldest record waited the linger at `now`.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<ReadyBatch>) {
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
    pub fn flush_all(&mut self, out: &mut Vec<ReadyBatch>) {
        for shard in 0..self.shards {
            if !self.pending[shard as usize].records.is_empty() {
                out.push(self.take(shard));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netwarden_api::flow::{MAX_BATCH_BYTES, ip_to_bytes};

    fn rec(client: &str, server: &str, id: u64) -> FlowRecord {
        FlowRecord {
            flow_id: id,
            client_ip: ip_to_bytes(client.parse().unwrap()),
            server_ip: ip_to_bytes(server.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn client_and_server_copies_go_to_their_shards() {
        let mut b = Batcher::new("s", 64, MAX_BATCH_BYTES, Duration::from_millis(100));
        let (c, s) = ("10.0.0.1", "2001:db8::1");
        let mut out = Vec::new();
        b.add(rec(c, s, 1), Instant::now(), &mut out);
        b.flush_all(&mut out);
        assert_eq!(out.len(), 2);
        let by_role = |role: Role| {
            out.iter()
                .find(|r| r.batch.records[0].role == role as i32)
                .unwrap()
        };
        assert_eq!(by_role(Role::Client).shard, 44);
        assert_eq!(by_role(Role::Server).shard, 20);
        assert_eq!(by_role(Role::Client).client_records, 1);
        assert_eq!(by_role(Role::Server).client_records, 0);
    }

    #[test]
    fn same_shard_means_one_copy_and_batches_stay_under_the_limit() {
        let mut b = Batcher::new("sensor-1", 1, 4096, Duration::from_millis(100));
        let mut out = Vec::new();
        for i in 0..1000 {
            let r = FlowRecord {
                tunnel: "t".repeat(100),
                ..rec("10.0.0.1", "10.0.0.2", i)
            };
            b.add(r, Instant::now(), &mut out);
        }
        b.flush_all(&mut out);
        assert!(out.len() > 5);
        assert!(out.iter().all(|r| r.batch.encoded_len() <= 4096));
        assert_eq!(
            out.iter().map(|r| r.batch.records.len()).sum::<usize>(),
            1000
        );
        assert!(out.windows(2).all(|w| w[1].batch.seq == w[0].batch.seq + 1));
    }

    #[test]
    fn linger_deadline() {
        let mut b = Batcher::new("s", 4, MAX_BATCH_BYTES, Duration::from_millis(100));
        let t0 = Instant::now();
        let mut out = Vec::new();
        assert_eq!(b.next_deadline(), None);
        b.add(rec("10.0.0.1", "10.0.0.1", 1), t0, &mut out);
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(100)));
        b.flush_due(t0 + Duration::from_millis(50), &mut out);
        assert!(out.is_empty());
        b.flush_due(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(b.next_deadline(), None);
    }
}
