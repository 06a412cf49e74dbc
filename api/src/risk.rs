//! The flow-risk catalogue: every risk the sensor can flag, with nDPI's stable key,
//! default severity and client/server score split (ntopng `src/FlowRiskAlerts.cpp`, nDPI
//! `ndpi_known_risks[]`; the table is in docs/checks.md).
//!
//! Ids are nDPI's `ndpi_risk_enum` values so records compare one to one with nDPI;
//! Netwarden-only risks start at [`NETWARDEN_RISK_BASE`].

use serde::{Deserialize, Serialize};

/// First id of risks that nDPI does not have.
pub const NETWARDEN_RISK_BASE: u16 = 100;

/// Risk severity, nDPI's scale. Each level maps to a score ([`RiskSeverity::score`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSeverity {
    /// 10 points.
    Low,
    /// 50 points.
    Medium,
    /// 100 points.
    High,
    /// 150 points.
    Severe,
    /// 200 points.
    Critical,
    /// 250 points.
    Emergency,
}

impl RiskSeverity {
    /// Score points of this severity (`ndpi_risk2score`).
    pub const fn score(self) -> u16 {
        match self {
            Self::Low => 10,
            Self::Medium => 50,
            Self::High => 100,
            Self::Severe => 150,
            Self::Critical => 200,
            Self::Emergency => 250,
        }
    }
}

/// What a risk's score counts towards (ntopng's score categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreCategory {
    /// Attacks, malware, policy breaches.
    Security,
    /// Network health (TCP issues, errors, unidirectional traffic).
    Network,
    /// Neither: informational.
    Other,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskInfo {
    /// Stable id (nDPI's `ndpi_risk_enum` value for nDPI risks).
    pub id: u16,
    /// Stable snake_case key: nDPI's enum key lower-cased without `NDPI_`.
    pub key: &'static str,
    /// Human name (nDPI 4.11 spelling where nDPI has one).
    pub name: &'static str,
    /// Default severity.
    pub severity: RiskSeverity,
    /// Share of the score that goes to the client, in percent; the server gets the rest.
    pub client_pct: u8,
    /// What the score counts towards.
    pub category: ScoreCategory,
    /// ntopng flow alert id this risk maps to, when ntopng maps it.
    pub ntopng_alert_id: Option<u16>,
}

impl RiskInfo {
    /// Default score of the risk.
    pub const fn score(&self) -> u16 {
        self.severity.score()
    }

    /// Client and server parts of the score (`cli = score*pct/100`, `srv = score - cli`).
    pub const fn split(&self) -> (u16, u16) {
        let score = self.score();
        let cli = score * self.client_pct as u16 / 100;
        (cli, score - cli)
    }
}

macro_rules! risk {
    ($id:literal, $key:literal, $name:literal, $sev:ident, $pct:literal, $cat:ident, $alert:expr) => {
        RiskInfo {
            id: $id,
            key: $key,
            name: $name,
            severity: RiskSeverity::$sev,
            client_pct: $pct,
            category: ScoreCategory::$cat,
            ntopng_alert_id: $alert,
        }
    };
}

