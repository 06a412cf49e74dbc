//! `AlertExclusion` entries of `nw-config` → the engine's [`Exclusions`], with one status
//! report per entry. Pure: the clock and the directory come in as arguments.
//!
//! What is applied and how it is reported:
//! * every valid entry becomes one rule named `<namespace>/<name>` (the first rule that matches
//!   names the exclusion in logs and counters);
//! * `podSelector` is resolved through the cluster directory (`nw-directory`): the addresses
//!   of the Pods of the entry's namespace whose labels match become host matchers (either side).
//!   Without a directory, or when no Pod matches, the selector matches nothing and the report
//!   says so (`applied: false` when it was the only matcher);
//! * `expiresAt` is compared with flow time by the rule itself (a replayed capture keeps its
//!   own time); the report turns `applied: false, "expired at …"` once the wall clock passes
//!   it, and [`Compiled::next_expiry_ns`] tells the follower when to report again.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netwarden_api::crd::{
    AlertExclusionSpec, ConfigEntry, ExclusionScope, HostSide as CrdSide, StatusReport,
    selector_matches,
};

use crate::checks::Cidr;
use crate::exclusions::{ExclusionSpec, Exclusions, HostMatcher, HostSide, Pair, Scope};

/// Most Pod addresses one `podSelector` expands to (a selector matching a huge workload still
/// applies, to the first addresses in order; the report says it was cut).
pub const MAX_SELECTED_PODS: usize = 4096;

/// Pods by namespace, for `podSelector`: what the engine knows from `nw-directory`.
pub trait PodLookup {
    /// Addresses of the Pods of `namespace` whose labels satisfy `matches`, sorted.
    fn pods(
        &self,
        namespace: &str,
        matches: &dyn Fn(&BTreeMap<String, String>) -> bool,
    ) -> Vec<IpAddr>;
}

/// No directory: selectors match nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

impl PodLookup for NoDirectory {
    fn pods(&self, _: &str, _: &dyn Fn(&BTreeMap<String, String>) -> bool) -> Vec<IpAddr> {
        Vec::new()
    }
}

/// The exclusions to swap in, and what to report.
#[derive(Debug, Default)]
pub struct Compiled {
    /// The rules, in `nw-config` key order.
    pub exclusions: Exclusions,
    /// One report per entry, by `nw-config` key (generation echoed).
    pub reports: BTreeMap<String, StatusReport>,
    /// The earliest `expiresAt` still ahead of `now_ns` (wall clock, ns), if any.
    pub next_expiry_ns: Option<u64>,
}

fn side(s: CrdSide) -> HostSide {
    match s {
        CrdSide::Client => HostSide::Client,
        CrdSide::Server => HostSide::Server,
        CrdSide::Either => HostSide::Either,
    }
}

fn cidr(text: &str) -> Result<Cidr, String> {
    text.parse::<Cidr>().map_err(|e| e.to_string())
}

