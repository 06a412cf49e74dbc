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
