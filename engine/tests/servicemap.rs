//! The learned service map (issue 9): learning then breaking a map with generated traffic built
//! from the engine's own record types, workloads merged through directory entries, a policy
//! that denies an edge, a port-scan flood against the bounds, two ingest orders, and the export
//! to a `ServicePolicy` that `api::crd` accepts.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use netwarden_api::bus::KvChange;
use netwarden_api::crd::{ConfigEntry, ServicePolicy, ServicePolicySpec, Validate};
use netwarden_api::directory::{Directory, DirectoryEntry, EndpointKind, Workload, directory_key};
use netwarden_api::flow::{
    DirectionStats, FlowRecord, FlowUpdate, L7Info, ObservationPoint, ip_to_bytes,
};
use netwarden_engine::servicemap::{self, Learned, ServiceMapConfig, Status, id_text};
use netwarden_engine::state::{State, StateConfig};

const SEC: u64 = 1_000_000_000;
/// Flow time of the first record (2026-01-01).
const T0: u64 = 1_767_225_600 * SEC;

/// A final record of flow `id` from `client` to `server:port` (`l4`), L7 `l7` (empty: none),
/// starting at `t` seconds after [`T0`].
fn rec(id: u64, client: &str, server: &str, port: u32, l4: u32, l7: &str, t: u64) -> FlowRecord {
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
        client_port: 40_000 + u32::try_from(id % 20_000).unwrap(),
        server_port: port,
        l4_proto: l4,
        first_seen_ns: T0 + t * SEC,
        last_seen_ns: T0 + t * SEC + SEC / 2,
        update: FlowUpdate::Final as i32,
        c2s: Some(DirectionStats {
            packets: 3,
            bytes: 300,
            ..Default::default()
        }),
        s2c: Some(DirectionStats {
            packets: 2,
            bytes: 1000,
            ..Default::default()
        }),
        l7: (!l7.is_empty()).then(|| L7Info {
            app_protocol: l7.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn state(learning_secs: u64, max_edges: usize) -> State {
    State::new(&StateConfig {
        servicemap: ServiceMapConfig {
            learning_secs,
            max_edges,
            ..ServiceMapConfig::default()
        },
        ..StateConfig::default()
    })
}

fn pod(ip: &str, ns: &str, name: &str, workload: &str, app: &str) -> DirectoryEntry {
    let mut e = DirectoryEntry::new(ip.parse().unwrap(), EndpointKind::Pod, name);
    e.namespace = Some(ns.into());
    e.workload = Some(Workload {
        kind: "Deployment".into(),
        name: workload.into(),
    });
    e.labels.insert("app".into(), app.into());
    e.labels
        .insert("pod-template-hash".into(), "5d9f8c7b6".into());
    e
}

fn directory(entries: &[DirectoryEntry]) -> Arc<RwLock<Directory>> {
    let mut d = Directory::default();
    for e in entries {
        d.apply(&KvChange::Put {
            key: directory_key(e.ip),
            value: serde_json::to_vec(e).unwrap().into(),
        })
        .unwrap();
    }
    Arc::new(RwLock::new(d))
}

fn policy(
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> BTreeMap<String, ConfigEntry<ServicePolicySpec>> {
    let spec: ServicePolicySpec = serde_json::from_value(spec).unwrap();
    assert!(spec.validate().is_empty());
    BTreeMap::from([(
        format!("ServicePolicy.{ns}.{name}"),
        ConfigEntry {
            api_version: "netwarden.io/v1alpha1".into(),
            kind: "ServicePolicy".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            generation: 1,
            spec,
        },
    )])
}

/// (client, server, port, L4, L7, status, learned, flows) of every edge, sorted.
type Row = (String, String, u16, u8, String, Status, Learned, u64);

fn rows(s: &State) -> Vec<Row> {
    let mut v: Vec<Row> = s
        .servicemap
        .edges
        .iter()
        .map(|e| {
            (
                e.client.id(),
                e.server.id(),
                e.port,
                e.l4,
                e.l7.to_string(),
                e.status,
                e.learned,
                e.flows,
            )
        })
        .collect();
    v.sort();
    v
}

#[allow(clippy::too_many_arguments)]
fn row(c: &str, s: &str, port: u16, l4: u8, l7: &str, st: Status, how: Learned, flows: u64) -> Row {
    (c.into(), s.into(), port, l4, l7.into(), st, how, flows)
}

fn alerts_of<'a>(s: &'a State, alert_type: &str) -> Vec<&'a netwarden_api::alert::Alert> {
    s.analysis
        .store
        .iter()
        .map(|a| &a.alert)
        .filter(|a| a.alert_type == alert_type)
        .collect()
}

#[test]
fn learning_gives_the_exact_edge_set_and_a_new_edge_after_it_is_undecided() {
    let mut s = state(7200, 0);
    // During learning (2 h from the first flow): four services, some used several times.
    s.apply_batch(vec![
        rec(1, "10.0.0.1", "10.0.0.53", 53, 17, "DNS", 0),
        rec(2, "10.0.0.1", "10.0.0.53", 53, 17, "DNS", 10),
        rec(3, "10.0.0.2", "10.0.0.53", 53, 17, "DNS", 20),
        rec(4, "10.0.0.1", "10.0.0.80", 443, 6, "TLS", 30),
        rec(5, "10.0.0.1", "10.0.0.80", 443, 6, "TLS", 3000),
        rec(6, "10.0.0.2", "10.0.0.22", 22, 6, "", 7000),
    ]);
    assert!(alerts_of(&s, "new_service").is_empty());
    // After it: one old service again, one new.
    s.apply_batch(vec![
        rec(7, "10.0.0.1", "10.0.0.80", 443, 6, "TLS", 8000),
        rec(8, "10.0.0.2", "10.0.0.80", 8443, 6, "TLS", 8100),
    ]);
    let during = Learned::DuringLearning;
    assert_eq!(
        rows(&s),
        vec![
            row(
                "10.0.0.1",
                "10.0.0.53",
                53,
                17,
                "DNS",
                Status::Allowed,
                during,
                2
            ),
            row(
                "10.0.0.1",
                "10.0.0.80",
                443,
                6,
                "TLS",
                Status::Allowed,
                during,
                3
            ),
            row(
                "10.0.0.2",
                "10.0.0.22",
                22,
                6,
                "Unknown",
                Status::Allowed,
                during,
                1
            ),
            row(
                "10.0.0.2",
                "10.0.0.53",
                53,
                17,
                "DNS",
                Status::Allowed,
                during,
                1
            ),
            row(
                "10.0.0.2",
                "10.0.0.80",
                8443,
                6,
                "TLS",
                Status::Undecided,
                Learned::AfterLearning,
                1
            ),
        ]
    );
    let tls = s.servicemap.edges.iter().find(|e| e.port == 443).unwrap();
    assert_eq!((tls.bytes_c2s, tls.bytes_s2c), (900, 3000));
    let new = alerts_of(&s, "new_service");
    assert_eq!(new.len(), 1);
    let edge = s.servicemap.edges.iter().find(|e| e.port == 8443).unwrap();
    assert!(
        new[0].message.contains(&id_text(edge.id)),
        "{}",
        new[0].message
    );
    assert_eq!(new[0].flow.as_ref().unwrap().flow_id, 8);
    assert!(alerts_of(&s, "lateral_movement").is_empty());
}

#[test]
fn workloads_are_one_node_and_edges_survive_pod_restarts() {
    let dir = directory(&[
        pod("10.1.0.1", "shop", "web-1", "web", "web"),
        pod("10.1.0.2", "shop", "web-2", "web", "web"),
        pod("10.1.0.3", "shop", "web-3", "web", "web"),
        pod("10.1.0.9", "shop", "db-0", "db", "db"),
    ]);
    let mut s = state(7200, 0);
    s.servicemap.attach_directory(Arc::clone(&dir));
    s.apply_batch(vec![
        rec(1, "10.1.0.1", "10.1.0.9", 5432, 6, "PostgreSQL", 0),
        rec(2, "10.1.0.2", "10.1.0.9", 5432, 6, "PostgreSQL", 1),
        rec(3, "10.1.0.3", "10.1.0.9", 5432, 6, "PostgreSQL", 2),
        rec(4, "192.0.2.7", "10.1.0.1", 443, 6, "TLS", 3),
    ]);
    let before: Vec<u64> = s.servicemap.edges.iter().map(|e| e.id).collect();
    // web-1 restarts with a new address (the old one leaves the directory).
    {
        let mut d = dir.write().unwrap();
        d.apply(&KvChange::Delete {
            key: directory_key("10.1.0.1".parse().unwrap()),
        })
        .unwrap();
        let p = pod("10.1.0.4", "shop", "web-1-x2", "web", "web");
        d.apply(&KvChange::Put {
            key: directory_key(p.ip),
            value: serde_json::to_vec(&p).unwrap().into(),
        })
        .unwrap();
    }
    s.apply_batch(vec![rec(
        5,
        "10.1.0.4",
        "10.1.0.9",
        5432,
        6,
        "PostgreSQL",
        4,
    )]);
    let during = Learned::DuringLearning;
    assert_eq!(
        rows(&s),
        vec![
            row(
                "192.0.2.7",
                "shop/Deployment/web",
                443,
                6,
                "TLS",
                Status::Allowed,
                during,
                1
            ),
            row(
                "shop/Deployment/web",
                "shop/Deployment/db",
                5432,
                6,
                "PostgreSQL",
                Status::Allowed,
                during,
                4
            ),
        ]
    );
    let mut after: Vec<u64> = s.servicemap.edges.iter().map(|e| e.id).collect();
    let mut before = before;
    before.sort_unstable();
    after.sort_unstable();
    assert_eq!(before, after, "the restart made no new edge");
}

#[test]
fn a_denied_edge_raises_lateral_movement_with_the_client_as_attacker() {
    let dir = directory(&[
        pod("10.1.0.1", "shop", "web-1", "web", "web"),
        pod("10.1.0.5", "shop", "batch-1", "batch", "batch"),
        pod("10.1.0.6", "shop", "report-1", "report", "report"),
        pod("10.1.0.9", "shop", "db-0", "db", "db"),
    ]);
    let mut s = state(7200, 0);
    s.servicemap.attach_directory(dir);
    s.servicemap.set_policies(servicemap::policy::compile(&policy(
        "shop",
        "db-access",
        serde_json::json!({
            "learningPeriod": "1h",
            "defaultAction": "deny",
            "rules": [
                {"action": "deny", "client": {"matchLabels": {"app": "batch"}}, "ports": [{"port": 5432}]},
                {"action": "allow", "client": {"matchLabels": {"app": "web"}},
                 "server": {"matchLabels": {"app": "db"}}, "ports": [{"port": 5432, "protocol": "TCP"}]}
            ]
        }),
    )));
    s.apply_batch(vec![
        // Learning still runs, but an explicit deny rule wins at once.
        rec(1, "10.1.0.5", "10.1.0.9", 5432, 6, "PostgreSQL", 0),
        rec(2, "10.1.0.1", "10.1.0.9", 5432, 6, "PostgreSQL", 10),
        // Learned during the policy's learning hour: allowed.
        rec(3, "10.1.0.6", "10.1.0.9", 9187, 6, "HTTP", 20),
        // After it, an edge no rule allows: denied by defaultAction.
        rec(4, "10.1.0.6", "10.1.0.9", 5432, 6, "PostgreSQL", 4000),
        // An allowed edge after learning stays quiet.
        rec(5, "10.1.0.1", "10.1.0.9", 5432, 6, "PostgreSQL", 4100),
    ]);
    let policy = Learned::Policy;
    assert_eq!(
        rows(&s),
        vec![
            row(
                "shop/Deployment/batch",
                "shop/Deployment/db",
                5432,
                6,
                "PostgreSQL",
                Status::Denied,
                policy,
                1
            ),
            row(
                "shop/Deployment/report",
                "shop/Deployment/db",
                5432,
                6,
                "PostgreSQL",
                Status::Denied,
                policy,
                1
            ),
            row(
                "shop/Deployment/report",
                "shop/Deployment/db",
                9187,
                6,
                "HTTP",
                Status::Allowed,
                Learned::DuringLearning,
                1
            ),
            row(
                "shop/Deployment/web",
                "shop/Deployment/db",
                5432,
                6,
                "PostgreSQL",
                Status::Allowed,
                policy,
                2
            ),
        ]
    );
    let lm = alerts_of(&s, "lateral_movement");
    assert_eq!(lm.len(), 2);
    let mut attackers: Vec<IpAddr> = lm
        .iter()
        .map(|a| {
            assert!(a.roles.client_attacker && a.roles.server_victim);
            assert!(!a.roles.server_attacker && !a.roles.client_victim);
            assert_eq!((a.score, a.client_score, a.server_score), (50, 50, 0));
            assert!(a.message.contains("policy shop/db-access"), "{}", a.message);
            let f = a.flow.as_ref().unwrap();
            assert_eq!(f.server_addr(), Some("10.1.0.9".parse().unwrap()));
            f.client_addr().unwrap()
        })
        .collect();
    attackers.sort();
    assert_eq!(
        attackers,
        vec![
            "10.1.0.5".parse::<IpAddr>().unwrap(),
            "10.1.0.6".parse().unwrap()
        ]
    );
    let denied = s
        .servicemap
        .edges
        .iter()
        .find(|e| e.client.id() == "shop/Deployment/batch")
        .unwrap();
    assert!(lm.iter().any(|a| a.message.contains(&id_text(denied.id))));
}

#[test]
fn the_api_can_deny_an_edge_and_removing_a_policy_returns_edges_to_learning() {
    let dir = directory(&[
        pod("10.1.0.1", "shop", "web-1", "web", "web"),
        pod("10.1.0.9", "shop", "db-0", "db", "db"),
    ]);
    let mut s = state(60, 0);
    s.servicemap.attach_directory(dir);
    s.apply_batch(vec![rec(
        1,
        "10.1.0.1",
        "10.1.0.9",
        5432,
        6,
        "PostgreSQL",
        0,
    )]);
    let id = s.servicemap.edges.iter().next().unwrap().id;
    assert_eq!(
        s.servicemap.set_status(id, Status::Denied).unwrap().learned,
        Learned::Manual
    );
    s.apply_batch(vec![rec(
        2,
        "10.1.0.1",
        "10.1.0.9",
        5432,
        6,
        "PostgreSQL",
        10,
    )]);
    assert_eq!(alerts_of(&s, "lateral_movement").len(), 1);
    // A policy does not override what an operator set.
    s.servicemap
        .set_policies(servicemap::policy::compile(&policy(
            "shop",
            "p",
            serde_json::json!({"rules": [{"action": "allow", "ports": [{"port": 5432}]}]}),
        )));
    assert_eq!(s.servicemap.edges.get(id).unwrap().status, Status::Denied);
    s.servicemap.set_status(id, Status::Undecided);
    s.servicemap.set_status(id, Status::Allowed);
    // A rule that denies takes a learned edge; when the rule goes, the edge is learned again.
    let mut t = state(60, 0);
    t.servicemap.attach_directory(directory(&[
        pod("10.1.0.1", "shop", "web-1", "web", "web"),
        pod("10.1.0.9", "shop", "db-0", "db", "db"),
    ]));
    t.apply_batch(vec![rec(
        1,
        "10.1.0.1",
        "10.1.0.9",
        5432,
        6,
        "PostgreSQL",
        0,
    )]);
    t.servicemap
        .set_policies(servicemap::policy::compile(&policy(
            "shop",
            "p",
            serde_json::json!({"rules": [{"action": "deny", "ports": [{"port": 5432}]}]}),
        )));
    let e = t.servicemap.edges.iter().next().unwrap();
    assert_eq!((e.status, e.learned), (Status::Denied, Learned::Policy));
    t.servicemap.set_policies(Vec::new());
    let e = t.servicemap.edges.iter().next().unwrap();
    assert_eq!(
        (e.status, e.learned),
        (Status::Allowed, Learned::DuringLearning)
    );
}

#[test]
fn a_port_scan_after_learning_stays_bounded_and_evicts_undecided_edges_first() {
    let mut s = state(60, 1000);
    let mut id = 0;
    let mut batch = Vec::new();
    for c in 0..10 {
        for srv in 0..10 {
            id += 1;
            batch.push(rec(
                id,
                &format!("10.0.1.{c}"),
                &format!("10.0.2.{srv}"),
                443,
                6,
                "TLS",
                c,
            ));
        }
    }
    s.apply_batch(batch);
    let learned = rows(&s);
    assert_eq!(learned.len(), 100);
    // The scan: 20 000 unique (server, port) edges after learning.
    for chunk in 0..20u64 {
        let batch = (0..1000u64)
            .map(|i| {
                id += 1;
                let n = chunk * 1000 + i;
                let srv = format!("10.0.3.{}", n % 200);
                rec(
                    id,
                    "10.0.9.9",
                    &srv,
                    u32::try_from(1 + n / 200).unwrap(),
                    6,
                    "",
                    120 + chunk,
                )
            })
            .collect();
        s.apply_batch(batch);
        assert!(s.servicemap.edges.len() <= 1000);
    }
    let sm = &s.servicemap;
    assert_eq!(sm.edges.len(), 1000);
    assert_eq!(sm.edges.evictions.decided, 0);
    assert_eq!(sm.edges.evictions.undecided, 20_000 - 900);
    for r in &learned {
        assert!(
            sm.edges
                .iter()
                .any(|e| e.client.id() == r.0 && e.server.id() == r.1),
            "learned edge {r:?} was evicted"
        );
    }
    assert_eq!(sm.counters.new_service, 20_000);
}

#[test]
fn two_ingest_orders_give_the_same_map() {
    let dir = || {
        directory(&[
            pod("10.1.0.1", "shop", "web-1", "web", "web"),
            pod("10.1.0.2", "shop", "web-2", "web", "web"),
            pod("10.1.0.9", "shop", "db-0", "db", "db"),
        ])
    };
    let mut records = Vec::new();
    let clients = ["10.1.0.1", "10.1.0.2", "192.0.2.1", "192.0.2.2"];
    let servers = [
        ("10.1.0.9", 5432, 6, "PostgreSQL"),
        ("10.1.0.1", 443, 6, "TLS"),
        ("10.1.0.9", 53, 17, "DNS"),
    ];
    for i in 0..240u64 {
        let c = clients[usize::try_from(i % 4).unwrap()];
        let (srv, port, l4, l7) = servers[usize::try_from(i % 3).unwrap()];
        records.push(rec(i + 1, c, srv, port, l4, l7, i * 7));
    }
    let run = |records: Vec<FlowRecord>| {
        let mut s = state(7200, 0);
        s.servicemap.attach_directory(dir());
        for chunk in records.chunks(17) {
            s.apply_batch(chunk.to_vec());
        }
        let mut v: Vec<_> = s
            .servicemap
            .edges
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.client.id(),
                    e.server.id(),
                    e.flows,
                    e.bytes_c2s,
                    e.bytes_s2c,
                    e.status,
                    e.first_seen_ns,
                    e.last_seen_ns,
                )
            })
            .collect();
        v.sort();
        v
    };
    let forward = run(records.clone());
    let mut shuffled = records;
    shuffled.reverse();
    shuffled.rotate_left(31);
    assert_eq!(forward.len(), 9);
    assert_eq!(forward, run(shuffled));
}

