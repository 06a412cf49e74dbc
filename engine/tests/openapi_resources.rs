//! The configuration and interface resources of the API (`/api/v2/interfaces`,
//! `/api/v2/checks`, `/api/v2/config/exclusions`, `/api/v2/config/endpoints`) through the real
//! router: what is in force is what is listed, filters and pages hold, and no secret is ever in
//! a response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use netwarden_api::bus::{Bus, MemoryBus};
use netwarden_api::crd::ConfigEntry;
use netwarden_engine::alerts::AnalysisConfig;
use netwarden_engine::api::ApiState;
use netwarden_engine::auth::Auth;
use netwarden_engine::exclusions::{ExclusionSpec, Exclusions};
use netwarden_engine::metrics::EngineMetrics;
use netwarden_engine::notify::secrets::SecretStore;
use netwarden_engine::notify::{Notifier, NotifyConfig};
use netwarden_engine::state::StateConfig;
use netwarden_engine::{Engine, ui};
use serde_json::{Value, json};
use tower::ServiceExt as _;

mod common;

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn app(engine: &Engine) -> axum::Router {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::default());
    netwarden_engine::app(
        ApiState {
            engine: engine.clone(),
            bus,
            registry: Arc::new(prometheus_client::registry::Registry::default()),
        },
        Arc::new(Auth::open()),
        ui::UiHandle::default(),
    )
}

fn engine() -> Engine {
    Engine::new(&StateConfig::default(), Arc::new(EngineMetrics::default()))
}

