//! Where the sensor learns about its node: the name (`--node` / `$NODE_NAME`, the downward
//! API's `spec.nodeName`), its labels (for `nodeSelector`) and its interfaces.
//!
//! Node labels are not available through the downward API, so they come from a flag
//! (`--node-labels k=v,k2=v2` / `$NODE_LABELS`) or a file (`--node-labels-file`), one
//! `key=value` per line — the format of a downward-API labels file (`key="value"`), which an
//! init container or a node-feature tool can write; it is read again on every re-plan, so
//! relabelling a node takes effect without a restart. Bounded: [`MAX_LABELS`] labels, lines
//! of at most [`MAX_LINE`] bytes; anything else is skipped with a warning.

use std::collections::BTreeMap;
use std::path::Path;

/// Labels kept at most.
pub const MAX_LABELS: usize = 256;
/// Longest label line (a Kubernetes key is at most 317 bytes, a value 63).
pub const MAX_LINE: usize = 512;

/// Parses `key=value` pairs separated by `,` or newlines; values may be double-quoted;
/// blank lines and `#` comments are skipped. Errors name the bad item.
pub fn parse_labels(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut labels = BTreeMap::new();
    let mut problems = Vec::new();
    for item in text.split([',', '\n']).map(str::trim) {
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        if item.len() > MAX_LINE {
            problems.push(format!("a label of {} bytes", item.len()));
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            problems.push(format!("{item:?} is not key=value"));
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if let Err(e) = netwarden_api::crd::validate::check_label_key(k) {
            problems.push(e);
            continue;
        }
        if labels.len() >= MAX_LABELS {
            problems.push(format!("more than {MAX_LABELS} labels"));
            break;
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    (labels, problems)
}

/// The node's labels: those of `file` (when given and readable) over those of `inline`.
pub fn labels(inline: Option<&str>, file: Option<&Path>) -> BTreeMap<String, String> {
    let (mut labels, problems) = parse_labels(inline.unwrap_or_default());
    for p in problems {
        tracing::warn!(problem = %p, "ignoring a node label");
    }
    if let Some(path) = file {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() <= MAX_LABELS * MAX_LINE => {
                let (from_file, problems) = parse_labels(&String::from_utf8_lossy(&bytes));
                for p in problems {
                    tracing::warn!(file = %path.display(), problem = %p, "ignoring a node label");
                }
                labels.extend(from_file);
            }
            Ok(bytes) => {
                tracing::warn!(file = %path.display(), bytes = bytes.len(), "node labels file too large; ignored");
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the node labels file");
            }
        }
    }
    labels
}

/// The node's network interfaces: `/sys/class/net` on Linux, else libpcap's device list
/// (which also lists pseudo-devices such as `any`).
pub fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir("/sys/class/net") {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(_) => pcap::Device::list()
            .map(|l| l.into_iter().map(|d| d.name).collect())
            .unwrap_or_default(),
    };
    names.retain(|n| !n.is_empty() && n.len() <= 64);
    names.sort();
    names.truncate(4096);
    names
}

/// libpcap's verdict on a BPF filter (compiled for Ethernet, without opening an interface).
pub fn compile_filter(filter: &str) -> Result<(), String> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| e.to_string())?;
    dead.compile(filter, true).map(|_| ()).map_err(|e| match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_like_a_downward_api_file() {
        let (l, problems) = parse_labels(
            "# node labels\nkubernetes.io/hostname=\"node-a\"\nrole=worker, zone = b\nnot a label\n",
        );
        assert_eq!(l["kubernetes.io/hostname"], "node-a");
        assert_eq!((l["role"].as_str(), l["zone"].as_str()), ("worker", "b"));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn libpcap_judges_filters() {
        assert!(compile_filter("udp port 53 and host 10.0.0.1").is_ok());
        let e = compile_filter("udp port notaport").unwrap_err();
        assert!(e.contains("notaport"), "{e}");
        assert!(compile_filter("tcp and (").is_err());
    }

    #[test]
    fn loopback_is_listed() {
        assert!(interfaces().iter().any(|i| i == "lo"));
    }
}
