//! IPFIX over TCP (RFC 7011 §10.4): one listening socket, one task and one [`Collector`] per
//! connection.
//!
//! A TCP stream carries IPFIX messages back to back; each is framed by the 16-bit length of
//! its header (version 10, length ≥ 16). Anything else (another version, a length below the
//! header) is garbage: the stream cannot be resynchronised, so the connection is closed and
//! counted. Templates live per TCP session (RFC 7011 §8.1: they are valid for the session and
//! freed when it closes), so every connection has its own collector, dropped with it; records
//! of every connection go to the same sink.
//!
//! Bounds (untrusted exporters): at most `max_connections` at once (extra ones are accepted and
//! closed at once, counted `refused`), one 64 KiB buffer per connection (the largest message),
//! an idle timeout, and a task per connection, so a slow or idle exporter holding half a
//! message stalls nobody else.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use super::{Collector, CollectorConfig, CollectorStats, ExporterStats, ListenerStats, Output};

/// Smallest IPFIX message: the 16-byte header.
pub const MIN_MESSAGE: usize = 16;
/// Largest IPFIX message (16-bit length field); also the per-connection buffer size.
pub const MAX_MESSAGE: usize = 65_535;

/// TCP listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpListenerConfig {
    /// Address to listen on (IANA port 4739).
    pub address: SocketAddr,
    /// Most connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// A connection silent for this long is closed (seconds; 0 = never).
    pub idle_timeout_secs: u64,
    /// Decoder settings, one collector per connection. Connection `n` numbers its flows from
    /// `flow_id_base + ((n mod 2^16) << 32)`, so connections of one exporter do not collide.
    pub collector: CollectorConfig,
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 4739)),
            max_connections: 256,
            idle_timeout_secs: 900,
            collector: CollectorConfig::default(),
        }
    }
}

/// Connection counters of a TCP listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections that ended (any reason).
    pub closed: u64,
    /// Connections closed on a bad frame (version not 10 or length < 16).
    pub bad_frames: u64,
    /// Connections that ended in the middle of a message (its bytes are dropped).
    pub partial_at_close: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Read errors (reset, ...).
    pub read_errors: u64,
    /// Complete messages framed.
    pub messages: u64,
}

#[derive(Debug)]
struct Shared {
    stats: Mutex<ListenerStats>,
    tcp: Mutex<TcpStats>,
    exporters: Arc<Mutex<Vec<(IpAddr, ExporterStats)>>>,
    max_exporters: usize,
}

impl Shared {
    fn tcp(&self, f: impl FnOnce(&mut TcpStats)) {
        f(&mut self.tcp.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Adds what a connection's collector counted since `last` (gauges move by the difference).
    fn report(&self, exporter: IpAddr, now: &CollectorStats, last: &CollectorStats) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let c = &mut stats.collector;
        c.totals.add_delta(&now.totals, &last.totals);
        c.global.add_delta(&now.global, &last.global);
        c.exporters = (c.exporters + now.exporters).saturating_sub(last.exporters);
        c.templates = (c.templates + now.templates).saturating_sub(last.templates);
        drop(stats);
        if now.totals == last.totals {
            return;
        }
        let mut exporters = self
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, s)) = exporters.iter_mut().find(|(ip, _)| *ip == exporter) {
            s.add_delta(&now.totals, &last.totals);
        } else if exporters.len() < self.max_exporters {
            let mut s = ExporterStats::default();
            s.add_delta(&now.totals, &last.totals);
            exporters.push((exporter, s));
        }
    }
}

