//! UDP listener: one socket, one [`Collector`], datagrams of any supported protocol (the
//! protocol is detected per datagram, so one port can take NetFlow, IPFIX and sFlow).
//!
//! The receive buffer is enlarged with `SO_RCVBUF` (exporters send their flows in bursts;
//! the kernel caps the request at `net.core.rmem_max`) and the effective size is logged and
//! reported. Datagrams are read in batches: after each readiness event, non-blocking
//! `recv_from` runs until `WouldBlock` or `batch` datagrams, and the batch's outputs go to the
//! consumer in one hand-over (one channel message per batch, not per record: per-record
//! messages cost more than decoding). The decode loop never waits on
//! its consumer: a sink that cannot take a batch drops it and the drop is counted, because a
//! stalled reader would make the kernel drop whole datagrams, templates included.
//! Run several listeners for several addresses; each owns its collector.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Collector, CollectorConfig, CollectorStats, ExporterStats, Output};

/// Listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to bind (`0.0.0.0:2055`, `[::]:4739`, `127.0.0.1:0` in tests).
    pub address: SocketAddr,
    /// Requested `SO_RCVBUF` in bytes (the kernel may grant less, or double it on Linux).
    pub recv_buffer_bytes: usize,
    /// Most datagrams read per readiness event before yielding to other tasks.
    pub batch: usize,
    /// Decoder settings.
    pub collector: CollectorConfig,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 2055)),
            recv_buffer_bytes: 8 * 1024 * 1024,
            batch: 64,
            collector: CollectorConfig::default(),
        }
    }
}

/// What a listener reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListenerStats {
    /// Bound address.
    pub local_addr: SocketAddr,
    /// Effective `SO_RCVBUF` as the kernel reports it.
    pub recv_buffer_bytes: usize,
    /// Readiness events served.
    pub batches: u64,
    /// `recv_from` errors other than `WouldBlock`.
    pub recv_errors: u64,
    /// The collector's statistics.
    pub collector: CollectorStats,
}

/// A bound UDP flow listener, not yet running.
#[derive(Debug)]
pub struct Listener {
    socket: UdpSocket,
    collector: Collector,
    batch: usize,
    stats: Arc<Mutex<ListenerStats>>,
    exporters: Arc<Mutex<Vec<(IpAddr, ExporterStats)>>>,
}

