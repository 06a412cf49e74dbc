//! The shard runtime: one task that owns this replica's shards (see the module documentation
//! of [`crate::shard`]).

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures::stream::SelectAll;
use futures::{Stream, StreamExt};
use netwarden_api::bus::Bus;
use netwarden_api::bus::jetstream::{FlowStreamLimits, ensure_flows_stream};
use netwarden_api::flow::FlowBatch;
use netwarden_api::names::{STATE_BUCKET, flows_subject};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::members::{Lease, Members, now_ms, valid_name};
use super::metrics::ShardMetrics;
use super::snapshot::{self, Head};
use super::{DLQ_SUBJECT, ring};
use crate::Engine;
use crate::api::cluster::Cluster;
use crate::ingest;

/// Settings of the runtime.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    /// This replica's name (its lease key; letters, digits, `-`, `_`).
    pub replica: String,
    /// Its API URL, advertised in the lease.
    pub api: String,
    /// Shards of the cluster.
    pub shards: u32,
    /// Lease lifetime (renewed every third of it).
    pub lease_ttl: Duration,
    /// Time between snapshots.
    pub snapshot_interval: Duration,
    /// Largest KV value written.
    pub max_chunk: usize,
    /// Bounds of `NW_FLOWS`.
    pub limits: FlowStreamLimits,
    /// Bounds of `NW_ALERTS`.
    pub alerts: super::alerts::AlertStreamLimits,
}

type Delivery = (u32, Result<jetstream::Message, String>);
type Deliveries = SelectAll<Pin<Box<dyn Stream<Item = Delivery> + Send>>>;

/// One owned shard.
struct Owned {
    /// Last stream sequence applied.
    seq: u64,
    /// Sequence of the last snapshot written.
    saved: u64,
}

struct Runtime {
    engine: Engine,
    bus: Arc<dyn Bus>,
    client: async_nats::Client,
    options: ShardOptions,
    metrics: Arc<ShardMetrics>,
    stream: stream::Stream,
    members: Members,
    state: kv::Store,
    owned: BTreeMap<u32, Owned>,
    rebuild: bool,
    live: usize,
    cluster: Arc<Cluster>,
}

/// Starts the runtime. `ready` turns true once the first shards are consumed (the default
/// ingest's readiness follows it, see [`super::bus`]). Stops at `shutdown`, after writing the
/// snapshots of its shards and leaving the membership.
pub fn spawn(
    engine: Engine,
    client: async_nats::Client,
    bus: Arc<dyn Bus>,
    options: ShardOptions,
    metrics: Arc<ShardMetrics>,
    ready: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run(engine, client, bus, options, metrics, ready, shutdown))
}