#[test]
fn the_learned_map_exports_as_a_service_policy_the_crd_validation_accepts() {
    let entries = [
        pod("10.1.0.1", "shop", "web-1", "web", "web"),
        pod("10.1.0.5", "shop", "batch-1", "batch", "batch"),
        pod("10.1.0.9", "shop", "db-0", "db", "db"),
        pod("10.2.0.1", "mon", "prom-0", "prometheus", "prometheus"),
    ];
    let learn = vec![
        rec(1, "10.1.0.1", "10.1.0.9", 5432, 6, "PostgreSQL", 0),
        rec(2, "10.2.0.1", "10.1.0.9", 9187, 6, "HTTP", 1),
        rec(3, "10.1.0.1", "10.1.0.9", 53, 17, "DNS", 2),
        rec(4, "192.0.2.1", "10.1.0.1", 443, 6, "TLS", 3),
        rec(5, "10.1.0.1", "192.0.2.80", 443, 6, "TLS", 4),
        rec(6, "10.1.0.1", "10.1.0.9", 0, 1, "ICMP", 5),
    ];
    let mut s = state(60, 0);
    s.servicemap.attach_directory(directory(&entries));
    s.apply_batch(learn.clone());
    let dir = directory(&entries);
    let (docs, notes) = servicemap::policy::export(
        s.servicemap.edges.iter(),
        &dir.read().unwrap(),
        netwarden_api::crd::ServiceRuleAction::Deny,
        "1m",
    );
    let yaml = servicemap::policy::export_yaml(&docs, &notes);
    let parsed: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(parsed.len(), 1, "{yaml}");
    let sp: ServicePolicy = serde_json::from_value(parsed[0].clone()).unwrap();
    assert!(sp.spec.validate().is_empty(), "{:?}", sp.spec.validate());
    assert_eq!(sp.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(sp.spec.rules.len(), 3, "{yaml}");
    assert!(!yaml.contains("pod-template-hash"));
    assert!(yaml.contains("the server is not in a namespace"), "{yaml}");
    assert!(yaml.contains("L4 ICMP has no port"), "{yaml}");
    // Applied back: the learned traffic is quiet, a new edge is denied.
    let spec = sp.spec.clone();
    let applied = BTreeMap::from([(
        "ServicePolicy.shop.netwarden-learned".to_owned(),
        ConfigEntry {
            api_version: "netwarden.io/v1alpha1".into(),
            kind: "ServicePolicy".into(),
            namespace: Some("shop".into()),
            name: "netwarden-learned".into(),
            generation: 1,
            spec,
        },
    )]);
    let mut t = state(60, 0);
    t.servicemap.attach_directory(directory(&entries));
    t.servicemap
        .set_policies(servicemap::policy::compile(&applied));
    // ICMP has no port a rule could name: with `defaultAction: deny` it would be denied.
    let later: Vec<FlowRecord> = learn
        .iter()
        .filter(|r| r.l4_proto != 1)
        .map(|r| FlowRecord {
            first_seen_ns: r.first_seen_ns + 3600 * SEC,
            last_seen_ns: r.last_seen_ns + 3600 * SEC,
            flow_id: r.flow_id + 100,
            ..r.clone()
        })
        .collect();
    t.apply_batch(vec![rec(50, "10.1.0.5", "10.1.0.1", 80, 6, "HTTP", 0)]);
    t.apply_batch(later);
    t.apply_batch(vec![rec(
        51,
        "10.1.0.5",
        "10.1.0.9",
        5432,
        6,
        "PostgreSQL",
        7200,
    )]);
    let lm = alerts_of(&t, "lateral_movement");
    assert_eq!(
        lm.len(),
        1,
        "{:?}",
        lm.iter().map(|a| &a.message).collect::<Vec<_>>()
    );
    assert_eq!(lm[0].flow.as_ref().unwrap().flow_id, 51);
}
