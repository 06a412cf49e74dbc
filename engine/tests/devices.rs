//! Device types: corpus pcaps through the sensor pipeline into the engine's state, asserting
//! the type of each local host with its evidence; the directory deciding for Kubernetes
//! endpoints and the manual override, over the real HTTP API; the "device protocol not
//! allowed" check; hostile strings; and a property test over arbitrary evidence and records.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use netwarden_api::bus::KvChange;
use netwarden_api::bus::{Bus, MemoryBus, Publisher as _};
use netwarden_api::directory::{DirectoryEntry, EndpointKind, directory_key};
use netwarden_api::flow::{
    DhcpInfo, DirectionStats, DnsInfo, FlowBatch, FlowRecord, FlowUpdate, HttpInfo, L7Info,
    ip_to_bytes,
};
use netwarden_api::names::flows_subject;
use netwarden_engine::devices::{
    DeviceTable, DeviceType, DeviceView, Evidence, MAX_DETAIL, MAX_EVIDENCE, Source, classify,
};
use netwarden_engine::state::State;
use netwarden_sensor::pipeline::{self, SensorConfig};
use netwarden_testkit::testdata;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::sync::watch;

mod common;

fn corpus(name: &str) -> Vec<FlowRecord> {
    let (records, _) = pipeline::flows_from_pcap(
        &testdata(format!("ndpi/{name}")),
        &SensorConfig::default(),
        false,
    )
    .unwrap();
    records
}

fn run(records: Vec<FlowRecord>) -> State {
    let mut s = State::default();
    s.apply_batch(records);
    s
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn view(s: &State, addr: &str) -> DeviceView {
    s.devices
        .view(ip(addr), None)
        .unwrap_or_else(|| panic!("{addr} not tracked"))
}

/// The (source, detail) pairs of the evidence pointing at the device's own type.
fn supporting(v: &DeviceView) -> Vec<(Source, String)> {
    let mut out: Vec<(Source, String)> = v
        .evidence
        .iter()
        .filter(|e| e.device_type == v.device_type)
        .map(|e| (e.source, e.detail.clone()))
        .collect();
    out.sort();
    out
}

fn has(v: &DeviceView, source: Source, t: DeviceType, detail: &str) -> bool {
    v.evidence
        .iter()
        .any(|e| e.source == source && e.device_type == t && e.detail == detail)
}

#[test]
fn iphone_pcap_phone_mac_and_router() {
    let s = run(corpus("iphone.pcap"));
    let mut typed: Vec<(IpAddr, DeviceType)> = s
        .devices
        .addresses()
        .map(|a| (a, s.devices.view(a, None).unwrap().device_type))
        .collect();
    typed.sort();
    // Every local address of the capture, and its type.
    assert_eq!(
        typed,
        vec![
            (ip("169.254.225.216"), DeviceType::Workstation),
            (ip("192.168.2.1"), DeviceType::Networking),
            (ip("192.168.2.17"), DeviceType::Phone),
            (ip("fe80::823:3f17:8298:a29c"), DeviceType::Phone),
            (ip("fe80::c42c:3ff:fe60:6a64"), DeviceType::Networking),
        ],
        "{:#?}",
        s.devices
            .addresses()
            .map(|a| s.devices.view(a, None).unwrap())
            .collect::<Vec<_>>()
    );

    // The iPhone: its DHCP host name and request list, its captive-portal probe, its maker.
    let phone = view(&s, "192.168.2.17");
    assert_eq!(phone.mac.as_deref(), Some("c4:61:8b:35:82:a9"));
    assert_eq!(phone.vendor, Some("Apple, Inc."));
    assert_eq!(
        supporting(&phone),
        vec![
            (
                Source::DhcpFingerprint,
                "iOS: 1,121,3,6,15,119,252".to_owned()
            ),
            (Source::DhcpHostname, "Lucas-iPhone".to_owned()),
            (
                Source::HttpUserAgent,
                "CaptiveNetworkSupport-390.60.1 wispr".to_owned()
            ),
        ]
    );
    assert!(has(
        &phone,
        Source::MacVendor,
        DeviceType::Unknown,
        "Apple, Inc."
    ));
    // 1 − 0.6·0.3·0.7 = 0.874, nothing else: the confidence is the support.
    assert!(
        (phone.confidence - 0.874).abs() < 1e-3,
        "{}",
        phone.confidence
    );

    // The iMac: DHCP says macOS and its name, mDNS announces SSH (and file sharing, which
    // alone would say NAS).
    let mac = view(&s, "169.254.225.216");
    assert_eq!(mac.mac.as_deref(), Some("d8:30:62:56:00:1c"));
    assert_eq!(
        supporting(&mac),
        vec![
            (
                Source::DhcpFingerprint,
                "macOS: 1,121,3,6,15,119,252,95,44,46".to_owned()
            ),
            (Source::DhcpHostname, "Lucas-iMac".to_owned()),
            (Source::Mdns, "_sftp-ssh._tcp".to_owned()),
            (Source::Mdns, "_ssh._tcp".to_owned()),
        ]
    );
    assert!(has(&mac, Source::Mdns, DeviceType::Nas, "_smb._tcp"));
    // Workstation 1 − 0.3·0.5·0.7 = 0.895 against nas 0.3: 0.895² / 1.195.
    let want = 0.895f32 * 0.895 / 1.195;
    assert!((mac.confidence - want).abs() < 1e-3, "{}", mac.confidence);

    // The router: answers DHCP and DNS, and its Ethernet address carries the Internet.
    let router = view(&s, "192.168.2.1");
    assert_eq!(router.mac.as_deref(), Some("c6:2c:03:60:6a:64"));
    let sources: Vec<Source> = supporting(&router).into_iter().map(|(s, _)| s).collect();
    assert!(
        sources.iter().all(|s| *s == Source::Behaviour),
        "{router:#?}"
    );
    assert!(has(
        &router,
        Source::Behaviour,
        DeviceType::Networking,
        "answers DHCP (udp/67)"
    ));
    assert!(has(
        &router,
        Source::Behaviour,
        DeviceType::Networking,
        "answers DNS (53)"
    ));
    assert!(
        router
            .evidence
            .iter()
            .any(|e| e.detail.starts_with("routes for remote addresses"))
    );
    // Three behaviours are three witnesses: 1 − 0.4·0.6·0.4 = 0.904, against the relayed
    // mDNS services (nas 0.3): 0.904² / 1.204.
    let want = 0.904f32 * 0.904 / 1.204;
    assert!(
        (router.confidence - want).abs() < 1e-3,
        "{}",
        router.confidence
    );
    // Remote addresses are never typed.
    assert!(s.devices.view(ip("17.248.176.75"), None).is_none());
}

#[test]
fn netbios_and_dhcp_captures() {
    // A NetBIOS browser announcement names its sender; the name says nothing of a type here,
    // but it is kept as evidence.
    let s = run(corpus("netbios.pcap"));
    let names: Vec<String> = s
        .devices
        .addresses()
        .filter_map(|a| s.devices.view(a, None))
        .flat_map(|v| v.evidence)
        .filter(|e| e.source == Source::Netbios)
        .map(|e| e.detail)
        .collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.len() <= MAX_DETAIL));
    // A fuzzed DHCP packet: no panic, nothing unbounded.
    let s = run(corpus("dhcp-fuzz.pcapng"));
    for a in s.devices.addresses().collect::<Vec<_>>() {
        let v = s.devices.view(a, None).unwrap();
        assert!(v.evidence.len() <= 2 * MAX_EVIDENCE + 4);
        assert!((0.0..=1.0).contains(&v.confidence));
    }
}

