//! Why a host scores what it scores, in words: its score contributions grouped by alert type
//! and side, counted by distinct peer, phrased ("3 self-signed TLS servers contacted"); host
//! alerts (scans, floods) say it with their own message ("SYN scan: 1,024 ports…"). Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netwarden_api::alert::Entity;

use crate::score::Contribution;

/// Phrases of flow alert types: (type, as client: singular, plural; as server: singular,
/// plural). `{n}` is the number of distinct peers (or flows when no peer is known).
const PHRASES: &[(&str, [&str; 4])] = &[
    (
        "tls_selfsigned_certificate",
        [
            "a self-signed TLS server contacted",
            "{n} self-signed TLS servers contacted",
            "serves a self-signed TLS certificate",
            "serves a self-signed TLS certificate to {n} clients",
        ],
    ),
    (
        "tls_certificate_expired",
        [
            "a TLS server with an expired certificate contacted",
            "{n} TLS servers with expired certificates contacted",
            "serves an expired TLS certificate",
            "serves an expired TLS certificate to {n} clients",
        ],
    ),
    (
        "clear_text_credentials",
        [
            "sent credentials in clear text once",
            "sent credentials in clear text to {n} servers",
            "received credentials in clear text",
            "received credentials in clear text from {n} clients",
        ],
    ),
    (
        "possible_exploit",
        [
            "sent a possible exploit",
            "sent possible exploits to {n} servers",
            "received a possible exploit",
            "received possible exploits from {n} clients",
        ],
    ),
    (
        "suspicious_dga_domain",
        [
            "looked up a DGA-like domain",
            "looked up {n} DGA-like domains",
            "answered a DGA-like domain lookup",
            "answered {n} DGA-like domain lookups",
        ],
    ),
    (
        "blacklisted_server_contact",
        [
            "contacted a blocklisted server",
            "contacted {n} blocklisted servers",
            "is blocklisted and was contacted",
            "is blocklisted and was contacted by {n} clients",
        ],
    ),
    (
        "binary_application_transfer",
        [
            "downloaded an executable",
            "downloaded {n} executables",
            "served an executable",
            "served executables to {n} clients",
        ],
    ),
];

/// Longest host-alert message quoted.
const MAX_MESSAGE: usize = 120;

/// One group of contributions.
#[derive(Debug, Default)]
struct Group {
    points: u64,
    peers: std::collections::BTreeSet<IpAddr>,
    flows: u64,
    keys: Vec<String>,
}

/// The phrases explaining `contributions` (most points first, at most `max`). `message`
/// returns a host alert's message by its key, when the alert is still stored.
pub fn explain(
    contributions: &[Contribution],
    message: impl Fn(&str) -> Option<String>,
    max: usize,
) -> Vec<String> {
    let mut groups: BTreeMap<(String, bool, bool), Group> = BTreeMap::new();
    for c in contributions {
        let g = groups
            .entry((c.alert_type.clone(), c.as_client, c.entity == Entity::Host))
            .or_default();
        g.points += u64::from(c.points);
        g.flows += 1;
        if let Some(p) = c.peer {
            g.peers.insert(p);
        }
        if g.keys.len() < 4 {
            g.keys.push(c.alert_key.clone());
        }
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.points.cmp(&a.1.points).then_with(|| a.0.cmp(&b.0)));
    rows.into_iter()
        .take(max)
        .map(|((t, client, host_alert), g)| {
            if host_alert && let Some(m) = g.keys.iter().find_map(|k| message(k)) {
                return shorten(&m);
            }
            let n = if g.peers.is_empty() {
                g.flows
            } else {
                g.peers.len() as u64
            };
            phrase(&t, client, n)
        })
        .collect()
}

fn shorten(m: &str) -> String {
    if m.chars().count() <= MAX_MESSAGE {
        return m.to_owned();
    }
    let mut s: String = m.chars().take(MAX_MESSAGE - 1).collect();
    s.push('…');
    s
}

/// The phrase of `n` alerts of type `t` on one side.
pub fn phrase(t: &str, client: bool, n: u64) -> String {
    let key = t.strip_prefix("ndpi_").unwrap_or(t);
    if let Some((_, p)) = PHRASES.iter().find(|(k, _)| *k == key) {
        let i = usize::from(!client) * 2 + usize::from(n != 1);
        return p[i].replace("{n}", &super::layout::count(n));
    }
    let name = super::layout::type_label(key);
    let peers = if client { "server" } else { "client" };
    match n {
        0 | 1 => format!("“{name}” with a {peers}"),
        n => format!("“{name}” with {} {peers}s", super::layout::count(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::ScoreKind;

    fn c(t: &str, client: bool, peer: &str, points: u16, entity: Entity) -> Contribution {
        Contribution {
            alert_key: format!("{t}-{peer}"),
            alert_type: t.into(),
            entity,
            as_client: client,
            kind: ScoreKind::Security,
            points,
            peer: peer.parse().ok(),
            since_ns: 0,
            leaving_since_ns: None,
            roll: None,
        }
    }

    #[test]
    fn groups_by_type_and_side_and_counts_peers() {
        let cs = vec![
            c(
                "tls_selfsigned_certificate",
                true,
                "10.0.0.1",
                50,
                Entity::Flow,
            ),
            c(
                "tls_selfsigned_certificate",
                true,
                "10.0.0.2",
                50,
                Entity::Flow,
            ),
            c(
                "tls_selfsigned_certificate",
                true,
                "10.0.0.3",
                50,
                Entity::Flow,
            ),
            c(
                "tls_selfsigned_certificate",
                true,
                "10.0.0.3",
                50,
                Entity::Flow,
            ),
            c("syn_scan", true, "", 50, Entity::Host),
            c("weird_thing", false, "10.0.0.9", 5, Entity::Flow),
        ];
        let words = explain(
            &cs,
            |k| (k == "syn_scan-").then(|| "SYN scan: 1,024 ports of 10.0.0.7 probed".to_owned()),
            5,
        );
        assert_eq!(
            words,
            vec![
                "4 self-signed TLS servers contacted".replace('4', "3"),
                "SYN scan: 1,024 ports of 10.0.0.7 probed".to_owned(),
                "“weird thing” with a client".to_owned(),
            ]
        );
        assert_eq!(explain(&cs, |_| None, 1).len(), 1);
    }

    #[test]
    fn phrases_by_count_and_side() {
        assert_eq!(
            phrase("ndpi_tls_selfsigned_certificate", false, 1),
            "serves a self-signed TLS certificate"
        );
        assert_eq!(
            phrase("clear_text_credentials", true, 1024),
            "sent credentials in clear text to 1,024 servers"
        );
    }
}
