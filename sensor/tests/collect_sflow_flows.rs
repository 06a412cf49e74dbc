//! sFlow sampled packet headers through the flow table and DPI: pmacctd (plugin sfprobe,
//! sampling 1/1) exports `testdata/ndpi/iphone.pcap` as sFlow v5 to a listener with
//! `sflow_flow_table` on; the flows built from the sampled headers are the capture path's
//! flows of the same pcap (5-tuples and client/server), with source `sflow`, the agent's
//! observation point, and the DPI names (`l7.hostname`: DNS queries, TLS SNI, HTTP hosts)
//! capture finds — within pmacctd's behaviour: its sampling at 1/1 is not exact (it skips a
//! few frames, see collect_pipeline.rs), and its sfprobe sends at most 128 bytes of each packet
//! (seen on the wire: "Sampled header length" <= 128 whatever `snaplen`), so a name beyond
//! them cannot be seen. The names are therefore compared with capture of the same pcap cut at
//! 128 bytes per frame (`editcap -s 128`, original lengths kept), on the flows whose every
//! packet was sampled; how many names the full capture has beyond 128 bytes is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netwarden_api::flow::{FlowRecord, FlowSource};
use netwarden_sensor::collect::{CollectorConfig, Listener, ListenerConfig, Output};
use netwarden_sensor::pipeline::{SensorConfig, flows_from_pcap};
use netwarden_testkit::{softflowd, testdata};

type Key = (IpAddr, u32, IpAddr, u32, u32);

fn key(r: &FlowRecord) -> Option<Key> {
    Some((
        r.client_addr()?,
        r.client_port,
        r.server_addr()?,
        r.server_port,
        r.l4_proto,
    ))
}

fn packets(r: &FlowRecord) -> u64 {
    r.c2s.unwrap_or_default().packets + r.s2c.unwrap_or_default().packets
}

fn pmacctd_sflow(address: SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("pmacctd.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\npcap_savefile: {}\nplugins: sfprobe\nsfprobe_receiver: {address}\n\
             sfprobe_agentip: 127.0.0.1\nsampling_rate: 1\nsnaplen: 1500\n",
            testdata("ndpi/iphone.pcap").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new("pmacctd")
        .arg("-f")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "pmacctd did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sampled_headers_build_the_capture_flows_with_their_dpi_names() {
    softflowd::need("pmacctd", "pmacct");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let records: Vec<FlowRecord> = rt.block_on(async {
        let listener = Listener::bind(ListenerConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            collector: CollectorConfig {
                sensor: "sf".into(),
                sflow_flow_table: true,
                ..CollectorConfig::default()
            },
            ..ListenerConfig::default()
        })
        .unwrap();
        let address = listener.local_addr();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = listener.spawn(tx, async move {
            let _ = stop_rx.await;
        });
        tokio::task::spawn_blocking(move || pmacctd_sflow(address))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_tx.send(()).unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.collector.global.sink_dropped, 0);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch.into_iter().filter_map(|o| match o {
                Output::Flow(f) => Some(f.record),
                Output::Counters(_) => None,
            }));
        }
        out
    });
    let (captured, _) = flows_from_pcap(
        &testdata("ndpi/iphone.pcap"),
        &SensorConfig::default(),
        false,
    )
    .unwrap();
    softflowd::need("editcap", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let status = std::process::Command::new("editcap")
        .args(["-s", "128"])
        .arg(testdata("ndpi/iphone.pcap"))
        .arg(&cut)
        .status()
        .unwrap();
    assert!(status.success());
    let (cut_flows, _) = flows_from_pcap(&cut, &SensorConfig::default(), false).unwrap();
    let cut_names: BTreeMap<Key, String> = cut_flows
        .iter()
        .filter_map(|r| Some((key(r)?, r.l7.as_ref()?.hostname.clone())))
        .collect();
    for r in &records {
        assert_eq!(r.source, FlowSource::Sflow as i32, "{r:?}");
        let p = r.observation_point.clone().unwrap();
        assert_eq!(
            (p.sensor.as_str(), p.exporter.as_str()),
            ("sf", "127.0.0.1")
        );
        assert_eq!(r.sampling_rate, 1);
    }
    let got: BTreeMap<Key, &FlowRecord> =
        records.iter().filter_map(|r| Some((key(r)?, r))).collect();
    let want: BTreeMap<Key, &FlowRecord> =
        captured.iter().filter_map(|r| Some((key(r)?, r))).collect();
    assert_eq!(got.len(), records.len(), "one final record per flow");
    let sampled: u64 = records.iter().map(packets).sum();
    let total: u64 = captured.iter().map(packets).sum();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(k)).collect();
    eprintln!(
        "sflow flows {} ({sampled} packets), capture flows {} ({total} packets); missing {missing:?}; extra {extra:?}",
        got.len(),
        want.len()
    );
    assert!(extra.is_empty(), "flows capture does not have: {extra:?}");
    // Flows whose every packet was sampled are the same flows, and carry the same names.
    let mut names_compared = 0;
    let mut beyond_header = 0;
    let mut names_missing = BTreeSet::new();
    for (k, c) in &want {
        let Some(g) = got.get(k) else { continue };
        if packets(g) != packets(c) {
            continue;
        }
        assert_eq!(g.c2s.unwrap().packets, c.c2s.unwrap().packets, "{k:?}");
        let host = |r: &FlowRecord| {
            r.l7.as_ref()
                .map(|l| l.hostname.clone())
                .unwrap_or_default()
        };
        let within = cut_names.get(k).cloned().unwrap_or_default();
        if host(c) != within {
            beyond_header += 1;
        }
        if !within.is_empty() || !host(g).is_empty() {
            if host(g) == within {
                names_compared += 1;
            } else {
                names_missing.insert((within, host(g)));
            }
        }
    }
    eprintln!(
        "names equal {names_compared}, beyond 128 bytes {beyond_header}, different (capture cut at 128, sflow): {names_missing:?}"
    );
    assert!(names_compared > 0, "no DPI name on sFlow flows");
    assert!(names_missing.is_empty(), "{names_missing:?}");
}
