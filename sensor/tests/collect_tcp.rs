//! IPFIX over TCP (RFC 7011 §10.4) on loopback: softflowd 1.1.0 exports the nDPI capture over
//! TCP (`-P tcp`) to a `TcpCollector`; the flows must equal the same capture exported over UDP
//! to a UDP `Listener` in the same test, and the committed softflowd export. Then garbage,
//! short headers, partial messages, byte-by-byte delivery and the connection bound, over real
//! TCP connections.

#![allow(clippy::unwrap_used, missing_docs)]

mod collect_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use collect_support::{as_exported, datagrams, expected, expected_tuple, testdata};
use netwarden_api::flow::FlowSource;
use netwarden_sensor::collect::{
    Listener, ListenerConfig, ListenerStats, Output, TcpCollector, TcpListenerConfig, TcpStats,
};

type Tuple = (String, String, u32, u32, u32, u64, u64);

fn flows(outputs: &[Output]) -> Vec<Tuple> {
    let mut got: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Flow(f) => Some(f),
            Output::Counters(_) => None,
        })
        .inspect(|f| assert_eq!(f.record.source, FlowSource::Ipfix as i32))
        .map(as_exported)
        .collect();
    got.sort();
    got
}

/// Polls `done` every 20 ms; panics after 10 s (a hang guard, not a timing assertion).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Running {
    addr: SocketAddr,
    reader: Box<dyn Fn() -> (ListenerStats, TcpStats) + Send + Sync>,
    rx: tokio::sync::mpsc::Receiver<Vec<Output>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(ListenerStats, TcpStats)>,
}

impl Running {
    fn tcp(&self) -> TcpStats {
        (self.reader)().1
    }

    fn finish(self, rt: &tokio::runtime::Runtime) -> (Vec<Output>, ListenerStats, TcpStats) {
        self.stop.send(()).unwrap();
        let (stats, tcp) = rt.block_on(self.task).unwrap();
        let mut rx = self.rx;
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch);
        }
        (out, stats, tcp)
    }
}

fn start(rt: &tokio::runtime::Runtime, max_connections: usize) -> Running {
    rt.block_on(async {
        let config = TcpListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            max_connections,
            ..TcpListenerConfig::default()
        };
        let listener = TcpCollector::bind(config).await.unwrap();
        let addr = listener.local_addr();
        let reader = Box::new(listener.stats_reader());
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = listener.spawn(tx, async move {
            let _ = stop_rx.await;
        });
        Running {
            addr,
            reader,
            rx,
            stop,
            task,
        }
    })
}

/// The same softflowd export (IPFIX, IPv6 on) over UDP to a `Listener`.
fn over_udp(rt: &tokio::runtime::Runtime) -> Vec<Output> {
    let entered = rt.enter();
    let listener = Listener::bind(ListenerConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        ..ListenerConfig::default()
    })
    .unwrap();
    let port = listener.local_addr().port();
    let stats = listener.stats_handle();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = listener.spawn(tx, async move {
        let _ = stop_rx.await;
    });
    drop(entered);
    let pcap = netwarden_testkit::testdata("ndpi/iphone.pcap");
    netwarden_testkit::softflowd::export(&pcap, 500, port, &["-v", "10", "-6"]);
    // softflowd sent 3 messages; wait until the listener has read them.
    wait_until("UDP datagrams", || {
        stats.lock().unwrap().collector.totals.datagrams >= 3
    });
    stop.send(()).unwrap();
    rt.block_on(task).unwrap();
    let mut out = Vec::new();
    while let Ok(batch) = rx.try_recv() {
        out.extend(batch);
    }
    out
}

#[test]
fn softflowd_ipfix_over_tcp_equals_udp() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = start(&rt, 8);
    let pcap = netwarden_testkit::testdata("ndpi/iphone.pcap");
    netwarden_testkit::softflowd::export(
        &pcap,
        500,
        running.addr.port(),
        &["-v", "10", "-6", "-P", "tcp"],
    );
    // softflowd has exited: its connection ends with EOF.
    wait_until("the softflowd connection to close", || {
        running.tcp().closed >= 1
    });
    let (outputs, stats, tcp) = running.finish(&rt);
    assert_eq!(tcp.accepted, 1, "{tcp:?}");
    assert_eq!(tcp.closed, 1);
    assert_eq!(tcp.active, 0);
    assert_eq!(
        (tcp.bad_frames, tcp.partial_at_close, tcp.refused),
        (0, 0, 0)
    );
    assert_eq!(tcp.messages, stats.collector.totals.datagrams);
    assert_eq!(stats.collector.global.datagrams_ipfix, tcp.messages);
    assert_eq!(stats.collector.totals.errors, 0);
    assert_eq!(stats.collector.global.sink_dropped, 0);
    assert!(stats.collector.totals.templates_learned > 0);
    assert_eq!(
        stats.collector.templates, 0,
        "the session's templates are freed with it"
    );
    let tcp_flows = flows(&outputs);
    assert_eq!(stats.collector.totals.records, tcp_flows.len() as u64);

    let udp_flows = flows(&over_udp(&rt));
    assert_eq!(tcp_flows, udp_flows, "TCP and UDP exports differ");

    let exp = expected("generated/softflowd-ipfix.pcap");
    let mut want: Vec<_> = exp["packets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["records"].as_array().cloned().unwrap_or_default())
        .map(|r| expected_tuple(&r))
        .collect();
    want.sort();
    assert_eq!(
        tcp_flows, want,
        "differs from the committed softflowd export"
    );
    let packets: u64 = tcp_flows.iter().map(|t| t.5).sum();
    let bytes: u64 = tcp_flows.iter().map(|t| t.6).sum();
    eprintln!(
        "IPFIX/TCP: {} messages, {} flows, {packets} packets, {bytes} bytes",
        tcp.messages,
        tcp_flows.len()
    );
}

