//! Threat-intelligence lists that drive nDPI's list-based risks, in the formats of nDPI's
//! `example/` files (see `testdata/ndpi/lists/README.md`):
//!
//! - `ja3_fingerprints.csv` (abuse.ch SSLBL JA3, `md5,first seen,last seen,reason`) →
//!   `malicious_fingerprint`;
//! - `sha1_fingerprints.csv` (abuse.ch SSLBL, `listing date,sha1,reason`) →
//!   `malicious_sha1_certificate`;
//! - `risky_domains.txt` (one domain suffix a line, e.g. `.tk`) → `risky_domain`;
//! - `categories.txt` (`name<TAB>category_id`; names are host suffixes, IPs or CIDRs, IPv6 in
//!   brackets); category 100 (malware) → `malware_host_contacted`;
//! - `anonymous_subscribers.txt` (Netwarden's: one IP or CIDR a line — VPN exits, Tor exits,
//!   relay egress ranges; nDPI builds these lists into its library) → `anonymous_subscriber`
//!   when the flow's client comes from one.
//!
//! Suffix lookups are hash lookups per label of the host name, so large lists cost no more
//! per record than small ones. A file larger than [`MAX_FILE_BYTES`] is refused.
//!
//! Parsing is lenient: comments (`#`) and lines that do not parse are skipped and counted.
//! Must not: do I/O beyond reading the files it is given.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// nDPI's custom category id for malware.
const MALWARE_CATEGORY: &str = "100";

/// Largest list file read (bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The files [`Lists::load_dir`] reads.
pub const FILES: &[&str] = &[
    "ja3_fingerprints.csv",
    "sha1_fingerprints.csv",
    "risky_domains.txt",
    "categories.txt",
    "anonymous_subscribers.txt",
];

/// Loaded lists. Empty lists raise nothing.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    ja3: HashSet<String>,
    sha1: HashSet<String>,
    risky_suffixes: HashSet<String>,
    malware_hosts: HashSet<String>,
    malware_nets: Vec<(IpAddr, u8)>,
    anonymous_nets: Vec<(IpAddr, u8)>,
    /// Lines that did not parse, over all files.
    pub skipped: usize,
}

impl Lists {
    /// Reads the files nDPI's harness uses from `dir` (missing files are empty lists).
    ///
    /// # Errors
    /// An I/O error other than a missing file.
    pub fn load_dir(dir: &Path) -> std::io::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() > MAX_FILE_BYTES => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is larger than {MAX_FILE_BYTES} bytes", path.display()),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
                _ => {}
            }
            match std::fs::read(&path) {
                Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(e),
            }
        };
        let mut lists = Self::default();
        lists.add_ja3_csv(&read(FILES[0])?);
        lists.add_sha1_csv(&read(FILES[1])?);
        lists.add_risky_domains(&read(FILES[2])?);
        lists.add_categories(&read(FILES[3])?);
        lists.add_anonymous(&read(FILES[4])?);
        Ok(lists)
    }

    fn lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
    }

    /// Adds a JA3 CSV (first column: the MD5).
    pub fn add_ja3_csv(&mut self, text: &str) {
        for line in Self::lines(text) {
            let md5 = line.split(',').next().unwrap_or_default().trim();
            if md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.ja3.insert(md5.to_ascii_lowercase());
            } else {
                self.skipped += 1;
            }
        }
    }

    /// Adds a SHA-1 certificate CSV (the 40-hex-digit column).
    pub fn add_sha1_csv(&mut self, text: &str) {
        for line in Self::lines(text) {
            let sha1 = line
                .split(',')
                .map(str::trim)
                .find(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()));
            match sha1 {
                Some(s) => {
                    self.sha1.insert(s.to_ascii_lowercase());
                }
                None => self.skipped += 1,
            }
        }
    }

    /// Adds domain suffixes, one a line.
    pub fn add_risky_domains(&mut self, text: &str) {
        for line in Self::lines(text) {
            let d = line.trim_start_matches('.').to_ascii_lowercase();
            if d.is_empty() {
                self.skipped += 1;
            } else {
                self.risky_suffixes.insert(d);
            }
        }
    }

    /// Adds the malware entries (category 100) of a custom-categories file.
    pub fn add_categories(&mut self, text: &str) {
        for line in Self::lines(text) {
            let mut cols = line.split_whitespace();
            let (Some(name), Some(cat)) = (cols.next(), cols.next()) else {
                self.skipped += 1;
                continue;
            };
            if cat != MALWARE_CATEGORY {
                continue;
            }
            if let Some(net) = parse_net(name) {
                self.malware_nets.push(net);
            } else {
                self.malware_hosts
                    .insert(name.trim_start_matches('.').to_ascii_lowercase());
            }
        }
    }

    /// Adds anonymizer addresses (IPs or CIDRs, one a line).
    pub fn add_anonymous(&mut self, text: &str) {
        for line in Self::lines(text) {
            match parse_net(line.split_whitespace().next().unwrap_or_default()) {
                Some(net) => self.anonymous_nets.push(net),
                None => self.skipped += 1,
            }
        }
    }

    /// Whether `ip` belongs to a listed anonymizer (VPN or Tor exit, relay egress).
    pub fn anonymous(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.anonymous_nets.iter().any(|n| in_net(ip, *n)))
    }

    /// Whether the lists are all empty.
    pub fn is_empty(&self) -> bool {
        self.ja3.is_empty()
            && self.sha1.is_empty()
            && self.risky_suffixes.is_empty()
            && self.malware_hosts.is_empty()
            && self.malware_nets.is_empty()
            && self.anonymous_nets.is_empty()
    }

    /// Whether a JA3 client hash (hex) is listed.
    pub fn malicious_ja3(&self, ja3: &str) -> bool {
        !ja3.is_empty() && self.ja3.contains(&ja3.to_ascii_lowercase())
    }

    /// Whether a certificate SHA-1 (hex, with or without `:`) is listed.
    pub fn malicious_sha1(&self, sha1: &str) -> bool {
        if sha1.is_empty() || self.sha1.is_empty() {
            return false;
        }
        let s: String = sha1
            .chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        self.sha1.contains(&s)
    }

    /// Whether `host` is, or is under, a risky domain suffix.
    pub fn risky_domain(&self, host: &str) -> bool {
        suffix_match(&self.risky_suffixes, host)
    }

    /// Whether `host` or `ip` is a listed malware host.
    pub fn malware_host(&self, host: &str, ip: Option<IpAddr>) -> bool {
        suffix_match(&self.malware_hosts, host)
            || ip.is_some_and(|ip| self.malware_nets.iter().any(|n| in_net(ip, *n)))
    }
}

