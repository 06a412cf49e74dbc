//! A real exporter on loopback: softflowd reads an nDPI capture and exports NetFlow v5, v9 and
//! IPFIX to a listener bound on 127.0.0.1:0 (pmacctd's sFlow export is in `collect_pipeline.rs`).
//! The flows received must be the ones softflowd exported when the committed captures were made
//! (endpoints and counters; softflowd's times are its clock's, not the pcap's).
//! Fails loudly when an exporter is missing: `scripts/bootstrap --test` installs them.

#![allow(clippy::unwrap_used, missing_docs)]

mod collect_support;

use std::time::Duration;

use collect_support::{as_exported, expected, expected_tuple};
use netwarden_api::flow::FlowSource;
use netwarden_sensor::collect::{Listener, ListenerConfig, Output};

fn input_pcap() -> std::path::PathBuf {
    netwarden_testkit::testdata("ndpi/iphone.pcap")
}

/// Runs softflowd on the nDPI capture (500 frames), exporting with `opts` to `port`, until
/// every flow is out.
fn softflowd(port: u16, opts: &[&str]) {
    netwarden_testkit::softflowd::export(&input_pcap(), 500, port, opts);
}

/// Binds a listener, runs `exporter(port)`, and returns what arrived within a second after.
fn collect(exporter: impl FnOnce(u16) + Send + 'static) -> Vec<Output> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let config = ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            ..ListenerConfig::default()
        };
        let listener = Listener::bind(config).unwrap();
        assert!(listener.recv_buffer_bytes() > 0);
        let port = listener.local_addr().port();
        let stats = listener.stats_handle();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = listener.spawn(tx, async move {
            let _ = stop_rx.await;
        });
        tokio::task::spawn_blocking(move || exporter(port))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop_tx.send(()).unwrap();
        let final_stats = task.await.unwrap();
        assert_eq!(final_stats.collector.global.sink_dropped, 0);
        assert_eq!(stats.lock().unwrap().collector, final_stats.collector);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch);
        }
        out
    })
}

fn check_against(rel: &str, opts: &'static [&'static str], source: FlowSource) {
    let outputs = collect(move |port| softflowd(port, opts));
    let mut got: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Flow(f) => Some(f),
            Output::Counters(_) => None,
        })
        .inspect(|f| assert_eq!(f.record.source, source as i32))
        .map(as_exported)
        .collect();
    let exp = expected(rel);
    let mut want: Vec<_> = exp["packets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["records"].as_array().cloned().unwrap_or_default())
        .map(|r| expected_tuple(&r))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "{rel}: flows received differ from the committed softflowd export"
    );
}

#[test]
fn softflowd_netflow5_live() {
    check_against(
        "generated/softflowd-v5.pcap",
        &["-v", "5"],
        FlowSource::Netflow5,
    );
}

#[test]
fn softflowd_netflow9_live() {
    check_against(
        "generated/softflowd-v9.pcap",
        &["-v", "9", "-6"],
        FlowSource::Netflow9,
    );
}

#[test]
fn softflowd_ipfix_live() {
    check_against(
        "generated/softflowd-ipfix.pcap",
        &["-v", "10", "-6"],
        FlowSource::Ipfix,
    );
}

/// Totals `nfdump -r FILE -I` prints: (flows, packets, bytes).
fn nfdump_totals(file: &std::path::Path) -> (u64, u64, u64) {
    let out = std::process::Command::new("nfdump")
        .arg("-r")
        .arg(file)
        .arg("-I")
        .output()
        .unwrap();
    assert!(out.status.success(), "nfdump -I failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in nfdump -I: {text}"))
    };
    (get("Flows:"), get("Packets:"), get("Bytes:"))
}

/// Every flow `nfdump -r FILE -o csv` lists: (src, dst, packets, bytes), sorted.
fn nfdump_flows(file: &std::path::Path) -> Vec<(String, String, u64, u64)> {
    let out = std::process::Command::new("nfdump")
        .arg("-r")
        .arg(file)
        .args(["-q", "-o", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "nfdump -o csv failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flows: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with("ts,") && l.contains(','))
        .map(|l| {
            // ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,...
            let c: Vec<&str> = l.split(',').collect();
            (
                c[3].trim().to_owned(),
                c[4].trim().to_owned(),
                c[11].trim().parse().unwrap(),
                c[12].trim().parse().unwrap(),
            )
        })
        .collect();
    flows.sort();
    flows
}

/// Sends SIGTERM to `child` and waits for it (nfcapd flushes its file on TERM, TOOLS.md).
fn terminate(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "nfcapd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nfdump's replay: nfcapd stores softflowd's NetFlow v9 export of the nDPI capture, then
/// `nfreplay -v 9 -d 0` (bounded with `timeout`, TOOLS.md quirk 5) sends the stored file to
/// our listener. What arrives must be what `nfdump` reads from the file: flow count, packet
/// and byte totals, and every (src, dst, packets, bytes).
#[test]
fn nfreplay_netflow9_live() {
    for (bin, package) in [
        ("nfcapd", "nfdump"),
        ("nfreplay", "nfdump"),
        ("nfdump", "nfdump"),
    ] {
        netwarden_testkit::softflowd::need(bin, package);
    }
    let dir = tempfile::tempdir().unwrap();
    // A free UDP port for nfcapd, then wait until nfcapd holds it (a bind fails).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nfcapd = std::process::Command::new("nfcapd")
        .arg("-w")
        .arg(dir.path())
        .args(["-b", "127.0.0.1", "-t", "3600", "-p"])
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot start nfcapd");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "nfcapd did not bind");
        assert!(nfcapd.try_wait().unwrap().is_none(), "nfcapd exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    softflowd(port, &["-v", "9", "-6"]);
    // softflowd's last datagrams are sent before it exits; nfcapd reads them before TERM
    // is handled (one socket, read in order).
    terminate(&mut nfcapd);
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nfcapd.2"))
        })
        .expect("nfcapd wrote no file");
    let (flows, packets, bytes) = nfdump_totals(&file);
    assert!(flows > 0);
    let want = nfdump_flows(&file);
    assert_eq!(want.len() as u64, flows);

    let replay_file = file.clone();
    let outputs = collect(move |port| {
        let status = std::process::Command::new("timeout")
            .arg("10")
            .arg("nfreplay")
            .arg("-r")
            .arg(&replay_file)
            .args(["-H", "127.0.0.1", "-v", "9", "-d", "0", "-p"])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "nfreplay: {status}");
    });
    let got_flows: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Flow(f) => Some(f),
            Output::Counters(_) => None,
        })
        .inspect(|f| assert_eq!(f.record.source, FlowSource::Netflow9 as i32))
        .map(as_exported)
        .collect();
    let got_packets: u64 = got_flows.iter().map(|t| t.5).sum();
    let got_bytes: u64 = got_flows.iter().map(|t| t.6).sum();
    eprintln!(
        "nfreplay: nfdump -I {flows} flows {packets} packets {bytes} bytes; received {} flows {got_packets} packets {got_bytes} bytes",
        got_flows.len()
    );
    assert_eq!(
        (got_flows.len() as u64, got_packets, got_bytes),
        (flows, packets, bytes)
    );
    let mut got: Vec<_> = got_flows
        .into_iter()
        .map(|(src, dst, _, _, _, p, b)| (src, dst, p, b))
        .collect();
    got.sort();
    assert_eq!(got, want, "flows replayed differ from nfdump's reading");
}