/// The committed softflowd IPFIX export as one TCP byte stream (its UDP payloads back to back).
fn recorded_stream() -> (Vec<u8>, usize) {
    let msgs = datagrams(&testdata("generated/softflowd-ipfix.pcap"));
    let n = msgs.len();
    (msgs.into_iter().flat_map(|d| d.payload).collect(), n)
}

/// Writes `bytes` and waits until the collector closes the connection (EOF or reset), having
/// written nothing back.
fn send_and_wait_close(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut sink = [0u8; 16];
    match s.read(&mut sink) {
        Ok(0) => {}
        Ok(n) => panic!("collector wrote {n} bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn bad_frames_close_the_connection_and_are_counted() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = start(&rt, 3);
    let addr = running.addr;
    let (stream, messages) = recorded_stream();

    // Garbage (not version 10): closed by the collector, nothing decoded.
    send_and_wait_close(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Length below the 16-byte header.
    send_and_wait_close(addr, &[0, 10, 0, 15, 0, 0, 0, 0]);
    // Valid messages then garbage: the messages before it count, then the collector closes.
    let mut then_garbage = stream.clone();
    then_garbage.extend_from_slice(&[0xff; 64]);
    send_and_wait_close(addr, &then_garbage);
    wait_until("three bad frames", || running.tcp().bad_frames == 3);

    // Partial and oversized-looking frames: a header claiming 65 535 bytes, then EOF; half a
    // real message, then EOF. Counted as partial at close, no records.
    for bytes in [&[0u8, 10, 0xff, 0xff, 0, 0, 0, 0][..], &stream[..40]] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(bytes).unwrap();
        drop(s);
    }
    wait_until("two partial closes", || running.tcp().partial_at_close == 2);

    // Bound: two exporters stall holding half a message; a third still gets served, byte by
    // byte (every frame reassembled), and a fourth is refused at once (3 max).
    let mut stalled: Vec<_> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&stream[..10]).unwrap();
            s
        })
        .collect();
    wait_until("two stalled connections", || running.tcp().active == 2);
    let mut slow = TcpStream::connect(addr).unwrap();
    wait_until("the third connection", || running.tcp().active == 3);
    let mut refused = TcpStream::connect(addr).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(refused.read(&mut b), Ok(0) | Err(_)), "4th closed");
    wait_until("the refusal count", || running.tcp().refused == 1);
    for byte in &stream {
        slow.write_all(std::slice::from_ref(byte)).unwrap();
    }
    drop(slow);
    wait_until("the byte-by-byte exporter to finish", || {
        running.tcp().closed == 6
    });
    for s in &mut stalled {
        s.flush().unwrap();
    }
    drop(stalled);
    wait_until("the stalled exporters to leave", || {
        running.tcp().closed == 8
    });

    let (outputs, stats, tcp) = running.finish(&rt);
    assert_eq!(tcp.accepted, 8, "{tcp:?}");
    assert_eq!(tcp.bad_frames, 3);
    assert_eq!(tcp.partial_at_close, 4, "2 cut + 2 stalled");
    assert_eq!(tcp.refused, 1);
    assert_eq!(tcp.active, 0);
    // Twice the recorded export: once before the garbage, once byte by byte.
    assert_eq!(tcp.messages, 2 * messages as u64);
    assert_eq!(stats.collector.global.datagrams_ipfix, 2 * messages as u64);
    assert_eq!(stats.recv_errors, 3);
    assert_eq!(stats.collector.templates, 0);
    let got = flows(&outputs);
    let exp = expected("generated/softflowd-ipfix.pcap");
    let one: usize = exp["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(got.len(), 2 * one);
}
