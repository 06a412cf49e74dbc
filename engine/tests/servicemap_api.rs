//! The service-map and periodicity routes over HTTP: the map as JSON and as a graph document,
//! filters, one edge with the flows behind it, PATCH to deny an edge (then a flow on it raises
//! `lateral_movement` naming the edge), the `ServicePolicy` export, `/api/v2/periodicity`, and
//! problem details for bad input.
#![allow(clippy::unwrap_used, clippy::many_single_char_names)]

use std::sync::Arc;

use netwarden_api::bus::{Bus, MemoryBus};
use netwarden_api::flow::{
    DirectionStats, FlowRecord, FlowUpdate, L7Info, ObservationPoint, ip_to_bytes,
};
use serde_json::Value;
use tokio::sync::watch;

mod common;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_767_225_600 * SEC;

fn rec(id: u64, client: &str, server: &str, port: u32, l7: &str, t: u64) -> FlowRecord {
    FlowRecord {
        flow_id: id,
        observation_point: Some(ObservationPoint {
            sensor: "n1".into(),
            interface: "eth0".into(),
            ..Default::default()
        }),
        ip_version: 4,
        client_ip: ip_to_bytes(client.parse().unwrap()),
        server_ip: ip_to_bytes(server.parse().unwrap()),
        client_port: 40_000 + u32::try_from(id).unwrap(),
        server_port: port,
        l4_proto: 6,
        first_seen_ns: T0 + t * SEC,
        last_seen_ns: T0 + t * SEC + SEC,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 4,
            bytes: 400,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 4,
            bytes: 4000,
            ..Default::default()
        }),
        l7: Some(L7Info {
            app_protocol: l7.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_its_edges_and_the_export_are_served() {
    let (_tx, rx) = watch::channel(false);
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    let launched = common::launch_engine(bus, rx).await;
    let base = format!("http://{}", launched.addr);
    let apply = |records: Vec<FlowRecord>| {
        launched.engine.state.write().unwrap().apply_batch(records);
    };
    // Learning: a beacon every 60 s and a web service; after 2 h, a new edge.
    let mut batch: Vec<FlowRecord> = (0..8)
        .map(|i| rec(i + 1, "10.0.0.5", "10.0.0.80", 443, "TLS", i * 60))
        .collect();
    batch.push(rec(20, "10.0.0.6", "10.0.0.53", 53, "DNS", 30));
    apply(batch);
    let http = reqwest::Client::new();
    // The beacon is periodic (every 60 s, from the 5th flow).
    let (status, _, p) =
        common::get_json(&http, &format!("{base}/api/v2/periodicity?periodic=true")).await;
    assert_eq!(status, 200);
    let entries = p["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{p}");
    assert_eq!(
        (entries[0]["client"].as_str(), entries[0]["server"].as_str()),
        (Some("10.0.0.5"), Some("10.0.0.80"))
    );
    assert_eq!(entries[0]["period_secs"], 60.0);
    assert_eq!(entries[0]["status"], "periodic");
    assert_eq!(
        (
            entries[0]["flows"].as_u64(),
            entries[0]["observations"].as_u64()
        ),
        (Some(8), Some(7))
    );
    assert_eq!(p["recent_changes"][0]["change"]["kind"], "periodic");
    assert_eq!(p["recent_changes"][0]["message"], "periodic every 60.0 s");
    let (_, _, m) = common::get_json(&http, &format!("{base}/api/v2/servicemap")).await;
    let beacon_id = m["edges"][0]["id"].as_str().unwrap().to_owned();
    let (_, _, d) = common::get_json(
        &http,
        &format!("{base}/api/v2/servicemap/edges/{beacon_id}"),
    )
    .await;
    assert_eq!(d["periodicity"]["detector"]["status"], "periodic");
    assert_eq!(d["periodicity"]["key"]["port"], 443);
    apply(vec![rec(21, "10.0.0.6", "10.0.0.80", 8080, "HTTP", 8000)]);

    let (status, ctype, map) = common::get_json(&http, &format!("{base}/api/v2/servicemap")).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/json"));
    assert_eq!(map["total_edges"], 3);
    assert_eq!(
        map["counts"],
        serde_json::json!({"allowed": 2, "denied": 0, "undecided": 1})
    );
    assert_eq!(map["learning"]["period_secs"], 7200);
    assert_eq!(map["learning"]["active"], false);
    let edges = map["edges"].as_array().unwrap();
    assert_eq!(edges[0]["client"], "10.0.0.5");
    assert_eq!(edges[0]["flows"], 8);
    assert_eq!(edges[0]["l4"], "TCP");
    assert_eq!(edges[0]["status"], "allowed");
    assert_eq!(edges[0]["learned"], "during_learning");
    assert_eq!(edges[0]["bytes_s2c"], 32_000);
    let nodes = map["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    let web = nodes.iter().find(|n| n["id"] == "10.0.0.80").unwrap();
    assert_eq!(
        (web["type"].as_str(), web["edges_in"].as_u64()),
        (Some("host"), Some(2))
    );

    // Filters.
    let (_, _, m) =
        common::get_json(&http, &format!("{base}/api/v2/servicemap?status=undecided")).await;
    assert_eq!(m["edges"].as_array().unwrap().len(), 1);
    assert_eq!(m["edges"][0]["port"], 8080);
    let (_, _, m) = common::get_json(
        &http,
        &format!("{base}/api/v2/servicemap?protocol=dns&host=10.0.0.6"),
    )
    .await;
    assert_eq!(m["edges"].as_array().unwrap().len(), 1);
    let (_, _, m) =
        common::get_json(&http, &format!("{base}/api/v2/servicemap?protocol=udp")).await;
    assert_eq!(m["edges"].as_array().unwrap().len(), 0);
    let from = (T0 / SEC) + 7000;
    let (_, _, m) = common::get_json(&http, &format!("{base}/api/v2/servicemap?from={from}")).await;
    assert_eq!(m["edges"].as_array().unwrap().len(), 1);

    // The graph document.
    let (status, _, g) =
        common::get_json(&http, &format!("{base}/api/v2/servicemap?format=graph")).await;
    assert_eq!(status, 200);
    let gedges = g["edges"].as_array().unwrap();
    assert_eq!(gedges.len(), 3);
    let beacon = gedges.iter().find(|e| e["source"] == "10.0.0.5").unwrap();
    assert_eq!(beacon["target"], "10.0.0.80");
    assert_eq!(beacon["label"], "TCP/443 TLS");
    assert_eq!(beacon["bytes"], 8 * 4400);
    assert_eq!(g["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(g["nodes"][0]["group"], "external");

    // One edge with its flows and periodicity.
    let id = edges[0]["id"].as_str().unwrap().to_owned();
    let (status, _, d) =
        common::get_json(&http, &format!("{base}/api/v2/servicemap/edges/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(d["edge"]["id"], id.as_str());
    assert_eq!(d["flows"].as_array().unwrap().len(), 8);
    // Idle for more than an hour of flow time: the pair was forgotten.
    assert!(d.get("periodicity").is_none(), "{d}");
    assert_eq!(d["client"]["id"], "10.0.0.5");

    // Deny it; the next flow on it raises lateral_movement naming the edge.
    let resp = http
        .patch(format!("{base}/api/v2/servicemap/edges/{id}"))
        .json(&serde_json::json!({"status": "denied"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["learned"].as_str()),
        (Some("denied"), Some("manual"))
    );
    apply(vec![rec(30, "10.0.0.5", "10.0.0.80", 443, "TLS", 9000)]);
    let (_, _, alerts) = common::get_json(
        &http,
        &format!("{base}/api/v2/alerts?type=lateral_movement"),
    )
    .await;
    let items = alerts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{alerts}");
    assert!(items[0]["message"].as_str().unwrap().contains(&id));

    // Bad input.
    for (method, url, body, want) in [
        (
            "PATCH",
            format!("{base}/api/v2/servicemap/edges/{id}"),
            r#"{"status":"maybe"}"#,
            400,
        ),
        (
            "PATCH",
            format!("{base}/api/v2/servicemap/edges/{id}"),
            "not json",
            400,
        ),
        (
            "PATCH",
            format!("{base}/api/v2/servicemap/edges/00000000000000ff"),
            r#"{"status":"allowed"}"#,
            404,
        ),
        (
            "GET",
            format!("{base}/api/v2/servicemap/edges/xyz"),
            "",
            400,
        ),
        (
            "GET",
            format!("{base}/api/v2/servicemap?status=bad"),
            "",
            400,
        ),
        (
            "GET",
            format!("{base}/api/v2/servicemap?format=svg"),
            "",
            400,
        ),
        ("GET", format!("{base}/api/v2/servicemap?limit=0"), "", 400),
        ("GET", format!("{base}/api/v2/servicemap?nope=1"), "", 400),
        (
            "GET",
            format!("{base}/api/v2/servicemap/policy.yaml?default_action=maybe"),
            "",
            400,
        ),
        (
            "GET",
            format!("{base}/api/v2/periodicity?periodic=perhaps"),
            "",
            400,
        ),
    ] {
        let req = if method == "PATCH" {
            http.patch(&url)
                .header("content-type", "application/json")
                .body(body)
        } else {
            http.get(&url)
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} {url}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{method} {url}"
        );
    }

    // The export.
    let resp = http
        .get(format!(
            "{base}/api/v2/servicemap/policy.yaml?default_action=allow&learning_period=2h"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("# ServicePolicy exported"), "{text}");
    assert!(text.contains("the server is not in a namespace"), "{text}");
}
