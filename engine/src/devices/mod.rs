//! Device types of local hosts: what each device is (phone, printer, TV, Kubernetes pod…), with
//! the evidence behind the guess and a confidence, and the "device protocol not allowed" check
//! that uses it (REFERENCE.md §1a, §5 "Device types"; docs/devices.md).
//!
//! The way of the data: [`table::DeviceTable::observe`] reads each flow record's facts about its
//! local endpoints (Ethernet address and its maker, DHCP fingerprint, vendor class and host name,
//! mDNS service types, HTTP user agent and server, NetBIOS name, the services a host answers)
//! into bounded per-address and per-MAC evidence lists ([`rules`] turns a fact into evidence,
//! purely); [`classify`] weighs the evidence into a type and a confidence; the directory
//! (`nw-directory`) and a manual override decide outright. [`policy`] is the per-type default
//! policy of the check, [`api`] the REST routes, [`report`] the standalone report's section.
//!
//! Must not: keep untrusted strings unbounded or unescaped (every detail goes through
//! [`bounded_text`]), grow without bound (tables are [`crate::bounded::BoundedMap`]s, evidence
//! lists hold at most [`MAX_EVIDENCE`] items), or learn anything about remote addresses.

pub mod api;
pub mod oui;
pub mod persist;
pub mod policy;
pub mod report;
pub mod rules;
pub mod table;

use serde::{Deserialize, Serialize};

pub use table::{DeviceConfig, DeviceTable, DeviceView};

/// Most evidence items kept per address or per Ethernet address.
pub const MAX_EVIDENCE: usize = 16;
/// Longest evidence detail, in bytes (cut at a character boundary).
pub const MAX_DETAIL: usize = 96;

/// What a device is. The first thirteen are ntopng's (`include/ntop_typedefs.h`, with `video`
/// folded into `multimedia`), plus a plain `server` and the Kubernetes kinds, which only the
/// directory (or an operator) sets.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// Nothing known.
    Unknown,
    /// Desktop computer.
    Workstation,
    /// Laptop.
    Laptop,
    /// Tablet.
    Tablet,
    /// Phone.
    Phone,
    /// Television.
    Tv,
    /// Printer or scanner.
    Printer,
    /// Router, switch, firewall, DHCP/DNS appliance.
    Networking,
    /// Wireless access point.
    Wifi,
    /// Network-attached storage.
    Nas,
    /// Media player, speaker, game console, streaming stick.
    Multimedia,
    /// Sensor, plug, camera, smart-home device.
    Iot,
    /// Server (including virtual machines).
    Server,
    /// A Kubernetes Pod's address.
    KubernetesPod,
    /// A Kubernetes Node's address.
    KubernetesNode,
    /// A Kubernetes Service's cluster address.
    KubernetesService,
}

impl DeviceType {
    /// Every type, in the order reports list them.
    pub const ALL: [Self; 16] = [
        Self::Unknown,
        Self::Workstation,
        Self::Laptop,
        Self::Tablet,
        Self::Phone,
        Self::Tv,
        Self::Printer,
        Self::Networking,
        Self::Wifi,
        Self::Nas,
        Self::Multimedia,
        Self::Iot,
        Self::Server,
        Self::KubernetesPod,
        Self::KubernetesNode,
        Self::KubernetesService,
    ];

    /// The type as written in JSON and query parameters (`kubernetes_pod`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Workstation => "workstation",
            Self::Laptop => "laptop",
            Self::Tablet => "tablet",
            Self::Phone => "phone",
            Self::Tv => "tv",
            Self::Printer => "printer",
            Self::Networking => "networking",
            Self::Wifi => "wifi",
            Self::Nas => "nas",
            Self::Multimedia => "multimedia",
            Self::Iot => "iot",
            Self::Server => "server",
            Self::KubernetesPod => "kubernetes_pod",
            Self::KubernetesNode => "kubernetes_node",
            Self::KubernetesService => "kubernetes_service",
        }
    }

    /// Parses [`Self::as_str`]; also accepts spaces or dashes for underscores and any case
    /// (`Kubernetes pod`).
    pub fn parse(s: &str) -> Option<Self> {
        let norm: String = s
            .trim()
            .chars()
            .take(32)
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        Self::ALL.into_iter().find(|t| t.as_str() == norm)
    }

    /// Whether the type names a Kubernetes endpoint.
    pub const fn is_kubernetes(self) -> bool {
        matches!(
            self,
            Self::KubernetesPod | Self::KubernetesNode | Self::KubernetesService
        )
    }
}

