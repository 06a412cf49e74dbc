//! UDP listener: one socket, one [`Collector`], datagrams of any supported protocol (the
//! protocol is detected per datagram, so one port can take NetFlow, IPFIX and sFlow).
//!
//! The receive buffer is enlarged with `SO_RCVBUF` (exporters send their flows in bursts;
//! the kernel caps the request at `net.core.rmem_max`) and the effective size is logged and
//! reported. Datagrams are read in batches: after each readiness event, `recvmmsg(2)` (Linux;
//! up to [`RECV_SLOTS`] datagrams per system call, each into its own 64 KiB slot, so none is
//! ever truncated) runs until `WouldBlock` or `batch` datagrams; elsewhere, or if the kernel
//! refuses `recvmmsg`, non-blocking `recv_from` one datagram at a time. The batch's outputs go
//! to the consumer in one hand-over (one call per batch, not per record: per-record hand-overs
//! cost more than decoding), in a vector the listener reuses. The decode loop never waits on
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
    /// outputs plus one datagram's worth), never one per record. `sink` takes what it wants
    /// out of the vector (it is cleared after the call and reused) and returns how many of the
    /// outputs it could not take (counted as `sink_dropped`). Returns the final statistics.
    pub async fn run<F, S>(mut self, mut sink: F, shutdown: S) -> ListenerStats
    where
        F: FnMut(&mut Vec<Output>) -> u64 + Send,
        S: Future<Output = ()> + Send,
    {
        let mut receiver = BatchReceiver::new(self.batch);
        let mut batches = 0u64;
        let mut recv_errors = 0u64;
        let mut snapshot_at = Instant::now();
        // Exporter counters changed since the last snapshot: a quiet socket still gets its
        // last burst into the snapshot within one period.
        let mut dirty = false;
        let mut outputs: Vec<Output> = Vec::with_capacity(64);
        let mut tick = tokio::time::interval(EXPORTER_SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    // One-way records whose merge window passed leave alone (merging on).
                    self.collector.expire_merge(now_ns(), &mut |o| outputs.push(o));
                    if !outputs.is_empty() {
                        let dropped = sink(&mut outputs);
                        outputs.clear();
                        self.collector.count_sink_drop(dropped);
                    }
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
            let now = now_ns();
            let mut left = self.batch;
            while left > 0 {
                let received = match receiver.recv(&self.socket, left) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(error) => {
                        recv_errors += 1;
                        tracing::debug!(%error, "receive failed");
                        break;
                    }
                };
                left = left.saturating_sub(received);
                for (datagram, from) in receiver.datagrams() {
                    let exporter = from.ip().to_canonical();
                    if let Err(error) = self
                        .collector
                        .handle(exporter, datagram, now, &mut |o| outputs.push(o))
                    {
                        tracing::debug!(%error, "flow datagram rejected");
                    }
                    if outputs.len() >= MAX_BATCH_OUTPUTS {
                        dropped += sink(&mut outputs);
                        outputs.clear();
                    }
                }
            }
            if !outputs.is_empty() {
                dropped += sink(&mut outputs);
                outputs.clear();
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
        self.collector.flush_merge(&mut |o| outputs.push(o));
        if !outputs.is_empty() {
            let dropped = sink(&mut outputs);
            self.collector.count_sink_drop(dropped);
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
            move |outputs: &mut Vec<Output>| match tx.try_send(std::mem::take(outputs)) {
                Ok(()) => 0,
                Err(mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o)) => {
                    o.len() as u64
                }
            },
            shutdown,
        ))
    }
}

/// Datagrams received per `recvmmsg(2)` call at most.
pub const RECV_SLOTS: usize = 64;

/// Bytes of one receive slot: the largest UDP payload fits, so nothing is truncated.
const SLOT: usize = 65_536;

/// Receives datagrams in batches into reused buffers: `recvmmsg(2)` where available, else (or
/// when the kernel refuses it) one `recv_from` per datagram.
struct BatchReceiver {
    /// `slots` slots of [`SLOT`] bytes.
    buf: Vec<u8>,
    slots: usize,
    /// Slot, length and sender of each datagram of the last call.
    got: Vec<(usize, usize, SocketAddr)>,
    mmsg: bool,
}

impl BatchReceiver {
    fn new(batch: usize) -> Self {
        let slots = batch.clamp(1, RECV_SLOTS);
        Self {
            buf: vec![0; slots * SLOT],
            slots,
            got: Vec::with_capacity(slots),
            mmsg: cfg!(target_os = "linux"),
        }
    }

    /// Receives up to `max` datagrams without waiting; how many (`WouldBlock`: none ready).
    fn recv(&mut self, socket: &UdpSocket, max: usize) -> std::io::Result<usize> {
        self.got.clear();
        let max = max.clamp(1, self.slots);
        #[cfg(target_os = "linux")]
        if self.mmsg {
            let result = socket.try_io(tokio::io::Interest::READABLE, || {
                mmsg::recv(socket, &mut self.buf[..max * SLOT], &mut self.got)
            });
            match result {
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSYS) => {
                    tracing::info!("recvmmsg unavailable: receiving one datagram per call");
                    self.mmsg = false;
                }
                other => return other,
            }
        }
        let (len, from) = socket.try_recv_from(&mut self.buf[..SLOT])?;
        self.got.push((0, len, from));
        Ok(1)
    }

    /// The datagrams of the last [`BatchReceiver::recv`].
    fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got.iter().map(|&(slot, len, from)| {
            let start = slot * SLOT;
            (&self.buf[start..start + len.min(SLOT)], from)
        })
    }
}

