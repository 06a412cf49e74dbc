//! `ServicePolicy` enforcement and export.
//!
//! A policy lives in a namespace and speaks for the edges whose *server* is a Pod or Service of
//! that namespace (DESIGN: the CRD's selectors select pods of the policy's namespace). Rules are
//! tried in order, first match wins: the client selector (absent: any client, in the cluster or
//! not; present: Pods or Services of the namespace with matching labels), the server selector
//! (absent: any Pod or Service of the namespace), the ports (empty: any; else port and L4
//! protocol). When no rule matches, `defaultAction: deny` denies the edge once learning is over;
//! `allow` leaves it to learning (undecided after learning). Labels come from `nw-directory`
//! for the addresses seen on the edge.
//!
//! Export ([`export_yaml`]): the learned map as one `ServicePolicy` per server namespace, with
//! label selectors taken from the directory entries of the edge's last addresses (minus the
//! labels Kubernetes adds per revision), so that the operator and `api::crd` validation accept
//! it. What a `ServicePolicy` cannot express (a server outside the cluster, a client from
//! another namespace narrowed to itself, ICMP) is listed as YAML comments.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use netwarden_api::crd::{
    ConfigEntry, Protocol, ServicePolicySpec, ServiceRule, ServiceRuleAction, Validate,
    selector_matches,
};
use netwarden_api::directory::{Directory, DirectoryEntry, EndpointKind};
use netwarden_api::flow::proto;
use serde::Serialize;

use super::edge::{Edge, Node, Status};

/// One `ServicePolicy` in force.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// `namespace/name`.
    pub id: Arc<str>,
    /// Its namespace.
    pub namespace: String,
    /// The spec.
    pub spec: ServicePolicySpec,
    /// Its learning period, ns.
    pub learning_ns: u64,
}

/// What the policies say about an edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The policy (`namespace/name`).
    pub policy: Arc<str>,
    /// A rule matched with this action (`None`: no rule matched).
    pub rule: Option<ServiceRuleAction>,
    /// The `defaultAction` of the namespace (deny when any policy of it says deny).
    pub default_action: ServiceRuleAction,
    /// The learning period of the namespace, ns (the shortest of its policies).
    pub learning_ns: u64,
}

/// Compiles the `ServicePolicy` entries of a `nw-config` snapshot (keys
/// `ServicePolicy.<namespace>.<name>`), in key order.
pub fn compile(entries: &BTreeMap<String, ConfigEntry<ServicePolicySpec>>) -> Vec<CompiledPolicy> {
    entries
        .values()
        .map(|e| CompiledPolicy {
            id: format!("{}/{}", e.namespace.as_deref().unwrap_or(""), e.name).into(),
            namespace: e.namespace.clone().unwrap_or_default(),
            spec: e.spec.clone(),
            learning_ns: e
                .spec
                .learning_seconds()
                .unwrap_or(86_400)
                .saturating_mul(1_000_000_000),
        })
        .collect()
}

fn selectable(e: &DirectoryEntry, namespace: &str) -> bool {
    matches!(e.kind, EndpointKind::Pod | EndpointKind::Service)
        && e.namespace.as_deref() == Some(namespace)
}

fn protocol_matches(p: Protocol, l4: u8) -> bool {
    match p {
        Protocol::Tcp => l4 == proto::TCP,
        Protocol::Udp => l4 == proto::UDP,
        Protocol::Sctp => l4 == proto::SCTP,
    }
}

/// Whether `rule` of a policy in `namespace` matches the edge.
pub fn rule_matches(
    rule: &ServiceRule,
    namespace: &str,
    client: Option<&DirectoryEntry>,
    server: &DirectoryEntry,
    port: u16,
    l4: u8,
) -> bool {
    let client_ok = match &rule.client {
        None => true,
        Some(sel) => {
            client.is_some_and(|c| selectable(c, namespace) && selector_matches(sel, &c.labels))
        }
    };
    let server_ok = rule
        .server
        .as_ref()
        .is_none_or(|sel| selector_matches(sel, &server.labels));
    let port_ok = rule.ports.is_empty()
        || rule
            .ports
            .iter()
            .any(|p| p.port == port && protocol_matches(p.protocol, l4));
    client_ok && server_ok && port_ok
}

/// What `policies` say about the edge from `client` to `server` (directory entries of the
/// edge's addresses) on `port`/`l4`; `None` when no policy speaks for the server's namespace.
pub fn evaluate(
    policies: &[CompiledPolicy],
    client: Option<&DirectoryEntry>,
    server: Option<&DirectoryEntry>,
    port: u16,
    l4: u8,
) -> Option<Verdict> {
    let server = server?;
    let ns = server.namespace.as_deref()?;
    if !matches!(server.kind, EndpointKind::Pod | EndpointKind::Service) {
        return None;
    }
    let mut verdict: Option<Verdict> = None;
    for p in policies.iter().filter(|p| p.namespace == ns) {
        let v = verdict.get_or_insert_with(|| Verdict {
            policy: Arc::clone(&p.id),
            rule: None,
            default_action: ServiceRuleAction::Allow,
            learning_ns: p.learning_ns,
        });
        v.learning_ns = v.learning_ns.min(p.learning_ns);
        if p.spec.default_action == ServiceRuleAction::Deny {
            v.default_action = ServiceRuleAction::Deny;
            if v.rule.is_none() {
                v.policy = Arc::clone(&p.id);
            }
        }
        if v.rule.is_none()
            && let Some(rule) = p
                .spec
                .rules
                .iter()
                .find(|r| rule_matches(r, ns, client, server, port, l4))
        {
            v.rule = Some(rule.action);
            v.policy = Arc::clone(&p.id);
        }
    }
    verdict
}

