//! What this node should capture, from the `InterfacePolicy` entries of `nw-config`: pure
//! (the interface list, the node's labels and the BPF compiler come in as arguments).
//!
//! Rules, in `nw-config` key order:
//! * a policy whose `nodeSelector` does not match the node's labels is not for this node:
//!   no capture, no report (the operator counts reporters, not nodes);
//! * a BPF filter that libpcap does not compile fails the whole policy (`applied: false`
//!   with libpcap's message);
//! * `include` names without a wildcard that are not interfaces of the node are reported
//!   (`interface ens9 does not exist`); patterns select among the interfaces that exist, minus
//!   `exclude`, in name order, at most `maxInterfaces` (the others are named in the report);
//! * an interface already taken by an earlier policy with other settings stays with it (the
//!   later policy reports the conflict);
//! * flow listeners (`listeners`: UDP port, optional bind address; NetFlow v5/v9, IPFIX and
//!   sFlow are autodetected per datagram whatever `protocol` says) are opened for the policies
//!   that select this node; two policies asking for one address share the listener;
//! * `samplingRate` > 1 is not applied yet: the report says so (every packet is captured).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use netwarden_api::crd::{
    ConfigEntry, FlowProtocol, InterfacePolicySpec, StatusReport, selector_matches,
};

/// The node a sensor runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node name (the reporter in `nw-status`).
    pub name: String,
    /// The node's labels (for `nodeSelector`).
    pub labels: BTreeMap<String, String>,
}

/// How one interface is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Bytes captured per packet.
    pub snaplen: u32,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// BPF filter (compiled already).
    pub bpf_filter: Option<String>,
    /// The `nw-config` key of the policy that asked for it.
    pub policy: String,
}

impl CaptureSpec {
    fn same_settings(&self, other: &Self) -> bool {
        (self.snaplen, self.promiscuous, &self.bpf_filter)
            == (other.snaplen, other.promiscuous, &other.bpf_filter)
    }
}

/// A flow listener a policy asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The `nw-config` keys of the policies that asked for it (first one first).
    pub policies: Vec<String>,
    /// What the first policy said exporters send (informative: every listener autodetects).
    pub protocol: FlowProtocol,
}

/// The captures this node should run and a report per policy that targets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Interface → how to capture it.
    pub captures: BTreeMap<String, CaptureSpec>,
    /// UDP address → the flow listener to open there.
    pub listeners: BTreeMap<SocketAddr, ListenerSpec>,
    /// `nw-config` key → report (before capture failures are known: see
    /// [`Plan::capture_failed`]).
    pub reports: BTreeMap<String, StatusReport>,
}

fn literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?'])
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

/// Plans the captures of `node` from `policies`, among the interfaces `available`.
/// `compile` returns libpcap's message for a BPF filter that does not compile.
pub fn plan(
    policies: &BTreeMap<String, ConfigEntry<InterfacePolicySpec>>,
    node: &NodeInfo,
    available: &[&str],
    compile: &dyn Fn(&str) -> Result<(), String>,
) -> Plan {
    let mut out = Plan::default();
    for (key, entry) in policies {
        let spec = &entry.spec;
        if spec
            .node_selector
            .as_ref()
            .is_some_and(|s| !selector_matches(s, &node.labels))
        {
            continue;
        }
        let report = |applied: bool, message: String| StatusReport {
            generation: entry.generation,
            applied,
            message: Some(netwarden_api::bus::status::bounded(&message)),
        };
        if let Some(filter) = &spec.bpf_filter
            && let Err(e) = compile(filter)
        {
            out.reports.insert(
                key.clone(),
                report(false, format!("bpfFilter does not compile: {e}")),
            );
            continue;
        }
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut captured = Vec::new();
        if let Some(interfaces) = &spec.interfaces {
            let missing: Vec<&str> = interfaces
                .include
                .iter()
                .map(String::as_str)
                .filter(|p| literal(p) && !available.contains(p))
                .collect();
            for name in &missing {
                problems.push(format!("interface {name} does not exist"));
            }
            let all = InterfacePolicySpec {
                max_interfaces: u32::MAX,
                ..spec.clone()
            }
            .select_interfaces(available);
            let chosen = spec.select_interfaces(available);
            if all.len() > chosen.len() {
                notes.push(format!(
                    "maxInterfaces {} reached, not captured: {}",
                    spec.max_interfaces,
                    list(&all[chosen.len()..])
                ));
            }
            if chosen.is_empty() && missing.is_empty() {
                problems.push(format!(
                    "no interface of this node matches include [{}]",
                    interfaces.include.join(", ")
                ));
            }
            for name in chosen {
                let want = CaptureSpec {
                    snaplen: spec.snaplen,
                    promiscuous: spec.promiscuous,
                    bpf_filter: spec.bpf_filter.clone(),
                    policy: key.clone(),
                };
                match out.captures.get(name) {
                    Some(have) if !have.same_settings(&want) => problems.push(format!(
                        "{name} is already captured by {} with other settings",
                        have.policy
                    )),
                    Some(_) => captured.push(name),
                    None => {
                        out.captures.insert(name.to_owned(), want);
                        captured.push(name);
                    }
                }
            }
        }
        let mut listening = Vec::new();
        for l in &spec.listeners {
            // Validation guarantees an IP address; all addresses when absent.
            let ip = l
                .bind
                .as_deref()
                .and_then(|b| b.parse::<IpAddr>().ok())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let address = SocketAddr::new(ip, l.port);
            out.listeners
                .entry(address)
                .or_insert_with(|| ListenerSpec {
                    policies: Vec::new(),
                    protocol: l.protocol,
                })
                .policies
                .push(key.clone());
            let protocol = match l.protocol {
                FlowProtocol::Netflow => "netflow",
                FlowProtocol::Sflow => "sflow",
            };
            listening.push(format!("{address} ({protocol})"));
        }
        if spec.sampling_rate > 1 {
            notes.push(format!(
                "samplingRate {} is not supported yet: every packet is captured",
                spec.sampling_rate
            ));
        }
        let mut message = if captured.is_empty() {
            String::new()
        } else {
            format!("capturing {}", list(&captured))
        };
        if !listening.is_empty() {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str("listening on ");
            message.push_str(&listening.join(", "));
        }
        for part in problems.iter().chain(&notes) {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(part);
        }
        out.reports
            .insert(key.clone(), report(problems.is_empty(), message));
    }
    out
}

