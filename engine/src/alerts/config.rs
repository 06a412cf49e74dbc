//! The analysis part of `standalone --config DIR`: every `*.yaml`/`*.yml` file of the
//! directory, in name order, may hold several documents; `kind: AlertExclusion` documents
//! become exclusions (the CRD spec shape), one `kind: Analysis` document configures the checks,
//! DES and the alert store ([`AnalysisConfig`]); other kinds are left to their owners.

use std::path::Path;

use serde::Deserialize;

use crate::alerts::AnalysisConfig;
use crate::exclusions::{Exclusions, LoadError};

#[derive(Deserialize)]
struct Doc {
    kind: String,
    #[serde(default)]
    spec: Option<serde_json::Value>,
}

/// Parses the `Analysis` document of one YAML text, if any.
pub fn parse_analysis(path: &str, text: &str) -> Result<Option<AnalysisConfig>, LoadError> {
    let err = |message: String| LoadError {
        path: path.to_owned(),
        message,
    };
    let docs: Vec<Doc> = serde_saphyr::from_multiple(text).map_err(|e| err(e.to_string()))?;
    let mut found = None;
    for d in docs.into_iter().filter(|d| d.kind == "Analysis") {
        if found.is_some() {
            return Err(err("more than one `kind: Analysis` document".into()));
        }
        let cfg: AnalysisConfig = serde_json::from_value(d.spec.unwrap_or_default())
            .map_err(|e| err(format!("Analysis: {e}")))?;
        let unknown = cfg.checks.unknown_names();
        if !unknown.is_empty() {
            return Err(err(format!(
                "Analysis: unknown check or risk names in enable/disable: {}",
                unknown.join(", ")
            )));
        }
        found = Some(cfg);
    }
    Ok(found)
}

/// Reads the analysis configuration and the exclusions of `dir` (defaults when absent);
/// blocklist files named in the configuration are loaded.
pub fn load_dir(dir: &Path) -> Result<(AnalysisConfig, Exclusions), LoadError> {
    let exclusions = crate::exclusions::load_dir(dir)?;
    let mut config = None;
    for f in crate::exclusions::yaml_files(dir)? {
        let text = std::fs::read_to_string(&f).map_err(|e| LoadError {
            path: f.display().to_string(),
            message: e.to_string(),
        })?;
        if let Some(c) = parse_analysis(&f.display().to_string(), &text)? {
            if config.is_some() {
                return Err(LoadError {
                    path: f.display().to_string(),
                    message: "a second `kind: Analysis` document".into(),
                });
            }
            config = Some(c);
        }
    }
    let mut config: AnalysisConfig = config.unwrap_or_default();
    config.checks = config.checks.with_blocklists_loaded();
    Ok((config, exclusions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_analysis_and_exclusions_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("block.txt"), "198.51.100.66\n").unwrap();
        let analysis = format!(
            "kind: Analysis\nspec:\n  checks:\n    local_networks: [10.0.0.0/8]\n    enable: [tcp_flow_reset]\n    blocklist_files: [{}]\n    host: {{syn_scan: 100}}\n  host_sample_secs: 60\n",
            dir.path().join("block.txt").display()
        );
        std::fs::write(dir.path().join("analysis.yaml"), analysis).unwrap();
        std::fs::write(
            dir.path().join("ex.yml"),
            "kind: AlertExclusion\nmetadata: {name: a}\nspec: {hosts: [{cidr: 10.1.0.0/16}], alertTypes: [all]}\n",
        )
        .unwrap();
        let (cfg, ex) = load_dir(dir.path()).unwrap();
        assert_eq!(cfg.checks.local_networks.len(), 1);
        assert_eq!(cfg.checks.host.syn_scan, 100);
        assert_eq!(cfg.host_sample_secs, 60);
        assert!(
            cfg.checks
                .blocklist
                .has_ip("198.51.100.66".parse().unwrap())
        );
        assert_eq!(ex.rules.len(), 1);
        let bad = "kind: Analysis\nspec: {checks: {enable: [no_such]}}\n";
        assert!(parse_analysis("b.yaml", bad).is_err());
        let typo = "kind: Analysis\nspec: {chekcs: {}}\n";
        assert!(
            parse_analysis("t.yaml", typo)
                .unwrap_err()
                .to_string()
                .contains("chekcs")
        );
    }
}