#[tokio::test]
async fn checks_list_defaults_and_the_configuration_in_force() {
    let engine = engine();
    let mut config = AnalysisConfig::default();
    config.checks.disable = vec!["blacklisted_flow".into(), "suspicious_dga_domain".into()];
    config.checks.enable = vec!["tcp_flow_reset".into()];
    config.checks.low_goodput_pct = 42;
    engine
        .state
        .write()
        .unwrap()
        .configure_analysis(config, Exclusions::default());
    let app = app(&engine);

    let total = netwarden_engine::checks::CHECKS.len() + netwarden_api::risk::CATALOGUE.len();
    let (status, all) = get(&app, "/api/v2/checks?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total"], total);
    assert_eq!(all["items"].as_array().unwrap().len(), total);
    assert_eq!(all["config"]["low_goodput_pct"], 42, "{}", all["config"]);
    assert!(all["config"]["host"]["syn_scan"].as_u64().is_some());
    let find = |key: &str| {
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["alert_type"] == key)
            .unwrap_or_else(|| panic!("{key} not listed"))
            .clone()
    };
    let bl = find("blacklisted_flow");
    assert_eq!(
        (
            &bl["default_enabled"],
            &bl["enabled"],
            &bl["entity"],
            &bl["source"]
        ),
        (&json!(true), &json!(false), &json!("flow"), &json!("check"))
    );
    assert_eq!(bl["score"], 200);
    let rst = find("tcp_flow_reset");
    assert_eq!(
        (&rst["default_enabled"], &rst["enabled"]),
        (&json!(false), &json!(true))
    );
    let dga = find("suspicious_dga_domain");
    assert_eq!(
        (&dga["source"], &dga["enabled"]),
        (&json!("risk"), &json!(false))
    );
    assert!(dga["severity"].is_string());

    // Filters and paging.
    let (_, off) = get(&app, "/api/v2/checks?enabled=false&limit=1000").await;
    let off: Vec<&str> = off["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["alert_type"].as_str().unwrap())
        .collect();
    assert!(off.contains(&"blacklisted_flow") && off.contains(&"suspicious_dga_domain"));
    assert!(!off.contains(&"tcp_flow_reset"));
    let (_, host) = get(&app, "/api/v2/checks?entity=host&source=check&limit=1000").await;
    let hosts = netwarden_engine::checks::CHECKS
        .iter()
        .filter(|c| c.host)
        .count();
    assert_eq!(host["total"], hosts);
    let (_, page) = get(&app, "/api/v2/checks?sort=-score&offset=1&limit=2").await;
    assert_eq!(
        (
            page["total"].as_u64().unwrap() as usize,
            page["items"].as_array().unwrap().len()
        ),
        (total, 2)
    );
    let scores: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_u64().unwrap())
        .collect();
    assert!(scores[0] >= scores[1], "{scores:?}");
    for bad in ["entity=both", "enabled=yes", "sort=colour", "colour=red"] {
        let (status, p) = get(&app, &format!("/api/v2/checks?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }
}

#[tokio::test]
async fn exclusions_in_force_are_listed_in_the_crd_shape() {
    let engine = engine();
    let spec = |v: Value| -> ExclusionSpec { serde_json::from_value(v).unwrap() };
    let exclusions = Exclusions {
        rules: vec![
            (
                "shop/scanner".into(),
                spec(
                    json!({"hosts": [{"cidr": "10.0.0.0/8", "side": "client"}], "alertTypes": ["syn_scan_attacker"], "reason": "lab scanner"}),
                ),
            ),
            (
                "default/backups".into(),
                spec(
                    json!({"pairs": [{"client": "10.1.1.1", "server": "10.2.2.2"}], "alertTypes": ["all"]}),
                ),
            ),
        ],
    };
    engine
        .state
        .write()
        .unwrap()
        .configure_analysis(AnalysisConfig::default(), exclusions);
    let app = app(&engine);
    let (status, list) = get(&app, "/api/v2/config/exclusions").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    // By name.
    assert_eq!(list["items"][0]["name"], "default/backups");
    assert_eq!(list["items"][1]["name"], "shop/scanner");
    let scanner = &list["items"][1]["spec"];
    assert_eq!(scanner["hosts"][0]["side"], "client", "{scanner}");
    assert_eq!(scanner["alertTypes"], json!(["syn_scan_attacker"]));
    assert_eq!(scanner["reason"], "lab scanner");
    let (_, page) = get(&app, "/api/v2/config/exclusions?offset=1&limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "shop/scanner");
}

#[tokio::test]
async fn endpoints_in_force_never_show_their_secret() {
    let engine = engine();
    let app = app(&engine);
    // No notifier (no mode started one): an empty list.
    let (status, empty) = get(&app, "/api/v2/config/endpoints").await;
    assert_eq!((status, &empty["total"]), (StatusCode::OK, &json!(0)));

    let dir = tempfile::tempdir().unwrap();
    let secret = "https://hooks.example/T000/B000/very-secret-token";
    std::fs::create_dir_all(dir.path().join("slack")).unwrap();
    std::fs::write(dir.path().join("slack/url"), secret).unwrap();
    let notifier = Notifier::new(
        NotifyConfig {
            secrets: SecretStore::new(Some(dir.path().to_owned())),
            ..NotifyConfig::default()
        },
        Arc::default(),
    )
    .unwrap();
    let entry = |name: &str, spec: Value| ConfigEntry {
        api_version: "netwarden.io/v1alpha1".into(),
        kind: "NotificationEndpoint".into(),
        namespace: Some("ops".into()),
        name: name.into(),
        generation: 1,
        spec: serde_json::from_value(spec).unwrap(),
    };
    notifier.apply(vec![
        entry(
            "soc",
            json!({"type": "slack", "secretKeyRef": {"name": "slack", "key": "url"}, "filters": {"minSeverity": "warning"}}),
        ),
        entry(
            "missing",
            json!({"type": "webhook", "secretKeyRef": {"name": "nowhere", "key": "url"}}),
        ),
    ]);
    engine.notifier.set(notifier).unwrap();

    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v2/config/endpoints")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !text.contains("very-secret-token") && !text.contains("hooks.example"),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["total"], 2, "{list}");
    let (missing, soc) = (&list["items"][0], &list["items"][1]);
    assert_eq!(missing["name"], "ops/missing");
    assert_eq!(
        (&missing["type"], &missing["secret_set"]),
        (&json!("webhook"), &json!(false))
    );
    assert_eq!(soc["name"], "ops/soc");
    assert_eq!(
        (&soc["type"], &soc["secret_set"]),
        (&json!("slack"), &json!(true))
    );
    assert_eq!(
        soc["secret_key_ref"],
        json!({"name": "slack", "key": "url"})
    );
    assert_eq!(soc["filters"]["minSeverity"], "warning", "{soc}");
}

#[tokio::test]
async fn interfaces_sum_their_observation_points() {
    let engine = engine();
    {
        let mut state = engine.state.write().unwrap();
        let mut a = common::syn(1, "10.0.0.1", "10.0.0.2", 80, 1_700_000_000_000_000_000);
        let mut b = common::syn(2, "10.0.0.3", "10.0.0.2", 443, 1_700_000_001_000_000_000);
        let c = common::syn(3, "10.0.0.4", "10.0.0.2", 22, 1_700_000_002_000_000_000);
        // Two observation domains of one exporter, and the capture interface eth0.
        for (r, domain) in [(&mut a, 1), (&mut b, 2)] {
            let p = r.observation_point.as_mut().unwrap();
            p.interface = String::new();
            p.exporter = "192.0.2.1".into();
            p.domain_id = domain;
        }
        state.apply_batch(vec![a, b, c]);
    }
    let app = app(&engine);
    let (status, list) = get(&app, "/api/v2/interfaces?sort=name").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2, "{list}");
    let exporter = &list["items"][0];
    assert_eq!(
        (&exporter["name"], &exporter["kind"]),
        (&json!("192.0.2.1"), &json!("exporter"))
    );
    assert_eq!(exporter["observation_points"].as_array().unwrap().len(), 2);
    assert_eq!(exporter["flows"], 2);
    assert_eq!(exporter["bytes"], 2 * (60 + 54));
    let eth0 = &list["items"][1];
    assert_eq!(
        (&eth0["name"], &eth0["kind"], &eth0["flows"]),
        (&json!("eth0"), &json!("capture"), &json!(1))
    );
    let (_, captures) = get(&app, "/api/v2/interfaces?kind=capture").await;
    assert_eq!(captures["total"], 1);
    let (status, _) = get(&app, "/api/v2/interfaces?kind=tap").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