/// How often the per-exporter snapshot of [`Listener::exporters_handle`] is refreshed: it
/// copies every exporter's counters, too much work for every batch.
pub const EXPORTER_SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Outputs after which a batch is handed over before the next datagram: bounds the memory a
/// batch holds (a datagram yields at most a few thousand records).
pub const MAX_BATCH_OUTPUTS: usize = 1024;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Listener {
    /// Binds the socket and sets its receive buffer. Must run inside a tokio runtime.
    pub fn bind(config: ListenerConfig) -> std::io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(
            Domain::for_address(config.address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        if let Err(error) = socket.set_recv_buffer_size(config.recv_buffer_bytes) {
            tracing::warn!(%error, requested = config.recv_buffer_bytes, "SO_RCVBUF refused");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&config.address.into())?;
        let effective = socket.recv_buffer_size().unwrap_or(0);
        let socket = UdpSocket::from_std(socket.into())?;
        let local_addr = socket.local_addr()?;
        tracing::info!(
            %local_addr,
            recv_buffer_bytes = effective,
            requested = config.recv_buffer_bytes,
            "flow listener bound (NetFlow v5/v9, IPFIX, sFlow)"
        );
        if effective < config.recv_buffer_bytes {
            tracing::warn!(
                effective,
                requested = config.recv_buffer_bytes,
                "receive buffer smaller than requested: raise net.core.rmem_max"
            );
        }
        let collector = Collector::new(config.collector);
        let stats = ListenerStats {
            local_addr,
            recv_buffer_bytes: effective,
            batches: 0,
            recv_errors: 0,
            collector: collector.stats(),
        };
        Ok(Self {
            socket,
            collector,
            batch: config.batch.max(1),
            stats: Arc::new(Mutex::new(stats)),
            exporters: Arc::default(),
        })
    }

    /// The bound address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.stats().local_addr
    }

    /// Effective receive buffer size.
    pub fn recv_buffer_bytes(&self) -> usize {
        self.stats().recv_buffer_bytes
    }

    /// A handle to the statistics, refreshed after every batch while running.
    pub fn stats_handle(&self) -> Arc<Mutex<ListenerStats>> {
        Arc::clone(&self.stats)
    }

    /// A handle to the counters of every tracked exporter, refreshed every
    /// [`EXPORTER_SNAPSHOT_EVERY`] while running and when the listener stops.
    pub fn exporters_handle(&self) -> Arc<Mutex<Vec<(IpAddr, ExporterStats)>>> {
        Arc::clone(&self.exporters)
    }

    fn snapshot_exporters(&self) {
        let all: Vec<_> = self.collector.exporters().map(|(a, s)| (a, *s)).collect();
        *self
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = all;
    }

    /// Current statistics.
    pub fn stats(&self) -> ListenerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Receives and decodes until `shutdown` completes, handing outputs to `sink` in batches:
    /// one call per readiness event (at most `batch` datagrams, at most [`MAX_BATCH_OUTPUTS`]
    /// outputs plus one datagram's worth), never one per record. `sink` returns how many of
    /// the outputs it could not take (counted as `sink_dropped`). Returns the final statistics.
    pub async fn run<F, S>(mut self, mut sink: F, shutdown: S) -> ListenerStats
    where
        F: FnMut(Vec<Output>) -> u64 + Send,
        S: Future<Output = ()> + Send,
    {
        let mut buf = vec![0u8; 65_536];
        let mut batches = 0u64;
        let mut recv_errors = 0u64;
        let mut snapshot_at = Instant::now();
        // Exporter counters changed since the last snapshot: a quiet socket still gets its
        // last burst into the snapshot within one period.
        let mut dirty = false;
        // Capacity of the next batch: the size of the last one, so a steady stream does not
        // regrow its vector every time.
        let mut capacity = 64;
        let mut tick = tokio::time::interval(EXPORTER_SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    if dirty {
                        dirty = false;
                        snapshot_at = Instant::now();
                        self.snapshot_exporters();
                    }
                    continue;
                }
                ready = self.socket.readable() => {
                    if let Err(error) = ready {
                        tracing::warn!(%error, "flow listener socket failed");
                        break;
                    }
                }
            }
            batches += 1;
            let mut dropped = 0u64;
            let mut outputs: Vec<Output> = Vec::with_capacity(capacity);
            let now = now_ns();
            for _ in 0..self.batch {
                match self.socket.try_recv_from(&mut buf) {
                    Ok((len, from)) => {
                        let exporter = from.ip().to_canonical();
                        if let Err(error) =
                            self.collector
                                .handle(exporter, &buf[..len], now, &mut |o| outputs.push(o))
                        {
                            tracing::debug!(%error, "flow datagram rejected");
                        }
                        if outputs.len() >= MAX_BATCH_OUTPUTS {
                            capacity = outputs.len();
                            dropped += sink(std::mem::replace(
                                &mut outputs,
                                Vec::with_capacity(capacity),
                            ));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        recv_errors += 1;
                        tracing::debug!(%error, "recv_from failed");
                        break;
                    }
                }
            }
            if !outputs.is_empty() {
                capacity = outputs.len().clamp(64, MAX_BATCH_OUTPUTS);
                dropped += sink(outputs);
            }
            if dropped > 0 {
                self.collector.count_sink_drop(dropped);
            }
            let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.batches = batches;
            stats.recv_errors = recv_errors;
            stats.collector = self.collector.stats();
            drop(stats);
            dirty = true;
            if snapshot_at.elapsed() >= EXPORTER_SNAPSHOT_EVERY {
                dirty = false;
                snapshot_at = Instant::now();
                self.snapshot_exporters();
            }
        }
        self.snapshot_exporters();
        self.stats()
    }

    /// Spawns [`Listener::run`] sending each batch of outputs to `tx` as one message, without
    /// waiting (a full channel drops the batch and counts its outputs). Size the channel in
    /// batches: each holds up to [`MAX_BATCH_OUTPUTS`] outputs plus one datagram's.
    pub fn spawn<S>(
        self,
        tx: mpsc::Sender<Vec<Output>>,
        shutdown: S,
    ) -> tokio::task::JoinHandle<ListenerStats>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.run(
            move |outputs| match tx.try_send(outputs) {
                Ok(()) => 0,
                Err(mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o)) => {
                    o.len() as u64
                }
            },
            shutdown,
        ))
    }
}
