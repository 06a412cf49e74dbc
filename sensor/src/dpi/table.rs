//! The static tables of the DPI: protocols (name, category, breed, default ports) and the
//! hostname → application suffix map. Both live in data files next to this module
//! (`protocols.csv`, `hosts.csv`), embedded at build time and parsed once by [`Tables::load`].
//!
//! Must not: allocate on lookups. Lookups borrow from the embedded text (`&'static str`).

use std::collections::HashMap;

/// Protocol table source (see the file's header for the format).
const PROTOCOLS_CSV: &str = include_str!("protocols.csv");
/// Host table source (see the file's header for the format).
const HOSTS_CSV: &str = include_str!("hosts.csv");

/// nDPI's protocol "breed": how acceptable a protocol is on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breed {
    /// Encrypted, well known.
    Safe,
    /// Fine in general.
    Acceptable,
    /// Games, streaming and the like.
    Fun,
    /// Clear-text credentials or known-bad design: raises `unsafe_protocol`.
    Unsafe,
    /// May be dangerous.
    PotentiallyDangerous,
    /// Dangerous.
    Dangerous,
    /// Not rated.
    Unrated,
}

impl Breed {
    fn parse(s: &str) -> Self {
        match s {
            "Safe" => Self::Safe,
            "Acceptable" => Self::Acceptable,
            "Fun" => Self::Fun,
            "Unsafe" => Self::Unsafe,
            "PotentiallyDangerous" => Self::PotentiallyDangerous,
            "Dangerous" => Self::Dangerous,
            _ => Self::Unrated,
        }
    }
}

/// One row of the protocol table.
#[derive(Debug, Clone)]
pub struct ProtoInfo {
    /// nDPI spelling ("TLS", "DNS", "NetBIOS").
    pub name: &'static str,
    /// nDPI category name.
    pub category: &'static str,
    /// Breed.
    pub breed: Breed,
    /// Default TCP ports.
    pub tcp_ports: Vec<u16>,
    /// Default UDP ports.
    pub udp_ports: Vec<u16>,
}

impl ProtoInfo {
    /// Default ports for the transport `l4_proto` (6 or 17); empty for others.
    pub fn ports(&self, l4_proto: u8) -> &[u16] {
        match l4_proto {
            6 => &self.tcp_ports,
            17 => &self.udp_ports,
            _ => &[],
        }
    }
}

/// An application learned from a hostname ("Google", "AppleiCloud").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppInfo {
    /// nDPI spelling.
    pub name: &'static str,
    /// nDPI category name.
    pub category: &'static str,
}

/// Index of a protocol in [`Tables::protocols`]; small and `Copy` so per-flow state stays tiny.
pub type ProtoId = u8;

/// The parsed tables, built once and shared.
#[derive(Debug)]
pub struct Tables {
    protocols: Vec<ProtoInfo>,
    by_name: HashMap<&'static str, ProtoId>,
    /// (l4, port) → protocol for the port guess.
    by_port: HashMap<(u8, u16), ProtoId>,
    /// Exact suffix ("google.com") → app.
    suffixes: HashMap<&'static str, AppInfo>,
    /// Label patterns (`google.*`) → app.
    labels: HashMap<&'static str, AppInfo>,
}

