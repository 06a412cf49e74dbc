//! `docs/configuration.md` documents every field of the four CRDs: this test walks the
//! generated OpenAPI schema of each kind (what `crdgen` writes to `crds/`) and fails when a
//! field path (`spec.hosts[].cidr`), its default or one of its enum values is missing from
//! the table row of that field in the kind's section. Label selectors are documented as one
//! field (their inner `matchLabels`/`matchExpressions` once, at the top of the page).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;

/// `(path, default, enum values)` of every field under `schema`.
fn fields(schema: &Value, path: &str, out: &mut Vec<(String, Option<Value>, Vec<String>)>) {
    if let Some(props) = schema["properties"].as_object() {
        if props.contains_key("matchLabels") && props.contains_key("matchExpressions") {
            return; // a LabelSelector
        }
        for (name, sub) in props {
            let p = format!("{path}.{name}");
            let enums = sub["enum"]
                .as_array()
                .map(|e| e.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            out.push((p.clone(), sub.get("default").cloned(), enums));
            if name != "conditions" {
                fields(sub, &p, out);
            }
        }
    }
    if schema["type"] == "array" {
        fields(&schema["items"], &format!("{path}[]"), out);
    }
}

/// The `## <kind>` section of the page (up to the next `## `).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/configuration.md has no `## {heading}` section"));
    let rest = &doc[start + 4..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_crd_field_is_documented_with_its_default_and_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for crd in netwarden_api::crd::crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let root_schema = &schema["openAPIV3Schema"]["properties"];
        let mut all = Vec::new();
        fields(&root_schema["spec"], "spec", &mut all);
        let status_section = section(&doc, "Status (every kind)");
        let kind_section = section(&doc, &kind);
        let mut status = Vec::new();
        fields(&root_schema["status"], "status", &mut status);
        for (sect, list) in [(kind_section, all), (status_section, status)] {
            for (path, default, enums) in list {
                checked += 1;
                let needle = format!("| `{path}` |");
                let Some(row) = sect.lines().find(|l| l.starts_with(&needle)) else {
                    missing.push(format!("{kind}: no row for `{path}`"));
                    continue;
                };
                let default = match default {
                    Some(Value::String(s)) => Some(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
                    _ => None,
                };
                if let Some(d) = default
                    && !row.contains(&format!("`{d}`"))
                {
                    missing.push(format!("{kind}: `{path}` row lacks its default `{d}`"));
                }
                for e in enums {
                    if !row.contains(&format!("`{e}`")) {
                        missing.push(format!("{kind}: `{path}` row lacks the value `{e}`"));
                    }
                }
            }
        }
    }
    assert!(checked > 60, "walked only {checked} fields");
    assert!(
        missing.is_empty(),
        "docs/configuration.md:\n{}",
        missing.join("\n")
    );
}
