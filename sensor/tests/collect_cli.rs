//! `netwarden-sensor collect`, the debugging collector: softflowd exports NetFlow v5 to it and it
//! prints one JSON flow record per exported flow, then exits after `--exit-after-idle`.
//! Fails loudly when softflowd is missing.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netwarden_testkit::{softflowd, testdata};
use serde_json::Value;

#[test]
fn collect_prints_every_exported_flow_as_a_json_line() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netwarden-sensor"))
        .args(["collect", "--sensor-name", "cli", "--exit-after-idle", "1"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the listener, then keep draining stderr (the final statistics go there).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening on") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "collect exited early"
        );
    }
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let mut buf = String::new();
        while stderr.read_line(&mut buf).unwrap_or(0) > 0 {
            rest.push_str(&buf);
            buf.clear();
        }
        rest
    });

    // Drain stdout while the child runs: a full pipe would block it and it would never exit.
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });

    softflowd::export(&testdata("ndpi/iphone.pcap"), 500, port, &["-v", "5"]);

    // Generous: the machine running the suite may be busy; a hang still fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "collect did not exit after idling"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let records: Vec<Value> = out_reader
        .join()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // NetFlow v5 carries IPv4 only: softflowd exports 80 of the capture's 85 flows.
    assert_eq!(records.len(), 80);
    for r in &records {
        assert_eq!(r["source"], "netflow5", "{r}");
        assert_eq!(r["observation_point"]["sensor"], "cli", "{r}");
        assert_eq!(r["observation_point"]["exporter"], "127.0.0.1", "{r}");
        assert_eq!(r["update"], "final", "{r}");
    }
    let stats = drain.join().unwrap();
    assert!(stats.contains("\"records\":80"), "{stats}");
}