impl Plan {
    /// Marks the policies of the flow listener on `address` failed with `reason` (the port
    /// could not be bound).
    pub fn listener_failed(&mut self, address: SocketAddr, reason: &str) {
        let Some(spec) = self.listeners.get(&address) else {
            return;
        };
        for key in &spec.policies {
            if let Some(r) = self.reports.get_mut(key) {
                r.applied = false;
                let text = format!("{address}: {reason}");
                r.message = Some(netwarden_api::bus::status::bounded(&match &r.message {
                    Some(m) => format!("{m}; {text}"),
                    None => text,
                }));
            }
        }
    }

    /// Marks the policy of `interface` failed with `reason` (the capture could not open or
    /// stopped).
    pub fn capture_failed(&mut self, interface: &str, reason: &str) {
        let Some(spec) = self.captures.get(interface) else {
            return;
        };
        // Every policy that shares the interface with the same settings is affected.
        let affected: Vec<String> = self
            .reports
            .keys()
            .filter(|k| {
                **k == spec.policy
                    || self.reports[*k]
                        .message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("capturing ") && mentions(m, interface))
            })
            .cloned()
            .collect();
        for key in affected {
            if let Some(r) = self.reports.get_mut(&key) {
                r.applied = false;
                let text = format!("{interface}: {reason}");
                r.message = Some(netwarden_api::bus::status::bounded(&match &r.message {
                    Some(m) => format!("{m}; {text}"),
                    None => text,
                }));
            }
        }
    }
}

