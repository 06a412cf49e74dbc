//! Alert exclusions (REFERENCE.md §6): which alerts must not be raised, for whom.
//!
//! Applied *before* scoring: an excluded flow alert adds no score; an excluded host alert is
//! not engaged, and an engaged one is released. The configuration type mirrors the spec of the
//! `AlertExclusion` CRD kind (DESIGN.md §8); standalone reads it from YAML files in `--config DIR`
//! (`kind: AlertExclusion`, `spec:` as below). Pure matching: no I/O but [`load_dir`].

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checks::Cidr;

/// Which end of a flow a host matcher matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostSide {
    /// The client only.
    Client,
    /// The server only.
    Server,
    /// Either end.
    #[default]
    Either,
}

/// Which alerts an exclusion applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Flow alerts only.
    Flow,
    /// Host alerts only.
    Host,
    /// Both.
    #[default]
    Both,
}

/// A host matcher: an address or network and the side of the flow it must be on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostMatcher {
    /// Address or CIDR.
    pub cidr: Cidr,
    /// Which end of a flow (flow alerts); host alerts match the host whatever the side.
    #[serde(default)]
    pub side: HostSide,
}

/// A client↔server pair (ntop/ntopng#7401).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// Client address or CIDR.
    pub client: Cidr,
    /// Server address or CIDR.
    pub server: Cidr,
}

/// One exclusion: the spec of the `AlertExclusion` CRD kind (`api::crd::AlertExclusionSpec`),
/// minus `podSelector`, which needs the cluster directory. An alert is excluded when its type
/// is listed (or `all`) and ANY matcher matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct ExclusionSpec {
    /// Hosts by address or CIDR, with the side they must be on.
    pub hosts: Vec<HostMatcher>,
    /// Client↔server pairs (flow alerts only).
    pub pairs: Vec<Pair>,
    /// Server names (SNI, HTTP Host, DNS query): `example.com` or `*.example.com`
    /// (the name and its subdomains); `*` elsewhere is a wildcard. Flow alerts only.
    pub domains: Vec<String>,
    /// Certificate issuer DNs, exact or with `*` wildcards. Flow alerts only.
    pub certificate_issuers: Vec<String>,
    /// Flow alerts, host alerts, or both.
    pub scope: Scope,
    /// Alert types (check names or risk keys, an `ndpi_` prefix is accepted), or `all`.
    pub alert_types: Vec<String>,
    /// When the exclusion stops applying (RFC 3339, compared with flow time).
    pub expires_at: Option<String>,
    /// Why (for people).
    pub reason: Option<String>,
    /// `expires_at` in ns (set by [`ExclusionSpec::validate`]).
    #[serde(skip)]
    pub expires_ns: Option<u64>,
}

/// A YAML document as found in `--config DIR`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    kind: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    spec: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<String>,
}

/// What a flow alert is about, for matching.
#[derive(Clone, Copy, Debug)]
pub struct FlowSubject<'a> {
    /// Client address.
    pub client: IpAddr,
    /// Server address.
    pub server: IpAddr,
    /// Hostname / SNI.
    pub domain: &'a str,
    /// Certificate issuer DN.
    pub issuer: &'a str,
}

/// The exclusions in force.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    /// The specs, with their names.
    pub rules: Vec<(String, ExclusionSpec)>,
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

fn domain_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if let Some(base) = pattern.strip_prefix("*.") {
        let lname = name.to_ascii_lowercase();
        let base = base.to_ascii_lowercase();
        return lname == base || lname.ends_with(&format!(".{base}"));
    }
    glob(pattern, name)
}

impl ExclusionSpec {
    fn live(&self, now_ns: u64) -> bool {
        self.expires_ns.is_none_or(|e| now_ns < e)
    }

    fn type_matches(&self, alert_type: &str) -> bool {
        self.alert_types
            .iter()
            .any(|t| t == "all" || t == alert_type || t.strip_prefix("ndpi_") == Some(alert_type))
    }

