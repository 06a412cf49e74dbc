//! Threat-intelligence lists that drive nDPI's list-based risks, in the formats of nDPI's
//! `example/` files (see `testdata/ndpi/lists/README.md`):
//!
//! - `ja3_fingerprints.csv` (abuse.ch SSLBL JA3, `md5,first seen,last seen,reason`) →
//!   `malicious_fingerprint`;
//! - `sha1_fingerprints.csv` (abuse.ch SSLBL, `listing date,sha1,reason`) →
//!   `malicious_sha1_certificate`;
//! - `risky_domains.txt` (one domain suffix a line, e.g. `.tk`) → `risky_domain`;
//! - `categories.txt` (`name<TAB>category_id`; names are host suffixes, IPs or CIDRs, IPv6 in
//!   brackets); category 100 (malware) → `malware_host_contacted`.
//!
//! Parsing is lenient: comments (`#`) and lines that do not parse are skipped and counted.
//! Must not: do I/O beyond reading the files it is given.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// nDPI's custom category id for malware.
const MALWARE_CATEGORY: &str = "100";

/// Loaded lists. Empty lists raise nothing.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    ja3: HashSet<String>,
    sha1: HashSet<String>,
    risky_suffixes: Vec<String>,
    malware_hosts: Vec<String>,
    malware_nets: Vec<(IpAddr, u8)>,
    /// Lines that did not parse, over all files.
    pub skipped: usize,
}

impl Lists {
    /// Reads the files nDPI's harness uses from `dir` (missing files are empty lists).
    ///
    /// # Errors
    /// An I/O error other than a missing file.
    pub fn load_dir(dir: &Path) -> std::io::Result<Self> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        };
        let mut lists = Self::default();
        lists.add_ja3_csv(&read("ja3_fingerprints.csv")?);
        lists.add_sha1_csv(&read("sha1_fingerprints.csv")?);
        lists.add_risky_domains(&read("risky_domains.txt")?);
        lists.add_categories(&read("categories.txt")?);
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
                self.risky_suffixes.push(d);
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
            let (addr, prefix) = match name.rsplit_once('/') {
                Some((a, p)) => (a, p.parse::<u8>().ok()),
                None => (name, None),
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                self.malware_nets.push((ip, prefix.unwrap_or(max).min(max)));
            } else {
                self.malware_hosts.push(name.to_ascii_lowercase());
            }
        }
    }

    /// Whether the lists are all empty.
    pub fn is_empty(&self) -> bool {
        self.ja3.is_empty()
            && self.sha1.is_empty()
            && self.risky_suffixes.is_empty()
            && self.malware_hosts.is_empty()
            && self.malware_nets.is_empty()
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

/// Whether `host` equals one of `suffixes` or ends with `.suffix`.
fn suffix_match(suffixes: &[String], host: &str) -> bool {
    if host.is_empty() || suffixes.is_empty() {
        return false;
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    suffixes.iter().any(|s| {
        host == *s
            || host
                .strip_suffix(s.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
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
        assert_eq!(l.skipped, 0);
    }
}