/// Whether `host` equals one of `suffixes` or ends with `.suffix`: one hash lookup per label.
fn suffix_match(suffixes: &HashSet<String>, host: &str) -> bool {
    if host.is_empty() || suffixes.is_empty() {
        return false;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut rest = host.as_str();
    loop {
        if suffixes.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, tail)) => rest = tail,
            None => return false,
        }
    }
}

/// An IP address or CIDR (`10.0.0.0/8`, `[2001:db8::]/32`).
fn parse_net(name: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match name.rsplit_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (name, None),
    };
    let ip = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    Some((ip, prefix.unwrap_or(max).min(max)))
}

fn in_net(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ndpi_example_formats() {
        let mut l = Lists::default();
        l.add_ja3_csv("# c\nB386946A5A44D1DDCC843BC75336DFCE,2017-07-14,2019-07-27,Dridex\n");
        l.add_sha1_csv("1970-01-01 00:00:00,0DDB34F875632C7E1EC09D75827F82D2336DFEB6, Fake\n");
        l.add_risky_domains(".tk\n.london\n");
        l.add_categories(
            "internetbadguys.com\t100\n172.30.69.0/24\t100\n[2001:db8:1::1]/127\t100\nx.org\t5\n",
        );
        assert!(l.malicious_ja3("b386946a5a44d1ddcc843bc75336dfce"));
        assert!(l.malicious_sha1("0d:db:34:f8:75:63:2c:7e:1e:c0:9d:75:82:7f:82:d2:33:6d:fe:b6"));
        assert!(l.risky_domain("www.example.TK"));
        assert!(!l.risky_domain("notk"));
        assert!(l.malware_host("a.internetbadguys.com", None));
        assert!(l.malware_host("", "172.30.69.9".parse().ok()));
        assert!(l.malware_host("", "2001:db8:1::0".parse().ok()));
        assert!(!l.malware_host("x.org", "10.0.0.1".parse().ok()));
        assert!(!l.malware_host("internetbadguys.com.evil", None));
        l.add_anonymous("2.58.241.0/24\n# comment\n2001:db8::1\n");
        assert!(l.anonymous("2.58.241.67".parse().ok()));
        assert!(!l.anonymous("2.58.242.1".parse().ok()));
        assert!(l.anonymous("2001:db8::1".parse().ok()));
        assert_eq!(l.skipped, 0);
        l.add_anonymous("not an address\n");
        assert_eq!(l.skipped, 1);
    }
}
