//! The plain manifests (`kubectl apply -f crds/ && kubectl apply -k manifests/`) hang together:
//! every file parses, the ClusterRole grants exactly `list` and `watch` on what the directory
//! publisher watches (least privilege) besides the reconcilers' rules, the Deployment runs as
//! the ServiceAccount the RBAC binds and passes only flags the binary knows, and `kubectl
//! kustomize manifests/` builds.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The checkout this test was built from.
fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn all_docs() -> Vec<Value> {
    let root = repo_root().join("manifests");
    let kustomization = &documents(&root.join("kustomization.yaml"))[0];
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| documents(&root.join(r.as_str().unwrap())))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in manifests/"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn cluster_role_grants_list_and_watch_on_the_directory_kinds_only() {
    let docs = all_docs();
    let rules = find(&docs, "ClusterRole", "netwarden-operator")["rules"]
        .as_array()
        .unwrap();
    for (group, resource) in netwarden_operator::directory::WATCHED {
        let granting: Vec<&Value> = rules
            .iter()
            .filter(|r| {
                strings(&r["apiGroups"]).contains(&group)
                    && strings(&r["resources"]).contains(&resource)
            })
            .collect();
        assert_eq!(granting.len(), 1, "{group}/{resource}: one rule");
        assert_eq!(
            strings(&granting[0]["verbs"]),
            ["list", "watch"],
            "{group}/{resource}: list and watch only"
        );
    }
    // Nothing in the core group beyond those and `get` on Secrets.
    for rule in rules.iter().filter(|r| strings(&r["apiGroups"]) == [""]) {
        let resources = strings(&rule["resources"]);
        let verbs = strings(&rule["verbs"]);
        assert!(
            (resources == ["secrets"] && verbs == ["get"]) || verbs == ["list", "watch"],
            "{rule}"
        );
    }
}

#[test]
fn deployment_runs_as_the_bound_service_account_with_known_flags() {
    let docs = all_docs();
    let deployment = find(&docs, "Deployment", "netwarden-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    find(&docs, "ServiceAccount", account);
    let binding = find(&docs, "ClusterRoleBinding", "netwarden-operator");
    assert_eq!(binding["subjects"][0]["name"], account);
    assert_eq!(binding["subjects"][0]["namespace"], namespace);
    let lease_role = find(&docs, "RoleBinding", "netwarden-operator-leader");
    assert_eq!(
        lease_role["metadata"]["namespace"], namespace,
        "the Lease lives in the operator's namespace"
    );
    let container = &pod["containers"][0];
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"),
        "leader election needs both"
    );
    let args = strings(&container["args"]);
    assert_eq!(args[0], "run");
    let help = Command::new(env!("CARGO_BIN_EXE_netwarden-operator"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in &args[1..] {
        let flag = arg.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} is not a flag of `netwarden-operator run`"
        );
    }
    for probe in ["livenessProbe", "readinessProbe"] {
        assert!(container[probe]["httpGet"]["path"].is_string(), "{probe}");
    }
}

#[test]
fn kubectl_kustomize_builds_the_manifests() {
    let kubectl = repo_root().join(".tools/bin/kubectl");
    assert!(
        kubectl.exists(),
        "{} missing: run `scripts/bootstrap --test` (installs kubectl 1.37 into .tools/bin)",
        kubectl.display()
    );
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo_root().join("manifests"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let mut kinds: Vec<&str> = built.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Deployment",
            "Namespace",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
            "ServiceAccount",
            "StatefulSet",
            "StatefulSet"
        ],
        "namespace, operator (RBAC, Deployment), and the chart's sensor, engine and NATS"
    );
}