/// `spec` as an engine rule; the second value lists what did not apply (for the report).
fn convert(
    namespace: &str,
    spec: &AlertExclusionSpec,
    pods: &dyn PodLookup,
) -> Result<(ExclusionSpec, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut hosts = spec
        .hosts
        .iter()
        .map(|h| {
            Ok(HostMatcher {
                cidr: cidr(&h.cidr)?,
                side: side(h.side),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let pairs = spec
        .pairs
        .iter()
        .map(|p| {
            Ok(Pair {
                client: cidr(&p.client)?,
                server: cidr(&p.server)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if let Some(selector) = &spec.pod_selector {
        let mut ips = pods.pods(namespace, &|labels| selector_matches(selector, labels));
        if ips.is_empty() {
            notes.push(format!(
                "podSelector matches no Pod of namespace {namespace} in the directory"
            ));
        } else if ips.len() > MAX_SELECTED_PODS {
            notes.push(format!(
                "podSelector matches {} Pods; the first {MAX_SELECTED_PODS} addresses apply",
                ips.len()
            ));
            ips.truncate(MAX_SELECTED_PODS);
        }
        hosts.extend(ips.into_iter().map(|ip| HostMatcher {
            cidr: Cidr {
                addr: ip,
                prefix: if ip.is_ipv4() { 32 } else { 128 },
            },
            side: HostSide::Either,
        }));
    }
    let expires_at = spec
        .expires_at
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    let mut rule = ExclusionSpec {
        hosts,
        pairs,
        domains: spec.domains.clone(),
        certificate_issuers: spec.certificate_issuers.clone(),
        scope: match spec.scope {
            ExclusionScope::Flow => Scope::Flow,
            ExclusionScope::Host => Scope::Host,
            ExclusionScope::Both => Scope::Both,
        },
        alert_types: spec.alert_types.clone(),
        expires_at,
        reason: spec.reason.clone(),
        expires_ns: None,
    };
    rule.validate().map_err(|e| {
        if notes.is_empty() {
            e
        } else {
            notes.join("; ")
        }
    })?;
    Ok((rule, notes))
}

/// Compiles every entry at wall-clock time `now_ns`.
pub fn compile(
    entries: &BTreeMap<String, ConfigEntry<AlertExclusionSpec>>,
    pods: &dyn PodLookup,
    now_ns: u64,
) -> Compiled {
    let mut out = Compiled::default();
    for (key, entry) in entries {
        let namespace = entry.namespace.as_deref().unwrap_or("default");
        let report = match convert(namespace, &entry.spec, pods) {
            Ok((rule, notes)) => {
                let expired = rule.expires_ns.filter(|e| *e <= now_ns);
                if let Some(e) = rule.expires_ns.filter(|e| *e > now_ns) {
                    out.next_expiry_ns = Some(out.next_expiry_ns.map_or(e, |n| n.min(e)));
                }
                let report = match (expired, &rule.expires_at) {
                    (Some(_), Some(at)) => StatusReport {
                        generation: entry.generation,
                        applied: false,
                        message: Some(format!("expired at {at}: excludes nothing any more")),
                    },
                    _ => StatusReport {
                        generation: entry.generation,
                        applied: true,
                        message: (!notes.is_empty()).then(|| notes.join("; ")),
                    },
                };
                out.exclusions
                    .rules
                    .push((format!("{namespace}/{}", entry.name), rule));
                report
            }
            Err(reason) => StatusReport {
                generation: entry.generation,
                applied: false,
                message: Some(netwarden_api::bus::status::bounded(&reason)),
            },
        };
        out.reports.insert(key.clone(), report);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[allow(clippy::needless_pass_by_value)]
    fn entry(name: &str, spec: serde_json::Value) -> (String, ConfigEntry<AlertExclusionSpec>) {
        let doc = serde_json::json!({
            "apiVersion": "netwarden.io/v1alpha1", "kind": "AlertExclusion",
            "metadata": {"name": name, "namespace": "shop", "generation": 3}, "spec": spec,
        });
        let (key, json) = netwarden_api::crd::entry_from_manifest(&doc).unwrap();
        (key, serde_json::from_slice(&json).unwrap())
    }

    struct Pods(Vec<(&'static str, &'static str, BTreeMap<String, String>)>);

    impl PodLookup for Pods {
        fn pods(
            &self,
            namespace: &str,
            matches: &dyn Fn(&BTreeMap<String, String>) -> bool,
        ) -> Vec<IpAddr> {
            self.0
                .iter()
                .filter(|(ns, _, l)| *ns == namespace && matches(l))
                .map(|(_, ip, _)| ip.parse().unwrap())
                .collect()
        }
    }

    #[test]
    fn entries_become_rules_with_reports() {
        let entries = BTreeMap::from([
            entry(
                "scanner",
                serde_json::json!({"hosts": [{"cidr": "10.9.0.0/16", "side": "client"}],
                    "alertTypes": ["syn_scan"], "expiresAt": "1970-01-01T00:00:10Z"}),
            ),
            entry(
                "web",
                serde_json::json!({"podSelector": {"matchLabels": {"app": "web"}},
                    "alertTypes": ["all"]}),
            ),
        ]);
        let pods = Pods(vec![
            (
                "shop",
                "10.244.0.7",
                BTreeMap::from([("app".into(), "web".into())]),
            ),
            (
                "other",
                "10.244.0.8",
                BTreeMap::from([("app".into(), "web".into())]),
            ),
            (
                "shop",
                "10.244.0.9",
                BTreeMap::from([("app".into(), "db".into())]),
            ),
        ]);
        let c = compile(&entries, &pods, 5 * S);
        assert_eq!(c.exclusions.rules.len(), 2);
        assert_eq!(c.next_expiry_ns, Some(10 * S));
        assert!(c.reports.values().all(|r| r.applied && r.generation == 3));
        assert!(
            c.exclusions
                .host_excluded("anything", "10.244.0.7".parse().unwrap(), 0)
        );
        assert!(
            !c.exclusions
                .host_excluded("anything", "10.244.0.8".parse().unwrap(), 0)
        );
        assert!(
            !c.exclusions
                .host_excluded("anything", "10.244.0.9".parse().unwrap(), 0)
        );

        // No directory: the selector-only exclusion cannot apply, and says why.
        let c = compile(&entries, &NoDirectory, 11 * S);
        let web = &c.reports["AlertExclusion.shop.web"];
        assert!(!web.applied);
        assert!(
            web.message
                .as_deref()
                .unwrap()
                .contains("podSelector matches no Pod")
        );
        let scanner = &c.reports["AlertExclusion.shop.scanner"];
        assert!(!scanner.applied, "expired by the wall clock");
        assert!(
            scanner
                .message
                .as_deref()
                .unwrap()
                .starts_with("expired at 1970-01-01T00:00:10Z")
        );
        assert_eq!(c.next_expiry_ns, None);
    }
}