/// A bound IPFIX-over-TCP listener, not yet running.
#[derive(Debug)]
pub struct TcpCollector {
    listener: TcpListener,
    config: TcpListenerConfig,
    shared: Arc<Shared>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What ends a connection.
enum End {
    Eof,
    Shutdown,
    Idle,
    BadFrame,
    ReadError,
}

impl TcpCollector {
    /// Binds the listening socket. Must run inside a tokio runtime.
    pub async fn bind(config: TcpListenerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.address).await?;
        let local_addr = listener.local_addr()?;
        tracing::info!(%local_addr, max_connections = config.max_connections, "IPFIX TCP listener bound");
        let stats = ListenerStats {
            local_addr,
            recv_buffer_bytes: 0,
            batches: 0,
            recv_errors: 0,
            collector: CollectorStats::default(),
        };
        let shared = Arc::new(Shared {
            stats: Mutex::new(stats),
            tcp: Mutex::default(),
            exporters: Arc::default(),
            max_exporters: config.collector.max_exporters,
        });
        Ok(Self {
            listener,
            config,
            shared,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.stats().local_addr
    }

    /// Statistics summed over every connection (`batches` = reads, `recv_errors` = read
    /// errors and bad frames), refreshed after every read.
    pub fn stats(&self) -> ListenerStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connection counters.
    pub fn tcp_stats(&self) -> TcpStats {
        *self
            .shared
            .tcp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A closure reading the current statistics (for metrics while running).
    pub fn stats_reader(&self) -> impl Fn() -> (ListenerStats, TcpStats) + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || {
            (
                *shared.stats.lock().unwrap_or_else(PoisonError::into_inner),
                *shared.tcp.lock().unwrap_or_else(PoisonError::into_inner),
            )
        }
    }

    /// Per exporter address, the counters of all its connections (at most `max_exporters`
    /// addresses; later ones only count in the totals).
    pub fn exporters_handle(&self) -> Arc<Mutex<Vec<(IpAddr, ExporterStats)>>> {
        Arc::clone(&self.shared.exporters)
    }

    /// Accepts and serves connections until `shutdown` completes, then closes them all and
    /// returns the final statistics. Each connection hands its outputs to a clone of `sink`
    /// once per read; `sink` returns how many it could not take (`sink_dropped`).
    pub async fn run<F, S>(self, sink: F, shutdown: S) -> (ListenerStats, TcpStats)
    where
        F: Fn(Vec<Output>) -> u64 + Clone + Send + 'static,
        S: Future<Output = ()> + Send,
    {
        let permits = Arc::new(Semaphore::new(self.config.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let sequence = AtomicU64::new(0);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                self.shared.tcp(|t| t.refused += 1);
                tracing::debug!(%peer, "IPFIX TCP connection refused: too many open");
                drop(stream);
                continue;
            };
            self.shared.tcp(|t| {
                t.accepted += 1;
                t.active += 1;
            });
            let n = sequence.fetch_add(1, Ordering::Relaxed);
            let mut config = self.config.collector.clone();
            config.flow_id_base = config.flow_id_base.wrapping_add((n & 0xffff) << 32);
            let shared = Arc::clone(&self.shared);
            let sink = sink.clone();
            let stop = stop_rx.clone();
            let idle = Duration::from_secs(self.config.idle_timeout_secs);
            tasks.spawn(async move {
                let end = serve(stream, peer, config, &shared, sink, stop, idle).await;
                shared.tcp(|t| {
                    t.active -= 1;
                    t.closed += 1;
                    match end {
                        End::BadFrame => t.bad_frames += 1,
                        End::Idle => t.idle_closed += 1,
                        End::ReadError => t.read_errors += 1,
                        End::Eof | End::Shutdown => {}
                    }
                });
                drop(permit);
            });
        }
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        (self.stats(), self.tcp_stats())
    }

    /// Spawns [`TcpCollector::run`], sending each read's outputs to `tx` without waiting (a
    /// full channel drops them and counts).
    pub fn spawn<S>(
        self,
        tx: mpsc::Sender<Vec<Output>>,
        shutdown: S,
    ) -> tokio::task::JoinHandle<(ListenerStats, TcpStats)>
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

/// Where the next message ends, if the buffer holds a whole one; `Err` on a bad header.
fn frame(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let version = u16::from_be_bytes([buf[0], buf[1]]);
    let length = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if version != 10 || length < MIN_MESSAGE {
        return Err(());
    }
    Ok((buf.len() >= length).then_some(length))
}

/// Serves one connection until EOF, a bad frame, the idle timeout or shutdown.
async fn serve<F>(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: CollectorConfig,
    shared: &Shared,
    sink: F,
    mut stop: watch::Receiver<bool>,
    idle: Duration,
) -> End
where
    F: Fn(Vec<Output>) -> u64,
{
    let exporter = peer.ip().to_canonical();
    let mut collector = Collector::new(config);
    let mut last = CollectorStats::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut filled = 0usize;
    tracing::debug!(%peer, "IPFIX TCP connection");
    let end = loop {
        let read = async {
            if idle.is_zero() {
                Some(stream.read(&mut buf[filled..]).await)
            } else {
                tokio::time::timeout(idle, stream.read(&mut buf[filled..]))
                    .await
                    .ok()
            }
        };
        let n = tokio::select! {
            _ = stop.wait_for(|s| *s) => break End::Shutdown,
            read = read => match read {
                None => break End::Idle,
                Some(Ok(0)) => break End::Eof,
                Some(Ok(n)) => n,
                Some(Err(error)) => {
                    tracing::debug!(%peer, %error, "IPFIX TCP read failed");
                    break End::ReadError;
                }
            },
        };
        filled += n;
        let now = now_ns();
        let mut outputs = Vec::new();
        let mut start = 0usize;
        let mut messages = 0u64;
        let bad = loop {
            match frame(&buf[start..filled]) {
                Err(()) => break true,
                Ok(None) => break false,
                Ok(Some(len)) => {
                    messages += 1;
                    if let Err(error) =
                        collector.handle(exporter, &buf[start..start + len], now, &mut |o| {
                            outputs.push(o);
                        })
                    {
                        tracing::debug!(%peer, %error, "IPFIX TCP message rejected");
                    }
                    start += len;
                }
            }
        };
        buf.copy_within(start..filled, 0);
        filled -= start;
        if !outputs.is_empty() {
            let dropped = sink(outputs);
            if dropped > 0 {
                collector.count_sink_drop(dropped);
            }
        }
        let now_stats = collector.stats();
        shared.report(exporter, &now_stats, &last);
        last = now_stats;
        {
            let mut stats = shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
            stats.batches += 1;
            stats.recv_errors += u64::from(bad);
        }
        shared.tcp(|t| t.messages += messages);
        if bad {
            tracing::debug!(%peer, "IPFIX TCP: not an IPFIX message header, closing");
            break End::BadFrame;
        }
    };
    if filled > 0 && matches!(end, End::Eof | End::Idle | End::ReadError) {
        shared.tcp(|t| t.partial_at_close += 1);
    }
    if matches!(end, End::ReadError) {
        shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_errors += 1;
    }
    // The session's templates go with its collector: its gauges leave the totals.
    let gone = CollectorStats {
        exporters: 0,
        templates: 0,
        ..last
    };
    shared.report(exporter, &gone, &last);
    end
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_by_header_length() {
        assert_eq!(frame(&[0, 10, 0]), Ok(None));
        assert_eq!(frame(&[0, 10, 0, 16]), Ok(None));
        assert_eq!(
            frame(&[0, 10, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]),
            Ok(Some(16))
        );
        assert_eq!(frame(&[0, 10, 0, 15]), Err(()));
        assert_eq!(frame(&[0, 9, 0, 40]), Err(()));
        assert_eq!(frame(b"GET / HTTP/1.1"), Err(()));
    }
}