    /// Checks the spec as the CRD schema does (a matcher and an alert type are required) and
    /// parses `expires_at`.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.hosts.is_empty()
            && self.pairs.is_empty()
            && self.domains.is_empty()
            && self.certificate_issuers.is_empty()
        {
            return Err(
                "at least one matcher is required: hosts, pairs, domains or certificateIssuers"
                    .into(),
            );
        }
        if self.alert_types.is_empty() {
            return Err("alertTypes needs at least one type (or `all`)".into());
        }
        if let Some(e) = &self.expires_at {
            self.expires_ns = Some(
                crate::alerts::time::parse_rfc3339(e)
                    .ok_or_else(|| format!("expiresAt {e:?} is not an RFC 3339 time"))?,
            );
        }
        Ok(())
    }

    fn flow_matches(&self, alert_type: &str, s: &FlowSubject<'_>, now_ns: u64) -> bool {
        if self.scope == Scope::Host || !self.live(now_ns) || !self.type_matches(alert_type) {
            return false;
        }
        self.hosts.iter().any(|h| match h.side {
            HostSide::Client => h.cidr.contains(s.client),
            HostSide::Server => h.cidr.contains(s.server),
            HostSide::Either => h.cidr.contains(s.client) || h.cidr.contains(s.server),
        }) || self
            .pairs
            .iter()
            .any(|p| p.client.contains(s.client) && p.server.contains(s.server))
            || (!s.domain.is_empty() && self.domains.iter().any(|d| domain_matches(d, s.domain)))
            || (!s.issuer.is_empty() && self.certificate_issuers.iter().any(|p| glob(p, s.issuer)))
    }

    fn host_matches(&self, alert_type: &str, host: IpAddr, now_ns: u64) -> bool {
        // Domain, certificate and pair matchers apply to flow alerts only (REFERENCE.md §6).
        self.scope != Scope::Flow
            && self.live(now_ns)
            && self.type_matches(alert_type)
            && self.hosts.iter().any(|h| h.cidr.contains(host))
    }
}

impl Exclusions {
    /// The name of the first exclusion that drops flow alert `alert_type` on `subject`.
    pub fn flow_excluded(
        &self,
        alert_type: &str,
        subject: &FlowSubject<'_>,
        now_ns: u64,
    ) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, r)| r.flow_matches(alert_type, subject, now_ns))
            .map(|(n, _)| n.as_str())
    }

    /// Whether host alert `alert_type` on `host` is excluded.
    pub fn host_excluded(&self, alert_type: &str, host: IpAddr, now_ns: u64) -> bool {
        self.rules
            .iter()
            .any(|(_, r)| r.host_matches(alert_type, host, now_ns))
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Why an exclusion file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Parses the `AlertExclusion` documents of one YAML text (other kinds are skipped).
pub fn parse_yaml(path: &str, text: &str) -> Result<Vec<(String, ExclusionSpec)>, LoadError> {
    let err = |message: String| LoadError {
        path: path.to_owned(),
        message,
    };
    let docs: Vec<Document> = serde_saphyr::from_multiple(text).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.kind != "AlertExclusion" {
            continue;
        }
        let name = doc
            .metadata
            .as_ref()
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map_or_else(|| format!("{path}#{i}"), str::to_owned);
        let mut spec: ExclusionSpec = serde_json::from_value(doc.spec.unwrap_or_default())
            .map_err(|e| err(format!("{name}: {e}")))?;
        spec.validate().map_err(|e| err(format!("{name}: {e}")))?;
        out.push((name, spec));
    }
    Ok(out)
}