#[cfg(target_os = "linux")]
mod mmsg {
    use std::io::IoSliceMut;
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd as _;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

    use super::SLOT;

    /// One `recvmmsg(2)`, `MSG_DONTWAIT`, one datagram per [`SLOT`] of `buf`; appends slot,
    /// length and sender of each to `got` and returns how many datagrams were read.
    pub(super) fn recv(
        socket: &tokio::net::UdpSocket,
        buf: &mut [u8],
        got: &mut Vec<(usize, usize, SocketAddr)>,
    ) -> std::io::Result<usize> {
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            buf.chunks_mut(SLOT).map(|s| [IoSliceMut::new(s)]).collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        let mut count = 0;
        for (slot, message) in received.enumerate() {
            count += 1;
            // A datagram without a usable sender address cannot be attributed: skipped.
            if let Some(from) = message.address.as_ref().and_then(to_std) {
                got.push((slot, message.bytes, from));
            }
        }
        Ok(count)
    }

    fn to_std(address: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = address.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        if let Some(v6) = address.as_sockaddr_in6() {
            return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A NetFlow v5 datagram with `count` records (sequence `seq`, distinct ports per datagram).
    fn v5(seq: u32, count: u16) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&5u16.to_be_bytes());
        d.extend_from_slice(&count.to_be_bytes());
        d.extend_from_slice(&10_000u32.to_be_bytes());
        d.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        d.extend_from_slice(&0u32.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 0]);
        for i in 0..count {
            d.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 2]);
            d.extend_from_slice(&3u32.to_be_bytes());
            d.extend_from_slice(&180u32.to_be_bytes());
            d.extend_from_slice(&9_000u32.to_be_bytes());
            d.extend_from_slice(&9_500u32.to_be_bytes());
            let port = 1024 + (seq as u16 % 8192) * 4 + i;
            d.extend_from_slice(&port.to_be_bytes());
            d.extend_from_slice(&22u16.to_be_bytes());
            d.extend_from_slice(&[0, 0x12, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        d
    }

    /// A burst of 3½ receive batches, all queued in the socket before the listener reads:
    /// every datagram is received, decoded and counted, in a handful of readiness events (so
    /// several datagrams per system call), and the sink sees every record.
    #[tokio::test]
    async fn a_burst_larger_than_one_receive_batch_is_fully_received_and_counted() {
        let n = RECV_SLOTS * 3 + RECV_SLOTS / 2;
        let listener = Listener::bind(ListenerConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ListenerConfig::default()
        })
        .unwrap();
        let to = listener.local_addr();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent_seq = 0u32;
        for _ in 0..n {
            sender.send_to(&v5(sent_seq, 2), to).unwrap();
            sent_seq += 2;
        }
        let stats = listener.stats_handle();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let records = Arc::new(Mutex::new(0usize));
        let seen = Arc::clone(&records);
        let run = tokio::spawn(listener.run(
            move |outputs: &mut Vec<Output>| {
                *seen.lock().unwrap() += outputs
                    .iter()
                    .filter(|o| matches!(o, Output::Flow(_)))
                    .count();
                0
            },
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.lock().unwrap().collector.totals.datagrams < n as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        let stats = run.await.unwrap();
        assert_eq!(stats.collector.totals.datagrams, n as u64);
        assert_eq!(stats.collector.totals.records, 2 * n as u64);
        assert_eq!(stats.collector.totals.lost_records, 0);
        assert_eq!(stats.recv_errors, 0);
        assert_eq!(*records.lock().unwrap(), 2 * n);
        // `batch` (64) datagrams per readiness event at most, so at least 4 events; one per
        // datagram would be 224.
        assert!(
            (4..=12).contains(&stats.batches),
            "{} readiness events for {n} queued datagrams",
            stats.batches
        );
    }

    /// One call reads a whole batch on Linux (`recvmmsg`), every datagram intact and with its
    /// sender; the fallback reads one per call.
    #[tokio::test]
    async fn one_receive_call_takes_a_whole_batch() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let n = RECV_SLOTS + 10;
        for i in 0..n {
            sender
                .send_to(&v5(i as u32, 1 + (i % 3) as u16), to)
                .unwrap();
        }
        // A big one too: a slot holds the largest datagram.
        let big = vec![7u8; 60_000];
        sender.send_to(&big, to).unwrap();
        socket.readable().await.unwrap();
        let mut receiver = BatchReceiver::new(1000);
        let mut got = Vec::new();
        let mut calls = 0;
        while got.len() < n + 1 {
            match receiver.recv(&socket, 1000) {
                Ok(_) => {
                    calls += 1;
                    got.extend(receiver.datagrams().map(|(d, from)| (d.to_vec(), from)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    socket.readable().await.unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), n + 1);
        for (i, (d, from)) in got.iter().take(n).enumerate() {
            assert_eq!(d, &v5(i as u32, 1 + (i % 3) as u16));
            assert_eq!(*from, sender.local_addr().unwrap());
        }
        assert_eq!(got[n].0, big);
        if cfg!(target_os = "linux") {
            assert!(calls <= 3, "{calls} calls for {} datagrams", n + 1);
        } else {
            assert_eq!(calls, n + 1);
        }
    }
}