impl std::fmt::Display for DeviceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a piece of evidence came from.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Set through the API (decides).
    Manual,
    /// The cluster directory (decides).
    Directory,
    /// The maker of the Ethernet address (IEEE OUI).
    MacVendor,
    /// An Ethernet address of a hypervisor's range.
    VirtualMac,
    /// A locally administered (randomised, "private") Ethernet address.
    RandomMac,
    /// DHCP option 55, the parameter request list.
    DhcpFingerprint,
    /// DHCP option 60, the vendor class.
    DhcpVendorClass,
    /// DHCP option 12, the host name.
    DhcpHostname,
    /// DNS-SD service types announced over mDNS.
    Mdns,
    /// HTTP `User-Agent` sent by the host.
    HttpUserAgent,
    /// HTTP `Server` answered by the host.
    HttpServer,
    /// NetBIOS datagram source name.
    Netbios,
    /// What the host does on the network (answers DHCP/DNS/NTP, routes for others).
    Behaviour,
}

impl Source {
    /// The source as written in JSON (`dhcp_hostname`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Directory => "directory",
            Self::MacVendor => "mac_vendor",
            Self::VirtualMac => "virtual_mac",
            Self::RandomMac => "random_mac",
            Self::DhcpFingerprint => "dhcp_fingerprint",
            Self::DhcpVendorClass => "dhcp_vendor_class",
            Self::DhcpHostname => "dhcp_hostname",
            Self::Mdns => "mdns",
            Self::HttpUserAgent => "http_user_agent",
            Self::HttpServer => "http_server",
            Self::Netbios => "netbios",
            Self::Behaviour => "behaviour",
        }
    }
}

/// One fact pointing at a type. `device_type` [`DeviceType::Unknown`] marks a fact shown for
/// context (a maker that makes everything) that votes for nothing.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// Where it came from.
    pub source: Source,
    /// The type it points at.
    pub device_type: DeviceType,
    /// How strongly, in [0, 1].
    pub weight: f32,
    /// What was seen, bounded and printable.
    pub detail: String,
}

impl Evidence {
    /// Evidence with a bounded `detail` and a weight clamped to [0, 1] (NaN counts as 0).
    pub fn new(source: Source, device_type: DeviceType, weight: f32, detail: &str) -> Self {
        let weight = if weight.is_nan() {
            0.0
        } else {
            weight.clamp(0.0, 1.0)
        };
        Self {
            source,
            device_type,
            weight,
            detail: bounded_text(detail, MAX_DETAIL),
        }
    }
}

/// `s` with control characters replaced by `?`, cut to at most `max` bytes at a character
/// boundary: safe to log, show and serialise.
pub fn bounded_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Adds `e` to `list` unless the same (source, type, detail) is there; a full list keeps the
/// heaviest items.
pub fn add_evidence(list: &mut Vec<Evidence>, e: Evidence) -> bool {
    if list
        .iter()
        .any(|x| x.source == e.source && x.device_type == e.device_type && x.detail == e.detail)
    {
        return false;
    }
    if list.len() < MAX_EVIDENCE {
        list.push(e);
        return true;
    }
    let lightest = list
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
        .map(|(i, x)| (i, x.weight));
    match lightest {
        Some((i, w)) if w < e.weight => {
            list[i] = e;
            true
        }
        _ => false,
    }
}

/// A type and how sure we are of it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The type.
    pub device_type: DeviceType,
    /// Confidence in [0, 1].
    pub confidence: f32,
}

