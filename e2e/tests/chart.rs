//! The Helm chart, rendered by a real helm and validated against Kubernetes' schemas.

use std::collections::BTreeSet;

use netwarden_e2e::{documents, find, helm, render, repo, validate};
use serde_json::Value;

fn containers(workload: &Value) -> &Vec<Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

fn args(workload: &Value) -> Vec<String> {
    containers(workload)[0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

#[test]
fn chart_lints_clean_in_strict_mode() {
    let out = helm(&["lint", "charts/netwarden", "--strict"]);
    assert!(
        out.status.success(),
        "helm lint failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn default_render_is_valid_kubernetes_and_wires_every_component() {
    let yaml = render(&[]).expect("default values render");
    validate(&yaml).expect("rendered objects are valid Kubernetes");
    let docs = documents(&yaml);

    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "DaemonSet",
        "StatefulSet",
        "Deployment",
        "ClusterRole",
        "Service",
    ] {
        assert!(kinds.contains(kind), "no {kind} rendered: {kinds:?}");
    }

    // Every component connects to the chart's own NATS, and sensors and engines agree on
    // the number of shards.
    let nats = "--nats=nats://nw-netwarden-nats:4222";
    let sensor = find(&docs, "DaemonSet", "nw-netwarden-sensor");
    let engine = find(&docs, "StatefulSet", "nw-netwarden-engine");
    let operator = find(&docs, "Deployment", "nw-netwarden-operator");
    for workload in [sensor, engine, operator] {
        assert!(args(workload).iter().any(|a| a == nats), "{workload}");
    }
    assert!(args(sensor).contains(&"--shards=64".to_owned()));
    // The operator counts the reporters it expects among this release's pods.
    assert!(args(operator).contains(
        &"--sensor-selector=app.kubernetes.io/name=netwarden,app.kubernetes.io/instance=nw,app.kubernetes.io/component=sensor"
            .to_owned()
    ));
    let sensor_labels = &sensor["spec"]["template"]["metadata"]["labels"];
    assert_eq!(sensor_labels["app.kubernetes.io/instance"], "nw");
    assert_eq!(sensor_labels["app.kubernetes.io/component"], "sensor");
    assert!(args(engine).contains(&"--shards=64".to_owned()));

    // One image, tagged with the chart's appVersion, for the three binaries.
    let chart = std::fs::read_to_string(repo().join("charts/netwarden/Chart.yaml")).unwrap();
    let app_version = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .unwrap()
        .trim()
        .trim_matches('"');
    for workload in [sensor, engine, operator] {
        let image = containers(workload)[0]["image"].as_str().unwrap();
        assert_eq!(image, format!("ghcr.io/netwarden/netwarden:{app_version}"));
    }

    // The sensor sees node traffic: host network, raw sockets, no API token.
    let pod = &sensor["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let caps = &containers(sensor)[0]["securityContext"]["capabilities"];
    assert_eq!(caps["add"], serde_json::json!(["NET_RAW", "NET_ADMIN"]));
    assert_eq!(caps["drop"], serde_json::json!(["ALL"]));

    // The engine and the operator run as non-root with a read-only root filesystem, and
    // every container states its resources.
    for workload in [engine, operator] {
        let sc = &containers(workload)[0]["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
    }
    for doc in &docs {
        if let Some(cs) = doc["spec"]["template"]["spec"]["containers"].as_array() {
            for c in cs {
                assert!(c["resources"]["requests"].is_object(), "{}", c["name"]);
            }
        }
    }

    // The engine keeps its store on a volume per replica, and its API needs tokens from a
    // Secret mounted read-only (the path the binary is told).
    assert_eq!(
        engine["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    let engine_args = args(engine);
    for want in ["--data=/data", "--tokens=/etc/netwarden/tokens/tokens.json"] {
        assert!(
            engine_args.iter().any(|a| a == want),
            "{want} in {engine_args:?}"
        );
    }
    assert!(!engine_args.iter().any(|a| a == "--insecure-no-auth"));
    let engine_pod = &engine["spec"]["template"]["spec"];
    let tokens = engine_pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tokens")
        .expect("tokens volume");
    assert_eq!(tokens["secret"]["secretName"], "netwarden-tokens");
    let mount = containers(engine)[0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tokens")
        .expect("tokens mount");
    assert_eq!(mount["mountPath"], "/etc/netwarden/tokens");
    assert_eq!(mount["readOnly"], true);
}

#[test]
fn engine_notification_secrets_are_mounted_where_the_engine_reads_them() {
    let yaml = render(&[
        "engine.notifications.secrets[0]=slack-webhook",
        "engine.notifications.smtp.urlSecret.name=smtp",
        "engine.notifications.clusterCidrs[0]=10.244.0.0/16",
        "engine.notifications.clusterCidrs[1]=10.96.0.0/12",
        "engine.auth.insecureNoAuth=true",
    ])
    .expect("renders");
    validate(&yaml).expect("valid Kubernetes");
    let docs = documents(&yaml);
    let engine = find(&docs, "StatefulSet", "nw-netwarden-engine");
    let engine_args = args(engine);
    for want in [
        "--secrets-dir=/etc/netwarden/secrets",
        "--cluster-cidr=10.244.0.0/16,10.96.0.0/12",
        "--insecure-no-auth",
    ] {
        assert!(
            engine_args.iter().any(|a| a == want),
            "{want} in {engine_args:?}"
        );
    }
    assert!(!engine_args.iter().any(|a| a.starts_with("--tokens")));
    let mount = containers(engine)[0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/netwarden/secrets/slack-webhook")
        .expect("secret mounted under --secrets-dir/<name>");
    assert_eq!(mount["readOnly"], true);
    let env = containers(engine)[0]["env"].as_array().unwrap();
    let smtp = env
        .iter()
        .find(|e| e["name"] == "NETWARDEN_SMTP_URL")
        .expect("SMTP URL from the Secret");
    assert_eq!(smtp["valueFrom"]["secretKeyRef"]["name"], "smtp");
    assert!(smtp.get("value").is_none(), "never inline");
}

#[test]
fn values_scale_the_engine_and_use_an_external_nats() {
    let yaml = render(&[
        "engine.replicas=3",
        "nats.enabled=false",
        "nats.url=nats://nats.messaging:4222",
        "engine.persistence.enabled=false",
        "sensor.flowListeners[0]=0.0.0.0:2055",
        "sensor.interfaces[0]=eth0",
        "sensor.bpfFilter=not port 4222",
        "shards=128",
    ])
    .expect("renders");
    validate(&yaml).expect("valid Kubernetes");
    let docs = documents(&yaml);
    assert!(
        !docs
            .iter()
            .any(|d| d["metadata"]["name"] == "nw-netwarden-nats"),
        "no NATS of our own when nats.enabled=false"
    );
    let engine = find(&docs, "StatefulSet", "nw-netwarden-engine");
    assert_eq!(engine["spec"]["replicas"], 3);
    assert!(engine["spec"]["volumeClaimTemplates"].is_null());
    assert_eq!(
        engine["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
        serde_json::json!({})
    );
    let sensor = find(&docs, "DaemonSet", "nw-netwarden-sensor");
    let sensor_args = args(sensor);
    for want in [
        "--nats=nats://nats.messaging:4222",
        "--shards=128",
        "--netflow=0.0.0.0:2055",
        "--interface=eth0",
        "--bpf=not port 4222",
    ] {
        assert!(
            sensor_args.iter().any(|a| a == want),
            "{want} in {sensor_args:?}"
        );
    }
    assert!(args(engine).contains(&"--shards=128".to_owned()));
    let ports = containers(sensor)[0]["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["containerPort"] == 2055 && p["protocol"] == "UDP")
    );
}

#[test]
fn optional_monitoring_and_network_policies_render_valid_objects() {
    let yaml =
        render(&["serviceMonitor.enabled=true", "networkPolicy.enabled=true"]).expect("renders");
    validate(&yaml).expect("valid Kubernetes");
    let docs = documents(&yaml);
    let monitors = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceMonitor")
        .count();
    assert_eq!(monitors, 3, "engine, sensor and operator are scraped");
    let policies = docs.iter().filter(|d| d["kind"] == "NetworkPolicy").count();
    assert_eq!(policies, 2, "NATS and the engine API");
}

#[test]
fn invalid_values_are_refused_with_the_offending_path() {
    for (set, path) in [
        ("engine.replicas=0", "/engine/replicas"),
        ("shards=0", "/shards"),
        ("logLevel=loud", "/logLevel"),
        ("engine.replica=3", "replica"),
        ("sensor.snaplen=10", "/sensor/snaplen"),
        (
            "sensor.flowListeners[0]=everywhere",
            "/sensor/flowListeners/0",
        ),
        ("nats.url=http://x", "/nats/url"),
        ("engine.retention.age=forever", "/engine/retention/age"),
        (
            "engine.notifications.secrets[0]=../etc",
            "/engine/notifications/secrets/0",
        ),
    ] {
        let err = render(&[set]).expect_err(set);
        assert!(err.contains(path), "{set}: {err}");
    }
    let err = render(&["nats.enabled=false"]).expect_err("no NATS at all");
    assert!(err.contains("nats.url is required"), "{err}");
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let generated = names("crds");
    assert_eq!(generated.len(), 4, "{generated:?}");
    assert_eq!(names("charts/netwarden/crds"), generated);
    for name in &generated {
        let a = std::fs::read(repo().join("crds").join(name)).unwrap();
        let b = std::fs::read(repo().join("charts/netwarden/crds").join(name)).unwrap();
        assert!(
            a == b,
            "charts/netwarden/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/netwarden/crds/"
        );
    }
}

#[test]
fn operator_rbac_matches_the_plain_manifests() {
    let docs = documents(&render(&[]).unwrap());
    let chart_rules = &find(&docs, "ClusterRole", "nw-netwarden-operator")["rules"];
    let manifests = std::fs::read_to_string(repo().join("manifests/operator/rbac.yaml")).unwrap();
    let manifest_docs = documents(&manifests);
    let plain_rules = &find(&manifest_docs, "ClusterRole", "netwarden-operator")["rules"];
    assert_eq!(
        chart_rules, plain_rules,
        "charts/netwarden/files/operator-rules.yaml and manifests/operator/rbac.yaml disagree"
    );
}

#[test]
fn plain_manifests_are_the_chart_rendering_and_build_with_kustomize() {
    // manifests/netwarden.yaml is scripts/render-manifests' output: the same objects.
    let committed = std::fs::read_to_string(repo().join("manifests/netwarden.yaml")).unwrap();
    let rendered = {
        let out = helm(&[
            "template",
            "netwarden",
            "charts/netwarden",
            "--namespace",
            "netwarden",
            "--set",
            "operator.enabled=false",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        documents(&committed),
        documents(&rendered),
        "manifests/netwarden.yaml is stale: run scripts/render-manifests"
    );

    // The whole kustomization builds and is valid Kubernetes.
    let out = std::process::Command::new(netwarden_e2e::tool("kubectl"))
        .args(["kustomize", "manifests"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8(out.stdout).unwrap();
    validate(&built).expect("valid Kubernetes");
    let docs = documents(&built);
    for (kind, name) in [
        ("Namespace", "netwarden"),
        ("Deployment", "netwarden-operator"),
        ("DaemonSet", "netwarden-sensor"),
        ("StatefulSet", "netwarden-engine"),
        ("StatefulSet", "netwarden-nats"),
    ] {
        find(&docs, kind, name);
    }
    // The hand-written operator Deployment reaches the rendered NATS Service.
    let operator = find(&docs, "Deployment", "netwarden-operator");
    assert!(
        args(operator)
            .iter()
            .any(|a| a.contains("://netwarden-nats.netwarden:4222")),
        "{:?}",
        args(operator)
    );
    find(&docs, "Service", "netwarden-nats");
}
