//! Helpers of the end-to-end tests: where the repository and its tools are, and running the
//! deployment tools (helm, kubectl, kubernetes-validate) that `scripts/bootstrap --test`
//! installs under `.tools/`; [`cluster`]: the harness of the cluster test (network namespaces,
//! the real binaries as processes, cleanup guards); [`kube`]: a fake Kubernetes API server for
//! the real operator.

pub mod cluster;
pub mod kube;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// A tool installed by `scripts/bootstrap --test`: `.tools/bin/NAME`, `.tools/venv/bin/NAME`,
/// or on PATH. Panics with the install command when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let root = repo();
    for dir in [root.join(".tools/bin"), root.join(".tools/venv/bin")] {
        let path = dir.join(name);
        if path.is_file() {
            return path;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if path.is_file() {
                return path;
            }
        }
    }
    panic!("{name} not found: run scripts/bootstrap --test");
}

/// Runs helm with its cache, config and data directories in a throw-away folder (no network,
/// no state left behind).
pub fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp dir");
    Command::new(tool("helm"))
        .args(args)
        .current_dir(repo())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("run helm")
}

/// Renders the chart with `--set` values; `Err(stderr)` when helm refuses.
pub fn render(sets: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "template",
        "nw",
        "charts/netwarden",
        "--namespace",
        "netwarden",
        "--include-crds",
    ];
    for set in sets {
        args.push("--set");
        args.push(set);
    }
    let out = helm(&args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The documents of a multi-document YAML stream, as JSON values (empty documents dropped).
pub fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("rendered YAML parses");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The one document of `kind` named `name`.
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// Validates YAML against Kubernetes' own OpenAPI schemas (strict: unknown fields fail) with
/// `kubernetes-validate`; `Err(report)` lists what failed.
pub fn validate(yaml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("objects.yaml");
    std::fs::write(&path, yaml).expect("write rendered YAML");
    let out = Command::new(tool("kubernetes-validate"))
        .arg("--strict")
        .arg("--no-warn")
        .arg(&path)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && !report.contains("ERROR") {
        Ok(())
    } else {
        Err(report)
    }
}