/// Weighs `evidence` into a type (docs/devices.md "How the guess is made"):
///
/// * a manual override, else a directory entry, decides with confidence 1;
/// * otherwise, per type, the strongest item of each source counts once (each distinct
///   behaviour counts on its own), and they combine as independent witnesses (`1 − Π(1 − w)`); the type with the highest support wins (ties go to
///   the type listed first in [`DeviceType::ALL`]);
/// * the confidence is the winner's support discounted by the runner-up's:
///   `p₁² / (p₁ + p₂)`, so agreeing sources raise it and contradicting ones lower it.
///
/// Nothing pointing anywhere gives `unknown` with confidence 0. Pure; never panics.
pub fn classify(evidence: &[Evidence]) -> Verdict {
    for decisive in [Source::Manual, Source::Directory] {
        if let Some(e) = evidence
            .iter()
            .find(|e| e.source == decisive && e.device_type != DeviceType::Unknown)
        {
            return Verdict {
                device_type: e.device_type,
                confidence: 1.0,
            };
        }
    }
    let mut support = [0f32; DeviceType::ALL.len()];
    for (ti, t) in DeviceType::ALL.iter().enumerate().skip(1) {
        // One witness per source; each distinct behaviour (answers DHCP, answers DNS, routes)
        // is a witness of its own.
        let mut best: Vec<(Source, &str, f32)> = Vec::new();
        for e in evidence.iter().filter(|e| e.device_type == *t) {
            let w = if e.weight.is_nan() {
                0.0
            } else {
                e.weight.clamp(0.0, 1.0)
            };
            let key = if e.source == Source::Behaviour {
                e.detail.as_str()
            } else {
                ""
            };
            match best
                .iter_mut()
                .find(|(s, k, _)| *s == e.source && *k == key)
            {
                Some((_, _, b)) => *b = b.max(w),
                None => best.push((e.source, key, w)),
            }
        }
        let miss: f32 = best.iter().map(|(_, _, w)| 1.0 - w).product();
        support[ti] = (1.0 - miss).clamp(0.0, 1.0);
    }
    let mut order: Vec<usize> = (1..support.len()).collect();
    order.sort_by(|&a, &b| support[b].total_cmp(&support[a]).then(a.cmp(&b)));
    let (p1, p2) = (support[order[0]], support[order[1]]);
    if p1 <= 0.0 {
        return Verdict {
            device_type: DeviceType::Unknown,
            confidence: 0.0,
        };
    }
    Verdict {
        device_type: DeviceType::ALL[order[0]],
        confidence: (p1 * p1 / (p1 + p2)).clamp(0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DeviceType::ALL {
            assert_eq!(DeviceType::parse(t.as_str()), Some(t));
        }
        assert_eq!(
            DeviceType::parse("Kubernetes pod"),
            Some(DeviceType::KubernetesPod)
        );
        assert_eq!(DeviceType::parse("toaster"), None);
    }

    #[test]
    fn agreeing_sources_beat_a_contradiction() {
        let ev = [
            Evidence::new(
                Source::DhcpHostname,
                DeviceType::Workstation,
                0.7,
                "Lucas-iMac",
            ),
            Evidence::new(Source::Mdns, DeviceType::Workstation, 0.3, "_ssh._tcp"),
            Evidence::new(Source::Mdns, DeviceType::Workstation, 0.3, "_sftp-ssh._tcp"),
            Evidence::new(Source::Mdns, DeviceType::Nas, 0.3, "_smb._tcp"),
        ];
        let v = classify(&ev);
        assert_eq!(v.device_type, DeviceType::Workstation);
        // 1 − 0.3·0.7 = 0.79 (mDNS counts once), runner-up 0.3: 0.79² / 1.09.
        assert!(
            (v.confidence - 0.79 * 0.79 / 1.09).abs() < 1e-5,
            "{}",
            v.confidence
        );
        let mut with_manual = ev.to_vec();
        with_manual.push(Evidence::new(
            Source::Manual,
            DeviceType::Server,
            1.0,
            "api",
        ));
        assert_eq!(
            classify(&with_manual),
            Verdict {
                device_type: DeviceType::Server,
                confidence: 1.0
            }
        );
        assert_eq!(classify(&[]).device_type, DeviceType::Unknown);
    }

    #[test]
    fn text_is_bounded_and_printable() {
        let s = bounded_text("a\u{0}b\nc€€€", 8);
        assert_eq!(s, "a?b?c€");
        assert!(s.len() <= 8);
    }
}