/// Labels Kubernetes sets per revision or per pod: left out of exported selectors.
const VOLATILE_LABELS: [&str; 5] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

fn selector_of(e: &DirectoryEntry) -> Option<serde_json::Value> {
    let labels: BTreeMap<&str, &str> = e
        .labels
        .iter()
        .filter(|(k, _)| !VOLATILE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    (!labels.is_empty()).then(|| serde_json::json!({ "matchLabels": labels }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    namespace: String,
}

/// One exported `ServicePolicy` document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDoc {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    /// The spec.
    pub spec: ServicePolicySpec,
}

/// Builds the exported policies: one per server namespace, `defaultAction` as asked, allowed
/// edges as `allow` rules and denied edges as `deny` rules (deny first), ports merged per
/// (action, client, server); plus the notes on what could not be expressed.
pub fn export<'a>(
    edges: impl Iterator<Item = &'a Edge>,
    dir: &Directory,
    default_action: ServiceRuleAction,
    learning_period: &str,
) -> (Vec<PolicyDoc>, Vec<String>) {
    type RuleKey = (u8, String, String);
    type Rules = BTreeMap<RuleKey, (ServiceRule, BTreeSet<(u16, u8)>)>;
    let mut per_ns: BTreeMap<String, Rules> = BTreeMap::new();
    let mut notes = Vec::new();
    for e in edges {
        let action = match e.status {
            Status::Allowed => ServiceRuleAction::Allow,
            Status::Denied => ServiceRuleAction::Deny,
            Status::Undecided => continue,
        };
        let Some(ns) = e.server.namespace() else {
            notes.push(format!(
                "edge {} -> {}: the server is not in a namespace",
                e.client.id(),
                e.server.id()
            ));
            continue;
        };
        let protocol = match e.l4 {
            proto::TCP => Protocol::Tcp,
            proto::UDP => Protocol::Udp,
            proto::SCTP => Protocol::Sctp,
            other => {
                notes.push(format!(
                    "edge {} -> {}: L4 {} has no port to match",
                    e.client.id(),
                    e.server.id(),
                    proto::name(other)
                ));
                continue;
            }
        };
        let server_sel = dir
            .get(e.server_ip)
            .filter(|s| selectable(s, ns))
            .and_then(selector_of);
        let client_entry = dir.get(e.client_ip);
        let same_ns = matches!(&e.client, Node::Workload { namespace, .. } if &**namespace == ns);
        let client_sel = if same_ns {
            client_entry
                .filter(|c| selectable(c, ns))
                .and_then(selector_of)
        } else {
            None
        };
        if client_sel.is_none() && action == ServiceRuleAction::Allow {
            notes.push(format!(
                "edge {} -> {} {}/{}: the client cannot be selected from {ns}; the rule allows any client",
                e.client.id(),
                e.server.id(),
                proto::name(e.l4),
                e.port
            ));
        }
        let rule: ServiceRule = match serde_json::from_value(serde_json::json!({
            "action": action,
            "client": client_sel,
            "server": server_sel,
        })) {
            Ok(r) => r,
            Err(err) => {
                notes.push(format!("edge {}: {err}", super::edge::id_text(e.id)));
                continue;
            }
        };
        let key = (
            u8::from(action == ServiceRuleAction::Allow),
            serde_json::to_string(&rule.client).unwrap_or_default(),
            serde_json::to_string(&rule.server).unwrap_or_default(),
        );
        let entry = per_ns
            .entry(ns.to_owned())
            .or_default()
            .entry(key)
            .or_insert_with(|| (rule, BTreeSet::new()));
        entry.1.insert((e.port, protocol as u8));
    }
    let mut docs = Vec::new();
    for (ns, rules) in per_ns {
        let mut spec_rules = Vec::new();
        for (_, (mut rule, ports)) in rules {
            rule.ports = ports
                .into_iter()
                .take(64)
                .filter_map(|(port, p)| {
                    let protocol = match p {
                        0 => "TCP",
                        1 => "UDP",
                        _ => "SCTP",
                    };
                    serde_json::from_value(serde_json::json!({"port": port, "protocol": protocol}))
                        .ok()
                })
                .collect();
            // Only rules the CRD validation accepts (a label the directory holds could be odd).
            let one = ServicePolicySpec {
                rules: vec![rule.clone()],
                default_action,
                learning_period: learning_period.to_owned(),
            };
            let errors = one.validate();
            if errors.is_empty() {
                spec_rules.push(rule);
            } else {
                notes.push(format!("a rule of {ns} left out: {}", errors[0]));
            }
        }
        spec_rules.truncate(512);
        docs.push(PolicyDoc {
            api_version: "netwarden.io/v1alpha1",
            kind: "ServicePolicy",
            metadata: Metadata {
                name: "netwarden-learned".into(),
                namespace: ns,
            },
            spec: ServicePolicySpec {
                rules: spec_rules,
                default_action,
                learning_period: learning_period.to_owned(),
            },
        });
    }
    (docs, notes)
}

/// The export as multi-document YAML, notes as comments on top.
pub fn export_yaml(docs: &[PolicyDoc], notes: &[String]) -> String {
    let mut out = String::from("# ServicePolicy exported from the Netwarden service map\n");
    for n in notes.iter().take(1000) {
        // Names come from the network and the directory: one line each, no control characters.
        let clean: String = n
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = writeln!(out, "# note: {clean}");
    }
    for d in docs {
        out.push_str("---\n");
        match serde_saphyr::to_string(d) {
            Ok(y) => out.push_str(&y),
            Err(e) => {
                let _ = writeln!(
                    out,
                    "# could not write the policy of {}: {e}",
                    d.metadata.namespace
                );
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