impl Tables {
    /// Parses the embedded data files. Malformed lines are a build-time bug caught by the tests;
    /// here they are skipped.
    pub fn load() -> Self {
        let mut protocols = Vec::new();
        let mut by_name = HashMap::new();
        let mut by_port = HashMap::new();
        for line in data_lines(PROTOCOLS_CSV) {
            let mut f = line.split(',');
            let (Some(name), Some(category), Some(breed), Some(tcp), Some(udp)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let Ok(id) = ProtoId::try_from(protocols.len()) else {
                break;
            };
            let parse = |s: &str| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            };
            let info = ProtoInfo {
                name,
                category,
                breed: Breed::parse(breed),
                tcp_ports: parse(tcp),
                udp_ports: parse(udp),
            };
            for &p in &info.tcp_ports {
                by_port.entry((6, p)).or_insert(id);
            }
            for &p in &info.udp_ports {
                by_port.entry((17, p)).or_insert(id);
            }
            by_name.insert(name, id);
            protocols.push(info);
        }
        let mut suffixes = HashMap::new();
        let mut labels = HashMap::new();
        for line in data_lines(HOSTS_CSV) {
            let mut f = line.split(',');
            let (Some(suffix), Some(name), Some(category)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let app = AppInfo { name, category };
            if let Some(label) = suffix.strip_suffix(".*") {
                labels.insert(label, app);
            } else {
                suffixes.insert(suffix, app);
            }
        }
        Self {
            protocols,
            by_name,
            by_port,
            suffixes,
            labels,
        }
    }

    /// The protocol named `name` (nDPI spelling).
    pub fn id(&self, name: &str) -> Option<ProtoId> {
        self.by_name.get(name).copied()
    }

    /// The row of `id`.
    pub fn proto(&self, id: ProtoId) -> Option<&ProtoInfo> {
        self.protocols.get(usize::from(id))
    }

    /// Every protocol row.
    pub fn protocols(&self) -> &[ProtoInfo] {
        &self.protocols
    }

    /// Port-based guess: the server port first, then the client port.
    pub fn guess_by_port(&self, l4: u8, server_port: u16, client_port: u16) -> Option<ProtoId> {
        self.by_port
            .get(&(l4, server_port))
            .or_else(|| self.by_port.get(&(l4, client_port)))
            .copied()
    }

    /// The application of `host` (already lower-case), longest matching suffix first.
    pub fn app_for_host(&self, host: &str) -> Option<AppInfo> {
        let host = host.trim_end_matches('.');
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        if let Some(app) = self.suffixes.get(host) {
            return Some(*app);
        }
        // Longest suffix first: walk the boundaries left to right.
        for (i, b) in host.bytes().enumerate() {
            if (b == b'.' || b == b'-')
                && let Some(app) = host.get(i + 1..).and_then(|s| self.suffixes.get(s))
            {
                return Some(*app);
            }
        }
        // `label.*`: a label followed by one or two more labels (google.it, google.co.uk).
        let mut labels = host.rsplit('.');
        labels.next();
        for label in labels.take(2) {
            if let Some(app) = self.labels.get(label) {
                return Some(*app);
            }
        }
        None
    }
}

/// Non-empty, non-comment lines of a data file, trimmed.
fn data_lines(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_completely() {
        let t = Tables::load();
        let rows = data_lines(PROTOCOLS_CSV).count();
        assert_eq!(t.protocols().len(), rows);
        for p in t.protocols() {
            assert!(!p.name.is_empty() && !p.category.is_empty(), "{p:?}");
        }
        let hosts = data_lines(HOSTS_CSV).count();
        assert_eq!(
            t.suffixes.len() + t.labels.len(),
            hosts,
            "duplicate host rows"
        );
    }

    #[test]
    fn longest_suffix_wins() {
        let t = Tables::load();
        let app = |h| t.app_for_host(h).map(|a| a.name);
        assert_eq!(app("www.google.com"), Some("Google"));
        assert_eq!(app("alt2-mtalk.google.com"), Some("GoogleServices"));
        assert_eq!(app("bag.itunes.apple.com"), Some("AppleiTunes"));
        assert_eq!(app("gsa.apple.com"), Some("Apple"));
        assert_eq!(app("www.google.it"), Some("Google"));
        assert_eq!(app("www.google.co.uk"), Some("Google"));
        assert_eq!(app("mozilla.cloudflare-dns.com"), Some("DoH_DoT"));
        assert_eq!(app("notgoogle.com"), None);
        assert_eq!(app("www.iit.cnr.it"), None);
        assert_eq!(app(""), None);
    }

    #[test]
    fn port_guess() {
        let t = Tables::load();
        let name = |id: Option<ProtoId>| id.and_then(|i| t.proto(i)).map(|p| p.name);
        assert_eq!(name(t.guess_by_port(6, 443, 50000)), Some("TLS"));
        assert_eq!(name(t.guess_by_port(17, 53, 40000)), Some("DNS"));
        assert_eq!(name(t.guess_by_port(17, 40000, 5353)), Some("MDNS"));
        assert_eq!(name(t.guess_by_port(6, 40000, 40001)), None);
    }
}
