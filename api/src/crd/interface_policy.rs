//! `InterfacePolicy` (cluster-scoped): what the sensors on the selected nodes capture and
//! which flow-export listeners they open. The sensor compiles the BPF filter and reports a
//! filter that does not compile, or an interface that does not exist, to `nw-status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ConfigStatus;
use super::validate::{FieldError, Validate, check_interface_pattern, check_label_selector};

/// Capture and collection settings for the sensors of the selected nodes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "netwarden.io",
    version = "v1alpha1",
    kind = "InterfacePolicy",
    doc = "What the Netwarden sensors of the selected nodes capture and collect",
    status = "ConfigStatus",
    shortname = "nwip",
    category = "netwarden",
    printcolumn = r#"{"name":"Snaplen","type":"integer","jsonPath":".spec.snaplen"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.appliedNodes"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.interfaces) || (has(self.listeners) && size(self.listeners) > 0)").message("capture interfaces or flow listeners (or both) are required"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterfacePolicySpec {
    /// Nodes this policy applies to (absent: every node running a sensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Interfaces to capture on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Interfaces>,
    /// BPF filter (tcpdump syntax) applied to every capture. The sensor compiles it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub bpf_filter: Option<String>,
    /// Bytes captured per packet.
    #[serde(default = "default_snaplen")]
    #[x_kube(validation = Rule::new("self >= 64 && self <= 262144").message("must be between 64 and 262144 bytes"))]
    pub snaplen: u32,
    /// Puts the interfaces in promiscuous mode.
    #[serde(default)]
    pub promiscuous: bool,
    /// A sensor captures at most this many interfaces (the first matches in name order).
    #[serde(default = "default_max_interfaces")]
    #[x_kube(validation = Rule::new("self > 0").message("must be positive"))]
    pub max_interfaces: u32,
    /// NetFlow / IPFIX / sFlow listeners the sensor opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub listeners: Vec<FlowListener>,
    /// Capture 1 packet in N (1: every packet).
    #[serde(default = "default_sampling")]
    #[x_kube(validation = Rule::new("self > 0").message("must be positive (1 captures every packet)"))]
    pub sampling_rate: u32,
}

fn default_snaplen() -> u32 {
    1600
}
fn default_max_interfaces() -> u32 {
    8
}
fn default_sampling() -> u32 {
    1
}

/// Interface names and glob patterns (`*`, `?`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("size(self.include) > 0").message("list at least one interface name or pattern to include"))]
pub struct Interfaces {
    /// Names or patterns to capture (e.g. `eth0`, `ens*`).
    #[schemars(length(max = 64), inner(length(min = 1, max = 15)))]
    pub include: Vec<String>,
    /// Names or patterns never captured, even when included (e.g. `lo`, `veth*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 15)))]
    pub exclude: Vec<String>,
}

/// A flow-export listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowListener {
    /// What the exporters send.
    pub protocol: FlowProtocol,
    /// UDP port on the node.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("must be a port number 1-65535"))]
    pub port: u16,
    /// Address to bind (default: all addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub bind: Option<String>,
}

/// Flow-export protocols.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FlowProtocol {
    /// NetFlow v5, v9 and IPFIX (autodetected per datagram).
    Netflow,
    /// sFlow v5.
    Sflow,
}

impl Validate for InterfacePolicySpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.interfaces.is_none() && self.listeners.is_empty() {
            errors.push(FieldError::new(
                "spec",
                "capture interfaces or flow listeners (or both) are required",
            ));
        }
        if let Some(selector) = &self.node_selector {
            errors.extend(check_label_selector("spec.nodeSelector", selector));
        }
        if let Some(interfaces) = &self.interfaces {
            if interfaces.include.is_empty() {
                errors.push(FieldError::new(
                    "spec.interfaces.include",
                    "list at least one interface name or pattern",
                ));
            }
            for (list, values) in [
                ("include", &interfaces.include),
                ("exclude", &interfaces.exclude),
            ] {
                for (i, p) in values.iter().enumerate() {
                    if let Err(e) = check_interface_pattern(p) {
                        errors.push(FieldError::new(format!("spec.interfaces.{list}[{i}]"), e));
                    }
                }
            }
        }
        if let Some(filter) = &self.bpf_filter {
            errors.extend(
                check_bpf_syntax(filter)
                    .err()
                    .map(|e| FieldError::new("spec.bpfFilter", e)),
            );
        }
        if !(64..=262_144).contains(&self.snaplen) {
            errors.push(FieldError::new(
                "spec.snaplen",
                "must be between 64 and 262144 bytes",
            ));
        }
        if self.max_interfaces == 0 {
            errors.push(FieldError::new("spec.maxInterfaces", "must be positive"));
        }
        if self.sampling_rate == 0 {
            errors.push(FieldError::new(
                "spec.samplingRate",
                "must be positive (1 captures every packet)",
            ));
        }
        let mut ports = std::collections::BTreeSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            if l.port == 0 {
                errors.push(FieldError::new(
                    format!("spec.listeners[{i}].port"),
                    "must be a port number 1-65535",
                ));
            } else if !ports.insert(l.port) {
                errors.push(FieldError::new(
                    format!("spec.listeners[{i}].port"),
                    format!("port {} is used twice", l.port),
                ));
            }
            if let Some(bind) = &l.bind
                && bind.parse::<std::net::IpAddr>().is_err()
            {
                errors.push(FieldError::new(
                    format!("spec.listeners[{i}].bind"),
                    format!("{bind:?} is not an IP address"),
                ));
            }
        }
        errors
    }
}

/// The syntax the operator can check without libpcap: balanced parentheses, no control
/// characters, not blank. Compiling the filter is the sensor's job (it reports failures).
pub fn check_bpf_syntax(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("is blank; omit bpfFilter to capture everything".into());
    }
    if filter.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    let mut depth = 0i32;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("has a ')' without its '('".into());
                }
            }
            _ => {}
        }
    }
    if depth == 0 {
        Ok(())
    } else {
        Err("has a '(' without its ')'".into())
    }
}

impl InterfacePolicySpec {
    /// Of `available` interface names (any order), those this policy captures: included,
    /// not excluded, sorted by name, at most `maxInterfaces`.
    pub fn select_interfaces<'a>(&self, available: &[&'a str]) -> Vec<&'a str> {
        use super::validate::glob_matches;
        let Some(interfaces) = &self.interfaces else {
            return Vec::new();
        };
        let mut chosen: Vec<&str> = available
            .iter()
            .copied()
            .filter(|name| interfaces.include.iter().any(|p| glob_matches(p, name)))
            .filter(|name| !interfaces.exclude.iter().any(|p| glob_matches(p, name)))
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        chosen.truncate(self.max_interfaces as usize);
        chosen
    }
}