fn mentions(message: &str, interface: &str) -> bool {
    message
        .strip_prefix("capturing ")
        .and_then(|m| m.split(';').next())
        .is_some_and(|names| names.split(", ").any(|n| n == interface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::needless_pass_by_value)]
    fn entry(name: &str, spec: serde_json::Value) -> (String, ConfigEntry<InterfacePolicySpec>) {
        let doc = serde_json::json!({
            "apiVersion": "netwarden.io/v1alpha1", "kind": "InterfacePolicy",
            "metadata": {"name": name, "generation": 2}, "spec": spec,
        });
        let (key, json) = netwarden_api::crd::entry_from_manifest(&doc).unwrap();
        (key, serde_json::from_slice(&json).unwrap())
    }

    fn node(labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn compile(f: &str) -> Result<(), String> {
        if f.contains("bogus") {
            Err("syntax error".into())
        } else {
            Ok(())
        }
    }

    const IFACES: [&str; 5] = ["lo", "eth0", "eth1", "eth2", "veth9"];

    #[test]
    fn policies_select_interfaces_for_matching_nodes() {
        let policies = BTreeMap::from([
            entry(
                "a-workers",
                serde_json::json!({"nodeSelector": {"matchLabels": {"role": "worker"}},
                    "interfaces": {"include": ["eth*", "ens9"], "exclude": ["eth0"]},
                    "maxInterfaces": 1, "snaplen": 256, "bpfFilter": "tcp"}),
            ),
            entry(
                "b-gpu",
                serde_json::json!({"nodeSelector": {"matchLabels": {"gpu": "yes"}},
                    "interfaces": {"include": ["lo"]}}),
            ),
            entry(
                "c-bad",
                serde_json::json!({"interfaces": {"include": ["lo"]}, "bpfFilter": "bogus"}),
            ),
            entry(
                "d-conflict",
                serde_json::json!({"interfaces": {"include": ["eth1", "lo"]}, "snaplen": 9000}),
            ),
        ]);
        let p = plan(&policies, &node(&[("role", "worker")]), &IFACES, &compile);
        assert!(
            !p.reports.contains_key("InterfacePolicy._cluster.b-gpu"),
            "not this node"
        );
        let a = &p.reports["InterfacePolicy._cluster.a-workers"];
        assert_eq!(a.generation, 2);
        assert!(!a.applied, "ens9 is missing");
        assert_eq!(
            a.message.as_deref(),
            Some(
                "capturing eth1; interface ens9 does not exist; maxInterfaces 1 reached, not captured: eth2"
            )
        );
        let c = &p.reports["InterfacePolicy._cluster.c-bad"];
        assert_eq!(
            (c.applied, c.message.as_deref()),
            (false, Some("bpfFilter does not compile: syntax error"))
        );
        let d = &p.reports["InterfacePolicy._cluster.d-conflict"];
        assert!(!d.applied);
        assert!(
            d.message.as_deref().unwrap().contains(
                "eth1 is already captured by InterfacePolicy._cluster.a-workers with other settings"
            ),
            "{d:?}"
        );
        assert_eq!(p.captures.keys().collect::<Vec<_>>(), ["eth1", "lo"]);
        assert_eq!(p.captures["eth1"].snaplen, 256);
        assert_eq!(p.captures["lo"].snaplen, 9000);

        let mut p = p;
        p.capture_failed("lo", "permission denied");
        let d = &p.reports["InterfacePolicy._cluster.d-conflict"];
        assert!(
            d.message
                .as_deref()
                .unwrap()
                .ends_with("lo: permission denied")
        );
    }

    #[test]
    fn listeners_are_planned_and_sampling_reported() {
        let policies = BTreeMap::from([
            entry(
                "l",
                serde_json::json!({"listeners": [{"protocol": "netflow", "port": 2055}]}),
            ),
            entry(
                "l2",
                serde_json::json!({"listeners": [
                    {"protocol": "sflow", "port": 2055},
                    {"protocol": "sflow", "port": 6343, "bind": "127.0.0.1"},
                ]}),
            ),
            entry(
                "s",
                serde_json::json!({"interfaces": {"include": ["lo"]}, "samplingRate": 10}),
            ),
            entry(
                "none",
                serde_json::json!({"interfaces": {"include": ["wl*"]}}),
            ),
        ]);
        let p = plan(&policies, &node(&[]), &IFACES, &compile);
        let l = &p.reports["InterfacePolicy._cluster.l"];
        assert!(l.applied, "{l:?}");
        assert_eq!(
            l.message.as_deref(),
            Some("listening on 0.0.0.0:2055 (netflow)")
        );
        let all: SocketAddr = "0.0.0.0:2055".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:6343".parse().unwrap();
        assert_eq!(
            p.listeners.keys().copied().collect::<Vec<_>>(),
            [all, local]
        );
        // One address, one listener: the second policy shares the first one's.
        assert_eq!(
            p.listeners[&all].policies,
            ["InterfacePolicy._cluster.l", "InterfacePolicy._cluster.l2"]
        );
        assert_eq!(p.listeners[&all].protocol, FlowProtocol::Netflow);
        let mut failed = p.clone();
        failed.listener_failed(all, "Address already in use");
        for key in ["InterfacePolicy._cluster.l", "InterfacePolicy._cluster.l2"] {
            let r = &failed.reports[key];
            assert!(!r.applied);
            assert!(
                r.message
                    .as_deref()
                    .unwrap()
                    .ends_with("0.0.0.0:2055: Address already in use")
            );
        }
        let s = &p.reports["InterfacePolicy._cluster.s"];
        assert!(s.applied && s.message.as_deref().unwrap().contains("samplingRate 10"));
        let none = &p.reports["InterfacePolicy._cluster.none"];
        assert_eq!(
            none.message.as_deref(),
            Some("no interface of this node matches include [wl*]")
        );
    }
}