async fn run(
    engine: Engine,
    client: async_nats::Client,
    bus: Arc<dyn Bus>,
    options: ShardOptions,
    metrics: Arc<ShardMetrics>,
    ready: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    if !valid_name(&options.replica) {
        warn!(replica = %options.replica, "the replica name is not a valid KV key: the shard runtime does not start");
        return;
    }
    // The API forwards and gathers with this view of the cluster; alerts of every replica are
    // indexed from NW_ALERTS (created before any flow is applied, so none is missed).
    let cluster = Arc::new(Cluster::new(
        &options.replica,
        options.shards,
        Arc::clone(&metrics),
    ));
    let _ = engine.cluster.set(Arc::clone(&cluster));
    let indexer = super::alerts::spawn(
        engine.clone(),
        client.clone(),
        options.alerts,
        Arc::clone(&metrics),
        shutdown.clone(),
    );
    // The stream and buckets, retried until NATS answers.
    let (stream, members, state) = loop {
        match open(&client, &options).await {
            Ok(v) => break v,
            Err(e) => {
                warn!(error = %e, "cannot open NW_FLOWS, nw-members or nw-state yet; retrying");
                if wait(&mut shutdown, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    let mut rt = Runtime {
        engine,
        bus,
        client,
        options,
        metrics,
        stream,
        members,
        state,
        owned: BTreeMap::new(),
        rebuild: false,
        live: 0,
        cluster,
    };
    let mut heartbeat = tokio::time::interval(rt.options.lease_ttl / 3);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshots = tokio::time::interval(rt.options.snapshot_interval);
    snapshots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    snapshots.tick().await;
    let mut reload = tokio::time::interval(ingest::BLOCKLIST_RELOAD);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deliveries: Deliveries = SelectAll::new();
    info!(replica = %rt.options.replica, shards = rt.options.shards, "shard runtime started");
    loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                rt.rebalance().await;
                if rt.rebuild {
                    // Stop consuming everything; kept shards resume from their applied sequence.
                    deliveries = SelectAll::new();
                    if let Some(d) = rt.consumers().await {
                        deliveries = d;
                    }
                }
                if !*ready.borrow() && rt.live > 0 && !rt.rebuild {
                    let _ = ready.send(true);
                }
            }
            _ = snapshots.tick() => rt.snapshot_all(false).await,
            _ = reload.tick() => {
                let mut state = rt.engine.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if state.analysis.config.checks.blocklist.reload_if_changed() {
                    info!(entries = state.analysis.config.checks.blocklist.len(), "blocklists reloaded");
                }
            }
            Some((shard, delivery)) = deliveries.next(), if !deliveries.is_empty() => {
                match delivery {
                    Ok(msg) => rt.apply(shard, &msg).await,
                    Err(e) => {
                        warn!(shard, error = %e, "shard consumer failed; recreating the consumers");
                        rt.rebuild = true;
                        rt.metrics.consumer_restarts.inc();
                        deliveries = SelectAll::new();
                    }
                }
            }
        }
    }
    // Shutdown: snapshot every shard, then leave so that the others take over at once.
    drop(deliveries);
    rt.snapshot_all(true).await;
    if let Err(e) = rt.members.leave(&rt.options.replica).await {
        warn!(error = %e, "cannot remove the membership lease; it expires by itself");
    }
    let _ = indexer.await;
    info!("shard runtime stopped");
}

async fn open(
    client: &async_nats::Client,
    options: &ShardOptions,
) -> Result<(stream::Stream, Members, kv::Store), String> {
    let stream = ensure_flows_stream(client, options.limits)
        .await
        .map_err(|e| e.to_string())?;
    super::alerts::ensure_stream(client, options.alerts).await?;
    let members = Members::open(client.clone(), options.lease_ttl).await?;
    let js = jetstream::new(client.clone());
    let state = js
        .create_or_update_key_value(kv::Config {
            bucket: STATE_BUCKET.to_owned(),
            description: "Netwarden shard snapshots".to_owned(),
            history: 1,
            max_value_size: i32::try_from(options.max_chunk).unwrap_or(i32::MAX),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((stream, members, state))
}

/// Waits `delay`; true when shutdown was asked meanwhile.
pub(crate) async fn wait(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
        () = tokio::time::sleep(delay) => false,
    }
}

impl Runtime {
    /// Renews the lease, reads the live members and hands over / takes over shards.
    async fn rebalance(&mut self) {
        let lease = Lease {
            replica: self.options.replica.clone(),
            api: self.options.api.clone(),
            owned: self.owned.keys().copied().collect(),
            members: self.live,
            at_ms: now_ms(),
        };
        if let Err(e) = self.members.renew(&lease).await {
            // Without a lease the others will take our shards; keep what we have until we
            // can see the membership again (it decides, not a guess).
            self.metrics.heartbeat_errors.inc();
            debug!(error = %e, "cannot renew the membership lease");
            return;
        }
        let live = match self.members.live().await {
            Ok(l) => l,
            Err(e) => {
                debug!(error = %e, "cannot read the membership");
                return;
            }
        };
        let mut names: Vec<String> = live.iter().map(|l| l.replica.clone()).collect();
        self.cluster.set_leases(live);
        if !names.contains(&self.options.replica) {
            names.push(self.options.replica.clone());
        }
        self.live = names.len();
        self.metrics
            .members
            .set(i64::try_from(names.len()).unwrap_or(i64::MAX));
        let want = ring::owned_by(&self.options.replica, self.options.shards, &names);
        let have: BTreeSet<u32> = self.owned.keys().copied().collect();
        let lost: Vec<u32> = have.difference(&want).copied().collect();
        let gained: Vec<u32> = want.difference(&have).copied().collect();
        if lost.is_empty() && gained.is_empty() {
            return;
        }
        self.rebuild = true;
        for shard in &lost {
            self.hand_over(*shard).await;
        }
        for shard in &gained {
            self.take_over(*shard).await;
        }
        self.cluster.set_owned(self.owned.keys().copied().collect());
        self.metrics
            .owned
            .set(i64::try_from(self.owned.len()).unwrap_or(i64::MAX));
        info!(
            members = names.len(),
            owned = self.owned.len(),
            lost = lost.len(),
            gained = gained.len(),
            "shard table changed"
        );
    }

    /// Snapshots `shard`, forgets it.
    async fn hand_over(&mut self, shard: u32) {
        if let Some(o) = self.owned.get(&shard) {
            let seq = o.seq;
            if let Err(e) = self.save(shard, seq).await {
                // The new owner replays from the previous snapshot: nothing is lost.
                warn!(shard, error = %e, "cannot snapshot a shard being handed over");
            }
        }
        self.owned.remove(&shard);
        self.cluster.set_owned(self.owned.keys().copied().collect());
        let removed = {
            let mut state = self
                .engine
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            snapshot::release(&mut state, shard, self.options.shards)
        };
        self.metrics.released.inc();
        debug!(shard, hosts = removed, "shard handed over");
    }

    /// Restores `shard`'s snapshot (if any) and owns it. On a read error the shard is not
    /// taken now (the next heartbeat tries again): starting empty would lose its history.
    async fn take_over(&mut self, shard: u32) {
        let snap = match self.load(shard).await {
            Ok(s) => s,
            Err(e) => {
                self.metrics.snapshot_errors.inc();
                warn!(shard, error = %e, "cannot read the shard snapshot; retrying later");
                return;
            }
        };
        let seq = {
            let mut state = self
                .engine
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            snapshot::release(&mut state, shard, self.options.shards);
            match &snap {
                Some(s) => {
                    snapshot::restore(&mut state, s);
                    s.seq
                }
                None => 0,
            }
        };
        self.owned.insert(shard, Owned { seq, saved: seq });
        self.metrics.taken.inc();
        debug!(shard, seq, restored = snap.is_some(), "shard taken over");
    }

    /// One ordered consumer per owned shard, each from its applied sequence + 1 (`None`: one
    /// could not be made; the next heartbeat tries again).
    async fn consumers(&mut self) -> Option<Deliveries> {
        let mut deliveries: Deliveries = SelectAll::new();
        let todo: Vec<(u32, u64)> = self.owned.iter().map(|(s, o)| (*s, o.seq)).collect();
        for (shard, seq) in todo {
            match self.consumer(shard, seq).await {
                Ok(s) => deliveries.push(s),
                Err(e) => {
                    warn!(shard, error = %e, "cannot create a shard consumer; retrying");
                    return None;
                }
            }
        }
        self.rebuild = false;
        Some(deliveries)
    }

    async fn consumer(
        &self,
        shard: u32,
        seq: u64,
    ) -> Result<Pin<Box<dyn Stream<Item = Delivery> + Send>>, String> {
        let deliver_policy = if seq == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            }
        };
        let c = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: flows_subject(shard),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let messages = c.messages().await.map_err(|e| e.to_string())?;
        Ok(Box::pin(
            messages.map(move |m| (shard, m.map_err(|e| e.to_string()))),
        ))
    }

    /// Applies one message of `shard` (skipping what the snapshot already covers).
    async fn apply(&mut self, shard: u32, msg: &jetstream::Message) {
        let Ok(info) = msg.info() else {
            warn!(shard, "a flow message without JetStream metadata; skipped");
            return;
        };
        let seq = info.stream_sequence;
        let Some(owned) = self.owned.get_mut(&shard) else {
            return;
        };
        if seq <= owned.seq {
            self.metrics.skipped_duplicates.inc();
            return;
        }
        owned.seq = seq;
        match FlowBatch::from_bytes(&msg.subject, &msg.payload) {
            Ok(batch) => {
                ingest::ingest_batch(&self.engine, batch);
                ingest::publish_alerts(&self.engine, self.bus.as_ref()).await;
            }
            Err(e) => {
                // Counted as the default ingest counts it, then dead-lettered and skipped.
                ingest::ingest_message(
                    &self.engine,
                    &netwarden_api::bus::Message {
                        subject: msg.subject.to_string(),
                        payload: msg.payload.clone(),
                    },
                );
                self.metrics.dead_letters.inc();
                debug!(shard, seq, error = %e, "corrupt flow batch dead-lettered");
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nw-Subject", msg.subject.as_str());
                headers.insert("Nw-Stream-Seq", seq.to_string().as_str());
                headers.insert("Nw-Replica", self.options.replica.as_str());
                if let Err(e) = self
                    .client
                    .publish_with_headers(DLQ_SUBJECT, headers, msg.payload.clone())
                    .await
                {
                    debug!(error = %e, "cannot publish to the dead-letter subject");
                }
            }
        }
    }

    /// Snapshots every owned shard that changed since its last snapshot (all when `force`).
    async fn snapshot_all(&mut self, force: bool) {
        let todo: Vec<(u32, u64)> = self
            .owned
            .iter()
            .filter(|(_, o)| force || o.seq != o.saved)
            .map(|(s, o)| (*s, o.seq))
            .collect();
        let started = Instant::now();
        for (shard, seq) in &todo {
            match self.save(*shard, *seq).await {
                Ok(()) => {
                    if let Some(o) = self.owned.get_mut(shard) {
                        o.saved = *seq;
                    }
                }
                Err(e) => {
                    self.metrics.snapshot_errors.inc();
                    debug!(shard, error = %e, "cannot write a shard snapshot");
                }
            }
        }
        if !todo.is_empty() {
            debug!(
                shards = todo.len(),
                ms = started.elapsed().as_millis(),
                "snapshots written"
            );
        }
    }

    /// Writes the snapshot of `shard` at `seq`: chunks first, then the head, then old chunks go.
    async fn save(&self, shard: u32, seq: u64) -> Result<(), String> {
        let snap = {
            let state = self.engine.read();
            snapshot::capture(&state, shard, self.options.shards, seq)
        };
        let encoded = serde_json::to_vec(&snap).map_err(|e| e.to_string())?;
        let parts = snapshot::chunks(&encoded, self.options.max_chunk);
        let previous = self.head(shard).await?;
        let generation = previous.as_ref().map_or(1, |h| h.generation + 1);
        for (i, p) in parts.iter().enumerate() {
            self.state
                .put(snapshot::chunk_key(shard, generation, i), p.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
        let head = Head {
            seq,
            generation,
            chunks: parts.len(),
            bytes: encoded.len(),
            writer: self.options.replica.clone(),
        };
        let body = serde_json::to_vec(&head).map_err(|e| e.to_string())?;
        self.state
            .put(snapshot::head_key(shard), Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(old) = previous {
            for i in 0..old.chunks {
                let _ = self
                    .state
                    .purge(snapshot::chunk_key(shard, old.generation, i))
                    .await;
            }
        }
        self.metrics.snapshots.inc();
        self.metrics
            .snapshot_bytes
            .set(i64::try_from(encoded.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    async fn head(&self, shard: u32) -> Result<Option<Head>, String> {
        match self
            .state
            .get(snapshot::head_key(shard))
            .await
            .map_err(|e| e.to_string())?
        {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| format!("snapshot head: {e}")),
            None => Ok(None),
        }
    }

    /// Reads `shard`'s snapshot (`None`: never snapshotted).
    async fn load(&self, shard: u32) -> Result<Option<snapshot::ShardSnapshot>, String> {
        let Some(head) = self.head(shard).await? else {
            return Ok(None);
        };
        let mut parts = Vec::with_capacity(head.chunks);
        for i in 0..head.chunks {
            let part = self
                .state
                .get(snapshot::chunk_key(shard, head.generation, i))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("chunk {i} of generation {} is missing", head.generation))?;
            parts.push(part);
        }
        snapshot::decode(&parts, shard).map(Some)
    }
}