/// The `*.yaml`/`*.yml` files of `dir`, in name order.
pub fn yaml_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, LoadError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| LoadError {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads the `AlertExclusion` documents of every `*.yaml`/`*.yml` file of `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Exclusions, LoadError> {
    let io = |e: std::io::Error| LoadError {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    let mut rules = Vec::new();
    for f in yaml_files(dir)? {
        let text = std::fs::read_to_string(&f).map_err(io)?;
        rules.extend(parse_yaml(&f.display().to_string(), &text)?);
    }
    Ok(Exclusions { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(c: &str, s: &str, domain: &'a str, issuer: &'a str) -> FlowSubject<'a> {
        FlowSubject {
            client: c.parse().unwrap(),
            server: s.parse().unwrap(),
            domain,
            issuer,
        }
    }

    const YAML: &str = r#"
apiVersion: netwarden.io/v1alpha1
kind: AlertExclusion
metadata: {name: lab-scanner, namespace: default}
spec:
  hosts: [{cidr: "10.9.0.0/16", side: client}]
  alertTypes: [syn_scan, tcp_no_data_exchanged]
  reason: the vulnerability scanner
---
kind: AlertExclusion
metadata: {name: backup-pair}
spec:
  pairs: [{client: 10.0.0.5, server: 192.168.1.10}]
  scope: flow
  alertTypes: [all]
---
kind: AlertExclusion
metadata: {name: internal-ca}
spec:
  certificateIssuers: ["*O=Example Internal CA*"]
  domains: ["*.corp.example"]
  alertTypes: [ndpi_tls_selfsigned_certificate]
  expiresAt: "1970-01-01T00:00:02Z"
---
kind: NotificationEndpoint
spec: {anything: goes}
"#;

    const S: u64 = 1_000_000_000;

    #[test]
    fn yaml_loads_and_matches_exactly() {
        let ex = Exclusions {
            rules: parse_yaml("x.yaml", YAML).unwrap(),
        };
        assert_eq!(ex.rules.len(), 3);
        let scan = subject("10.9.1.1", "8.8.8.8", "", "");
        assert_eq!(
            ex.flow_excluded("tcp_no_data_exchanged", &scan, 0),
            Some("lab-scanner")
        );
        assert_eq!(
            ex.flow_excluded("low_goodput", &scan, 0),
            None,
            "type not listed"
        );
        let reversed = subject("8.8.8.8", "10.9.1.1", "", "");
        assert_eq!(
            ex.flow_excluded("tcp_no_data_exchanged", &reversed, 0),
            None,
            "client side only"
        );
        assert!(ex.host_excluded("syn_scan", "10.9.3.3".parse().unwrap(), 0));
        assert!(!ex.host_excluded("syn_scan", "10.8.3.3".parse().unwrap(), 0));

        let pair = subject("10.0.0.5", "192.168.1.10", "", "");
        assert_eq!(ex.flow_excluded("anything", &pair, 0), Some("backup-pair"));
        assert_eq!(
            ex.flow_excluded("anything", &subject("192.168.1.10", "10.0.0.5", "", ""), 0),
            None
        );
        assert!(
            !ex.host_excluded("anything", "10.0.0.5".parse().unwrap(), 0),
            "flow scope"
        );

        let tls = subject(
            "10.0.0.1",
            "10.0.0.2",
            "git.other.example",
            "CN=x, O=Example Internal CA, C=US",
        );
        assert_eq!(
            ex.flow_excluded("tls_selfsigned_certificate", &tls, S),
            Some("internal-ca")
        );
        assert_eq!(
            ex.flow_excluded("tls_selfsigned_certificate", &tls, 3 * S),
            None,
            "expired"
        );
        let by_domain = subject("10.0.0.1", "10.0.0.2", "git.corp.example", "");
        assert_eq!(
            ex.flow_excluded("tls_selfsigned_certificate", &by_domain, 0),
            Some("internal-ca"),
            "any matcher"
        );
        let neither = subject("10.0.0.1", "10.0.0.2", "git.other.example", "O=Other");
        assert_eq!(
            ex.flow_excluded("tls_selfsigned_certificate", &neither, 0),
            None
        );
    }

    #[test]
    fn unknown_fields_and_empty_specs_are_refused() {
        let bad = "kind: AlertExclusion\nmetadata: {name: x}\nspec: {hosts: [{cidr: 10.0.0.1}], alertTypes: [all], colour: red}\n";
        let e = parse_yaml("bad.yaml", bad).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let empty = "kind: AlertExclusion\nspec: {alertTypes: [x]}\n";
        assert!(parse_yaml("e.yaml", empty).is_err());
        let no_types = "kind: AlertExclusion\nspec: {hosts: [{cidr: 10.0.0.1}]}\n";
        assert!(parse_yaml("t.yaml", no_types).is_err());
        assert!(
            parse_yaml(
                "c.yaml",
                "kind: AlertExclusion\nspec: {hosts: [{cidr: 10.0.0.0/99}], alertTypes: [all]}\n"
            )
            .is_err()
        );
        assert!(parse_yaml("d.yaml", "kind: AlertExclusion\nspec: {hosts: [{cidr: 10.0.0.1}], alertTypes: [all], expiresAt: tomorrow}\n").is_err());
    }

    #[test]
    fn load_dir_reads_yaml_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), YAML).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().rules.len(), 3);
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(!glob("a*c", "abbb"));
        assert!(domain_matches("*.example.com", "www.Example.com."));
        assert!(domain_matches("*.example.com", "example.com"));
        assert!(!domain_matches("*.example.com", "badexample.com"));
        assert!(domain_matches("exact.org", "exact.org"));
    }
}
