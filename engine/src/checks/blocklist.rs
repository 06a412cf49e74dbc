//! Blocklists of addresses and domain names, loaded from files and reloaded when a file changes.
//!
//! File format: one entry per line; `#` starts a comment; addresses may be CIDRs; a domain
//! entry matches the name and every subdomain (`evil.example` matches `a.evil.example`).
//! Reading files is the only I/O here; [`Blocklist::reload_if_changed`] is called by the shell
//! (ingest), never by the checks.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::checks::net::Cidr;

/// Addresses and domains considered malicious.
#[derive(Clone, Debug, Default)]
pub struct Blocklist {
    nets: Vec<Cidr>,
    domains: HashSet<String>,
    sources: Vec<(PathBuf, Option<SystemTime>)>,
    /// Parse errors of the last load (line text), for the operator's eyes.
    pub rejected: Vec<String>,
}

impl Blocklist {
    /// A list built in memory (tests, configuration).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Self {
        let mut b = Self::default();
        for e in entries {
            b.add_line(e);
        }
        b
    }

    /// Loads `files` (address or domain entries, mixed).
    pub fn load(files: &[PathBuf]) -> Self {
        let mut b = Self {
            sources: files.iter().map(|p| (p.clone(), mtime(p))).collect(),
            ..Self::default()
        };
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(text) => text.lines().for_each(|l| b.add_line(l)),
                Err(e) => b.rejected.push(format!("{}: {e}", f.display())),
            }
        }
        b
    }

    /// Reloads when a source file's modification time changed; returns whether it did.
    pub fn reload_if_changed(&mut self) -> bool {
        let changed = self.sources.iter().any(|(p, t)| mtime(p) != *t);
        if changed {
            let files: Vec<_> = self.sources.iter().map(|(p, _)| p.clone()).collect();
            *self = Self::load(&files);
        }
        changed
    }

    fn add_line(&mut self, line: &str) {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            return;
        }
        if let Ok(net) = entry.parse::<Cidr>() {
            self.nets.push(net);
        } else if entry.contains('.') && !entry.contains(char::is_whitespace) {
            self.domains
                .insert(entry.trim_end_matches('.').to_ascii_lowercase());
        } else {
            self.rejected.push(entry.to_owned());
        }
    }

    /// Whether `ip` is listed.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Whether `name` or one of its parent domains is listed.
    pub fn has_domain(&self, name: &str) -> bool {
        if self.domains.is_empty() || name.is_empty() {
            return false;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = name.as_str();
        loop {
            if self.domains.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') || !parent.is_empty() => rest = parent,
                _ => return false,
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nets.len() + self.domains.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_addresses_networks_and_subdomains() {
        let b = Blocklist::from_entries([
            "# c",
            "198.51.100.7",
            "203.0.113.0/24",
            "evil.example",
            "bad name",
        ]);
        assert!(b.has_ip("198.51.100.7".parse().unwrap()));
        assert!(b.has_ip("203.0.113.99".parse().unwrap()));
        assert!(!b.has_ip("198.51.100.8".parse().unwrap()));
        assert!(b.has_domain("a.b.evil.example."));
        assert!(b.has_domain("EVIL.example"));
        assert!(!b.has_domain("notevil.example"));
        assert_eq!(b.rejected, vec!["bad name".to_owned()]);
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ips.txt");
        std::fs::write(&f, "198.51.100.7\n").unwrap();
        let mut b = Blocklist::load(std::slice::from_ref(&f));
        assert!(!b.reload_if_changed());
        // Make sure the modification time moves even on coarse file systems.
        std::fs::write(&f, "198.51.100.8\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(b.reload_if_changed());
        assert!(b.has_ip("198.51.100.8".parse().unwrap()));
        assert!(!b.has_ip("198.51.100.7".parse().unwrap()));
    }
}
