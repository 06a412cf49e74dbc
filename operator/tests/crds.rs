//! The generated CRDs and the example CRs:
//!
//! * `crds/` must be exactly what `netwarden-operator crdgen` writes (drift test);
//! * every example under `manifests/examples/` must pass the generated OpenAPI schema (checked
//!   with the `jsonschema` crate, draft 4, which ignores the `x-kubernetes-*` extensions) AND
//!   the operator's own validation (which mirrors the CEL rules the schema validator cannot run);
//! * every example under `manifests/examples/invalid/` must be rejected by one of the two, with
//!   the message its first line (`# expect: …`) announces.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use netwarden_api::crd::{
    AlertExclusion, InterfacePolicy, NotificationEndpoint, ServicePolicy, Validate, crds,
    validate::describe,
};
use netwarden_testkit::repo_root;
use serde::de::DeserializeOwned;

#[test]
fn committed_crds_match_the_types() {
    let dir = repo_root().join("crds");
    let generated = netwarden_operator::crdgen::generate().unwrap();
    assert_eq!(generated.len(), 4);
    for (name, yaml) in generated {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == yaml,
            "crds/{name} differs from the Rust types: run `cargo run -p netwarden-operator -- crdgen --out crds` and commit"
        );
    }
}

#[test]
fn committed_crds_are_structural_crds() {
    for crd in crds() {
        let yaml = netwarden_operator::crdgen::render(&crd).unwrap();
        let back: CustomResourceDefinition = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, crd, "the YAML round-trips");
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .unwrap()
                .iter()
                .any(|c| c.name == "Ready")
        );
        let schema = serde_json::to_string(&version.schema).unwrap();
        assert!(!schema.contains("\"$ref\""), "schemas are inlined");
        assert!(
            !schema.contains("additionalProperties\":false"),
            "no additionalProperties: false (not structural)"
        );
    }
}

fn schema_of(kind: &str) -> serde_json::Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn typed_errors<K>(doc: &serde_json::Value) -> Vec<String>
where
    K: DeserializeOwned + netwarden_api::crd::ConfigKind,
{
    match serde_json::from_value::<K>(doc.clone()) {
        Err(e) => vec![format!("types: {e}")],
        Ok(obj) => {
            let errors = obj.config_spec().validate();
            if errors.is_empty() {
                vec![]
            } else {
                vec![describe(&errors)]
            }
        }
    }
}

/// Every reason `doc` would be rejected: by the schema, by the types, by the validation.
fn rejections(doc: &serde_json::Value) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap();
    let validator = jsonschema::draft4::new(&schema_of(kind)).unwrap();
    let mut out: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("schema: {}: {e}", e.instance_path()))
        .collect();
    out.extend(match kind {
        "AlertExclusion" => typed_errors::<AlertExclusion>(doc),
        "NotificationEndpoint" => typed_errors::<NotificationEndpoint>(doc),
        "InterfacePolicy" => typed_errors::<InterfacePolicy>(doc),
        "ServicePolicy" => typed_errors::<ServicePolicy>(doc),
        other => panic!("unknown kind {other}"),
    });
    out
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> (String, serde_json::Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_json::Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, doc)
}

#[test]
fn examples_are_valid_for_every_kind() {
    let dir = repo_root().join("manifests/examples");
    let mut kinds = Vec::new();
    for path in yaml_files(&dir) {
        let (_, doc) = load(&path);
        let rejected = rejections(&doc);
        assert!(
            rejected.is_empty(),
            "{} is rejected: {rejected:#?}",
            path.display()
        );
        // `standalone --config` turns the same file into the entry the operator would publish.
        netwarden_api::crd::entry_from_manifest(&doc).unwrap();
        kinds.push(doc["kind"].as_str().unwrap().to_string());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "AlertExclusion",
            "InterfacePolicy",
            "NotificationEndpoint",
            "ServicePolicy"
        ]
    );
}

#[test]
fn invalid_examples_are_rejected_with_their_reason() {
    let dir = repo_root().join("manifests/examples/invalid");
    let mut kinds = std::collections::BTreeSet::new();
    for path in yaml_files(&dir) {
        let (text, doc) = load(&path);
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!(
                    "{} must start with `# expect: <part of the message>`",
                    path.display()
                )
            });
        let rejected = rejections(&doc).join("\n");
        assert!(
            rejected.contains(expect),
            "{}: expected {expect:?}, got:\n{rejected}",
            path.display()
        );
        assert!(
            netwarden_api::crd::entry_from_manifest(&doc).is_err(),
            "{}",
            path.display()
        );
        kinds.insert(doc["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.len(), 4, "at least one invalid example per kind");
}