fn record(client: &str, server: &str, sport: u32, dport: u32, l4: u32, app: &str) -> FlowRecord {
    FlowRecord {
        flow_id: u64::from(sport) << 16 | u64::from(dport),
        ip_version: if client.contains(':') { 6 } else { 4 },
        client_ip: ip_to_bytes(ip(client)),
        server_ip: ip_to_bytes(ip(server)),
        client_port: sport,
        server_port: dport,
        l4_proto: l4,
        first_seen_ns: 1_000_000_000,
        last_seen_ns: 2_000_000_000,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 3,
            bytes: 300,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 3,
            bytes: 300,
            ..Default::default()
        }),
        l7: Some(L7Info {
            master_protocol: app.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mdns_announcement(host: &str, services: &[&str]) -> FlowRecord {
    let mut r = record(host, "224.0.0.251", 5353, 5353, 17, "MDNS");
    r.l7.as_mut().unwrap().dns = Some(DnsInfo {
        mdns_services: services.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    });
    r
}

fn alert_types(s: &State) -> Vec<(String, IpAddr, bool, bool)> {
    s.analysis
        .store
        .iter()
        .map(|r| {
            let a = &r.alert;
            let f = a.flow.as_ref().unwrap();
            (
                a.alert_type.clone(),
                f.client_addr().unwrap(),
                a.roles.client_attacker,
                a.roles.server_attacker,
            )
        })
        .filter(|(t, ..)| t == "device_protocol_not_allowed")
        .collect()
}

#[test]
fn printer_opening_ssh_breaks_the_policy() {
    let mut s = State::default();
    // The printer announces IPP and raw printing; a workstation announces SSH.
    s.apply_batch(vec![
        mdns_announcement("192.168.1.50", &["_ipp._tcp", "_pdl-datastream._tcp"]),
        mdns_announcement("192.168.1.10", &["_ssh._tcp", "_rfb._tcp"]),
    ]);
    assert_eq!(
        s.devices
            .view(ip("192.168.1.50"), None)
            .unwrap()
            .device_type,
        DeviceType::Printer
    );
    // The workstation may SSH to the printer; the printer may not SSH anywhere.
    s.apply_batch(vec![
        record("192.168.1.10", "192.168.1.50", 40001, 22, 6, "SSH"),
        record("192.168.1.50", "192.168.1.10", 40002, 22, 6, "SSH"),
    ]);
    assert_eq!(
        alert_types(&s),
        vec![(
            "device_protocol_not_allowed".to_owned(),
            ip("192.168.1.50"),
            true,
            false
        )]
    );
    let a = s
        .analysis
        .store
        .iter()
        .find(|r| r.alert.alert_type == "device_protocol_not_allowed")
        .unwrap();
    assert_eq!((a.alert.client_score, a.alert.server_score), (90, 10));

    // An operator says 192.168.1.60 is an IoT plug: it then may not answer RDP.
    s.apply_batch(vec![mdns_announcement("192.168.1.60", &["_http._tcp"])]);
    assert!(
        s.devices
            .set_override(ip("192.168.1.60"), Some(DeviceType::Iot))
    );
    s.apply_batch(vec![record(
        "192.168.1.10",
        "192.168.1.60",
        40003,
        3389,
        6,
        "RDP",
    )]);
    let all = alert_types(&s);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all[1],
        (
            "device_protocol_not_allowed".to_owned(),
            ip("192.168.1.10"),
            false,
            true
        )
    );
}

#[test]
fn hostile_strings_are_bounded_and_printable() {
    let mut s = State::default();
    let evil = format!(
        "Mozilla/5.0 (iPhone)\u{0}\r\n\u{1b}[31m{}",
        "é".repeat(5000)
    );
    let mut r = record("10.0.0.7", "10.0.0.1", 40000, 80, 6, "HTTP");
    r.l7.as_mut().unwrap().http = Some(HttpInfo {
        user_agent: evil.clone(),
        server: evil.clone(),
        ..Default::default()
    });
    r.l7.as_mut().unwrap().dhcp = Some(DhcpInfo {
        mac: "not a mac\u{7}".into(),
        hostname: evil.clone(),
        fingerprint: evil.clone(),
        vendor_class: evil.clone(),
    });
    let services: Vec<String> = (0..500).map(|i| format!("_s{i}<x>._tcp")).collect();
    let mut m = mdns_announcement("10.0.0.7", &[]);
    m.l7.as_mut().unwrap().dns.as_mut().unwrap().mdns_services = services;
    s.apply_batch(vec![r, m]);
    let v = s.devices.view(ip("10.0.0.7"), None).unwrap();
    assert_eq!(v.device_type, DeviceType::Phone, "{v:#?}");
    assert!(v.evidence.len() <= MAX_EVIDENCE, "{}", v.evidence.len());
    for e in &v.evidence {
        assert!(e.detail.len() <= MAX_DETAIL, "{}", e.detail.len());
        assert!(!e.detail.chars().any(char::is_control), "{:?}", e.detail);
    }
    let json = serde_json::to_string(&v).unwrap();
    assert!(json.len() < 8 * 1024);
}

/// The engine over the in-process bus with its HTTP API, for the routes.
struct Api {
    base: String,
    http: reqwest::Client,
    bus: Arc<MemoryBus>,
    engine: netwarden_engine::Engine,
    _stop: watch::Sender<bool>,
}

impl Api {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// With the persistent store (`--data DIR`) when `store` is given.
    async fn start_with(store: Option<&netwarden_engine::store::db::StoreConfig>) -> Self {
        let bus = Arc::new(MemoryBus::default());
        let (stop, rx) = watch::channel(false);
        let launched = netwarden_engine::launch_with_store(
            bus.clone() as Arc<dyn Bus>,
            &netwarden_engine::state::StateConfig::default(),
            store,
            "127.0.0.1:0".parse().unwrap(),
            |_| {},
            rx,
        )
        .await
        .unwrap();
        Self {
            base: format!("http://{}", launched.addr),
            http: reqwest::Client::new(),
            bus,
            engine: launched.engine,
            _stop: stop,
        }
    }

    async fn publish(&self, records: Vec<FlowRecord>) {
        let before = self.engine.batches_ingested();
        let batch = FlowBatch {
            records,
            sensor: "t".into(),
            seq: before + 1,
        };
        self.bus
            .publish(flows_subject(0), batch.to_bytes())
            .await
            .unwrap();
        common::wait_for("the batch", Duration::from_secs(10), async || {
            self.engine.batches_ingested() > before
        })
        .await;
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, v) = common::get_json(&self.http, &format!("{}{path}", self.base)).await;
        (status, v)
    }

    async fn put(&self, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn manual_types_survive_a_restart_with_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = netwarden_engine::store::db::StoreConfig {
        dir: dir.path().to_path_buf(),
        ..netwarden_engine::store::db::StoreConfig::default()
    };
    let printer = || mdns_announcement("10.1.0.5", &["_ipp._tcp", "_pdl-datastream._tcp"]);
    let api = Api::start_with(Some(&store)).await;
    api.publish(vec![printer()]).await;
    let (status, d) = api
        .put("/api/v2/devices/10.1.0.5/type", r#"{"type":"nas"}"#)
        .await;
    assert_eq!(
        (status, d["device_type"].as_str()),
        (200, Some("nas")),
        "{d}"
    );
    assert!(dir.path().join("device-types.json").is_file());
    api.engine.close().await;
    drop(api);

    // A new engine on the same directory: the override is back before the device is seen
    // again, and wins over the guess once it is.
    let api = Api::start_with(Some(&store)).await;
    assert_eq!(
        api.engine.read().devices.override_of(ip("10.1.0.5")),
        Some(DeviceType::Nas)
    );
    api.publish(vec![printer()]).await;
    let (status, d) = api.get("/api/v2/devices/10.1.0.5").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["device_type"].as_str(), d["manual"].as_bool()),
        (Some("nas"), Some(true)),
        "{d}"
    );
    // Cleared: gone after the next restart too.
    let (status, d) = api
        .put("/api/v2/devices/10.1.0.5/type", r#"{"type":null}"#)
        .await;
    assert_eq!((status, d["device_type"].as_str()), (200, Some("printer")));
    api.engine.close().await;
    drop(api);
    let api = Api::start_with(Some(&store)).await;
    assert_eq!(api.engine.read().devices.override_of(ip("10.1.0.5")), None);
}

fn types_of(page: &Value) -> Vec<(String, String)> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["ip"].as_str().unwrap().to_owned(),
                d["device_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn api_lists_filters_overrides_and_the_directory_decides() {
    let api = Api::start().await;
    api.publish(vec![
        mdns_announcement("10.1.0.5", &["_ipp._tcp", "_pdl-datastream._tcp"]),
        mdns_announcement("10.2.0.9", &["_ssh._tcp"]),
        record("10.1.0.5", "8.8.8.8", 40000, 443, 6, "TLS"),
    ])
    .await;
    {
        let mut dir = api.engine.directory.write().unwrap();
        let mut pod = DirectoryEntry::new(ip("10.2.0.9"), EndpointKind::Pod, "web-7d9f-abcde");
        pod.namespace = Some("shop".into());
        dir.apply(&KvChange::Put {
            key: directory_key(pod.ip),
            value: pod.to_json().into(),
        })
        .unwrap();
    }
    let (status, page) = api.get("/api/v2/devices").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 2);
    let mut got = types_of(&page);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("10.1.0.5".to_owned(), "printer".to_owned()),
            ("10.2.0.9".to_owned(), "kubernetes_pod".to_owned()),
        ]
    );
    let (_, pods) = api.get("/api/v2/devices?type=kubernetes_pod").await;
    assert_eq!(
        types_of(&pods),
        vec![("10.2.0.9".into(), "kubernetes_pod".into())]
    );
    let pod = &pods["items"][0];
    assert_eq!(pod["confidence"], 1.0);
    assert_eq!(pod["evidence"][0]["source"], "directory");
    assert_eq!(pod["evidence"][0]["detail"], "Pod shop/web-7d9f-abcde");
    let (_, sure) = api.get("/api/v2/devices?min_confidence=0.99").await;
    assert_eq!(
        types_of(&sure),
        vec![("10.2.0.9".into(), "kubernetes_pod".into())]
    );
    let (_, paged) = api.get("/api/v2/devices?limit=1&offset=1").await;
    assert_eq!(
        (
            paged["total"].as_u64(),
            paged["items"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );

    // Bad input is a problem, not a panic.
    for bad in [
        "/api/v2/devices?type=toaster",
        "/api/v2/devices?min_confidence=2",
        "/api/v2/devices?min_confidence=x",
        "/api/v2/devices?color=red",
    ] {
        assert_eq!(api.get(bad).await.0, 400, "{bad}");
    }
    assert_eq!(api.get("/api/v2/devices/10.9.9.9").await.0, 404);
    assert_eq!(
        api.get("/api/v2/devices/8.8.8.8").await.0,
        404,
        "remote: not a device"
    );

    // The override wins, shows as manual, and can be cleared.
    let (status, d) = api
        .put(
            "/api/v2/devices/10.1.0.5/type",
            &json!({"type": "nas"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["device_type"].as_str(), d["manual"].as_bool()),
        (Some("nas"), Some(true))
    );
    let (_, detail) = api.get("/api/v2/hosts/10.1.0.5").await;
    assert_eq!(detail["device"]["device_type"], "nas");
    assert_eq!(detail["device"]["confidence"], 1.0);
    assert_eq!(
        api.put("/api/v2/devices/10.1.0.5/type", r#"{"type":"toaster"}"#)
            .await
            .0,
        400
    );
    assert_eq!(
        api.put("/api/v2/devices/10.1.0.5/type", "{not json")
            .await
            .0,
        400
    );
    assert_eq!(
        api.put("/api/v2/devices/10.9.9.9/type", r#"{"type":"nas"}"#)
            .await
            .0,
        404
    );
    let (status, d) = api
        .put("/api/v2/devices/10.1.0.5/type", r#"{"type":null}"#)
        .await;
    assert_eq!((status, d["device_type"].as_str()), (200, Some("printer")));
    assert_eq!(d["manual"], false);
}

fn any_type() -> impl Strategy<Value = DeviceType> {
    (0..DeviceType::ALL.len()).prop_map(|i| DeviceType::ALL[i])
}

fn any_source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Manual),
        Just(Source::Directory),
        Just(Source::MacVendor),
        Just(Source::DhcpFingerprint),
        Just(Source::DhcpHostname),
        Just(Source::Mdns),
        Just(Source::HttpUserAgent),
        Just(Source::Behaviour),
    ]
}

fn any_evidence() -> impl Strategy<Value = Evidence> {
    (any_source(), any_type(), any::<f32>(), ".{0,200}").prop_map(|(s, t, w, d)| Evidence {
        source: s,
        device_type: t,
        weight: w,
        detail: d,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any evidence (weights NaN, infinite, negative; any text) gives a type and a confidence
    /// in [0, 1], and adding agreeing evidence never lowers the winner's confidence below
    /// what a single item gives.
    #[test]
    fn classify_is_total_and_bounded(ev in proptest::collection::vec(any_evidence(), 0..40)) {
        let v = classify(&ev);
        prop_assert!((0.0..=1.0).contains(&v.confidence), "{}", v.confidence);
        prop_assert!(!v.confidence.is_nan());
        if ev.is_empty() {
            prop_assert_eq!(v.device_type, DeviceType::Unknown);
        }
    }

    /// Arbitrary record fields (addresses, MAC bytes, DHCP, mDNS, HTTP strings) never panic
    /// and never give unbounded evidence.
    #[test]
    fn observe_is_total_and_bounded(
        mac in proptest::collection::vec(any::<u8>(), 0..10),
        dhcp_mac in ".{0,40}",
        text in ".{0,300}",
        services in proptest::collection::vec(".{0,80}", 0..40),
        port in any::<u16>(),
        l4 in any::<u8>(),
        last in any::<u8>(),
    ) {
        let mut t = DeviceTable::default();
        let client = format!("192.168.0.{last}");
        let mut r = record(&client, "224.0.0.251", u32::from(port), u32::from(port), u32::from(l4), &text);
        r.client_mac = mac.clone();
        r.server_mac = mac;
        let l7 = r.l7.as_mut().unwrap();
        l7.hostname = text.clone();
        l7.dhcp = Some(DhcpInfo { mac: dhcp_mac, hostname: text.clone(), fingerprint: text.clone(), vendor_class: text.clone() });
        l7.http = Some(HttpInfo { user_agent: text.clone(), server: text.clone(), ..Default::default() });
        l7.dns = Some(DnsInfo { mdns_services: services, ..Default::default() });
        t.observe(&r, |_| true);
        for a in t.addresses().collect::<Vec<_>>() {
            let v = t.view(a, None).unwrap();
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            prop_assert!(v.evidence.len() <= 2 * MAX_EVIDENCE + 2);
            for e in &v.evidence {
                prop_assert!(e.detail.len() <= MAX_DETAIL);
                prop_assert!((0.0..=1.0).contains(&e.weight));
            }
        }
    }
}