/// Every risk, ordered by id.
// One risk per line reads as the table it is.
#[rustfmt::skip]
pub static CATALOGUE: &[RiskInfo] = &[
    risk!(1, "url_possible_xss", "XSS Attack", Severe, 90, Security, Some(39)),
    risk!(2, "url_possible_sql_injection", "SQL Injection", Severe, 90, Security, Some(40)),
    risk!(3, "url_possible_rce_injection", "RCE Injection", Severe, 90, Security, Some(41)),
    risk!(4, "binary_application_transfer", "Binary App Transfer", Severe, 50, Security, Some(29)),
    risk!(5, "known_protocol_on_non_standard_port", "Known Proto on Non Std Port", Medium, 50, Security, Some(30)),
    risk!(6, "tls_selfsigned_certificate", "Self-signed Cert", High, 90, Security, Some(28)),
    risk!(7, "tls_obsolete_version", "Obsolete TLS (v1.1 or older)", High, 90, Security, Some(24)),
    risk!(8, "tls_weak_cipher", "Weak TLS Cipher", High, 90, Security, Some(25)),
    risk!(9, "tls_certificate_expired", "TLS Cert Expired", High, 10, Security, Some(22)),
    risk!(10, "tls_certificate_mismatch", "TLS Cert Mismatch", High, 50, Security, Some(23)),
    risk!(11, "http_suspicious_user_agent", "HTTP Susp User-Agent", High, 90, Security, Some(42)),
    risk!(12, "numeric_ip_host", "HTTP/TLS/QUIC Numeric Hostname/SNI", Low, 50, Security, Some(43)),
    risk!(13, "http_suspicious_url", "HTTP Susp URL", High, 90, Security, Some(44)),
    risk!(14, "http_suspicious_header", "HTTP Susp Header", High, 90, Security, Some(45)),
    risk!(15, "tls_not_carrying_https", "TLS (probably) Not Carrying HTTPS", Low, 50, Security, Some(46)),
    risk!(16, "suspicious_dga_domain", "Susp DGA Domain name", High, 90, Security, Some(47)),
    risk!(17, "malformed_packet", "Malformed Packet", Low, 50, Security, Some(48)),
    risk!(18, "ssh_obsolete_client_version_or_cipher", "SSH Obsolete Cli Vers/Cipher", High, 90, Security, Some(61)),
    risk!(19, "ssh_obsolete_server_version_or_cipher", "SSH Obsolete Ser Vers/Cipher", Medium, 10, Security, Some(49)),
    risk!(20, "smb_insecure_version", "SMB Insecure Vers", High, 90, Security, Some(50)),
    risk!(21, "tls_suspicious_esni_usage", "TLS Susp ESNI Usage", Medium, 50, Security, Some(51)),
    risk!(22, "unsafe_protocol", "Unsafe Protocol", Low, 50, Security, Some(52)),
    risk!(23, "dns_suspicious_traffic", "Susp DNS Traffic", Medium, 90, Security, Some(53)),
    risk!(24, "tls_missing_sni", "Missing SNI TLS Extn", Medium, 50, Security, Some(54)),
    risk!(25, "http_suspicious_content", "HTTP Susp Content", High, 90, Security, Some(63)),
    risk!(26, "risky_asn", "Risky ASN", Medium, 50, Security, Some(85)),
    risk!(27, "risky_domain", "Risky Domain Name", Medium, 50, Security, Some(86)),
    risk!(28, "malicious_fingerprint", "Malicious Fingerpint", Medium, 50, Security, Some(79)),
    risk!(29, "malicious_sha1_certificate", "Malicious SSL Cert/SHA1 Fingerp.", Medium, 50, Security, Some(80)),
    risk!(30, "desktop_or_file_sharing_session", "Desktop/File Sharing", Low, 50, Security, Some(78)),
    risk!(31, "tls_uncommon_alpn", "Uncommon TLS ALPN", Medium, 50, Other, Some(81)),
    risk!(32, "tls_cert_validity_too_long", "TLS Cert Validity Too Long", Medium, 50, Security, Some(60)),
    risk!(33, "tls_suspicious_extension", "TLS Susp Extn", High, 90, Security, Some(82)),
    risk!(34, "tls_fatal_alert", "TLS Fatal Alert", Low, 50, Other, Some(83)),
    risk!(35, "suspicious_entropy", "Susp Entropy", Low, 50, Security, Some(73)),
    risk!(36, "clear_text_credentials", "Clear-Text Credentials", High, 90, Security, Some(62)),
    risk!(37, "dns_large_packet", "Large DNS Packet (512+ bytes)", Medium, 50, Security, Some(64)),
    risk!(38, "dns_fragmented", "Fragmented DNS Message", Medium, 50, Security, Some(65)),
    risk!(39, "invalid_characters", "Non-Printable/Invalid Chars Detected", High, 90, Security, Some(66)),
    risk!(40, "possible_exploit", "Possible Exploit Attempt", Severe, 90, Security, Some(68)),
    risk!(41, "tls_certificate_about_to_expire", "TLS Cert About To Expire", Medium, 10, Security, Some(69)),
    risk!(42, "punycode_idn", "IDN Domain Name", Low, 10, Security, Some(70)),
    risk!(43, "error_code_detected", "Error Code", Low, 10, Network, Some(71)),
    risk!(44, "http_crawler_bot", "Crawler/Bot", Low, 10, Network, Some(72)),
    risk!(45, "anonymous_subscriber", "Anonymous Subscriber", Medium, 50, Security, Some(76)),
    risk!(46, "unidirectional_traffic", "Unidirectional Traffic", Low, 50, Network, Some(26)),
    risk!(47, "http_obsolete_server", "HTTP Obsolete Server", Medium, 10, Security, Some(84)),
    risk!(48, "periodic_flow", "Periodic Flow", Low, 10, Network, Some(88)),
    risk!(49, "minor_issues", "Minor Issues", Low, 10, Network, Some(89)),
    risk!(50, "tcp_issues", "TCP Connection Issues", Medium, 50, Network, Some(90)),
    risk!(51, "fully_encrypted", "Fully Encrypted Flow", Medium, 50, Network, Some(96)),
    risk!(52, "tls_alpn_sni_mismatch", "ALPN/SNI Mismatch", Medium, 50, Security, Some(97)),
    risk!(53, "malware_host_contacted", "Client Contacted A Malware Host", Severe, 90, Security, Some(98)),
    risk!(54, "binary_data_transfer", "Binary File/Data Transfer (Attempt)", Medium, 50, Security, Some(99)),
    risk!(55, "probing_attempt", "Probing Attempt", Medium, 50, Security, Some(101)),
    // nDPI raises it; ntopng maps no alert to it.
    risk!(56, "obfuscated_traffic", "Obfuscated Traffic", High, 50, Security, None),
];

/// The catalogue entry of `id`.
pub fn by_id(id: u16) -> Option<&'static RiskInfo> {
    CATALOGUE.iter().find(|r| r.id == id)
}

/// The catalogue entry of `key` (snake_case; an `NDPI_` prefix and upper case are accepted).
pub fn by_key(key: &str) -> Option<&'static RiskInfo> {
    let key = key.strip_prefix("NDPI_").unwrap_or(key);
    CATALOGUE.iter().find(|r| r.key.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys_are_unique_and_ordered() {
        for pair in CATALOGUE.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{} before {}",
                pair[0].key,
                pair[1].key
            );
        }
        let mut keys: Vec<_> = CATALOGUE.iter().map(|r| r.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), CATALOGUE.len());
    }

    #[test]
    fn lookups_accept_ndpi_spelling() {
        assert_eq!(
            by_key("NDPI_TLS_SELFSIGNED_CERTIFICATE").map(|r| r.id),
            Some(6)
        );
        assert_eq!(by_id(36).map(|r| r.key), Some("clear_text_credentials"));
        assert!(by_key("no_such_risk").is_none());
    }

    #[test]
    fn split_follows_ntopng() {
        let cert_expired = by_key("tls_certificate_expired").unwrap();
        assert_eq!(cert_expired.split(), (10, 90));
        let xss = by_key("url_possible_xss").unwrap();
        assert_eq!(xss.split(), (135, 15));
    }
}
