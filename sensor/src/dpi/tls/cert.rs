//! X.509 certificates (RFC 5280) from a TLS/DTLS Certificate message, parsed with
//! `x509-parser`, summarised the way nDPI prints them: distinguished names as
//! `C=US, O=Let's Encrypt, CN=R3` (attributes C, ST, L, O, OU, CN in the order they appear),
//! SANs as text, validity as Unix seconds, SHA-1 of the DER in lower-case hex.

use netwarden_api::flow::TlsCertificate;
use sha1::{Digest as _, Sha1};
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate, X509Name};

use crate::dpi::util::{MAX_FIELD, MAX_HOST, MAX_LIST, hex, text, truncate};

/// Most SANs examined for the mismatch check (a hostile certificate may carry thousands).
pub const MAX_SAN_SCAN: usize = 1024;

/// What the DPI keeps of one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSummary {
    /// The record form (SANs capped at [`MAX_LIST`]).
    pub cert: TlsCertificate,
    /// Whether a SAN extension with at least one DNS name or address is present.
    pub has_san: bool,
    /// Whether `sni` matched a SAN (computed by [`summarize`] when an SNI is given).
    pub sni_matches: bool,
}

/// Parses one DER certificate; `None` when it is not a certificate. `sni` (lower-case) is
/// matched against every SAN (up to [`MAX_SAN_SCAN`]) with RFC 6125 wildcard rules.
pub fn summarize(der: &[u8], sni: Option<&str>) -> Option<CertSummary> {
    let (_, x509) = X509Certificate::from_der(der).ok()?;
    let subject = dn(x509.subject());
    let issuer = dn(x509.issuer());
    let mut out = CertSummary {
        cert: TlsCertificate {
            self_signed: !subject.is_empty() && subject == issuer,
            subject,
            issuer,
            san: Vec::new(),
            not_before: x509.validity().not_before.timestamp(),
            not_after: x509.validity().not_after.timestamp(),
            sha1: hex(&Sha1::digest(der)),
        },
        ..CertSummary::default()
    };
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in san.value.general_names.iter().take(MAX_SAN_SCAN) {
            let entry = match name {
                GeneralName::DNSName(d) => text(d.as_bytes(), MAX_HOST),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 | 16 => netwarden_api::flow::ip_from_bytes(ip).map(|a| a.to_string())?,
                    _ => continue,
                },
                _ => continue,
            };
            out.has_san = true;
            if let Some(sni) = sni {
                out.sni_matches |= host_matches(sni, &entry);
            }
            if out.cert.san.len() < MAX_LIST {
                out.cert.san.push(entry);
            }
        }
    }
    Some(out)
}

/// The issuer DN of a certificate in nDPI's form (for chain issuers); `None` if not parseable.
pub fn issuer_of(der: &[u8]) -> Option<String> {
    let (_, x509) = X509Certificate::from_der(der).ok()?;
    Some(dn(x509.issuer()))
}

/// `C=.., ST=.., L=.., O=.., OU=.., CN=..` in the order the attributes appear.
fn dn(name: &X509Name<'_>) -> String {
    let mut s = String::new();
    for attr in name.iter_attributes() {
        // id-at arcs (2.5.4.x): DER content 55 04 x.
        let key = match attr.attr_type().as_bytes() {
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x55, 0x04, 0x03] => "CN",
            _ => continue,
        };
        let value = attr.as_str().map_or_else(
            |_| text(attr.as_slice(), MAX_FIELD),
            |v| text(v.as_bytes(), MAX_FIELD),
        );
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(key);
        s.push('=');
        s.push_str(&value);
        if s.len() > MAX_FIELD * 2 {
            truncate(&mut s, MAX_FIELD * 2);
            break;
        }
    }
    s
}

/// Whether `host` is covered by certificate name `pattern` (case-insensitive); a leading `*.`
/// matches exactly one label (RFC 6125 §6.4.3).
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let host = host.trim_end_matches('.');
    if let Some(rest) = pattern.strip_prefix("*.") {
        host.split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail.eq_ignore_ascii_case(rest))
    } else {
        host.eq_ignore_ascii_case(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(host_matches("www.facebook.com", "*.facebook.com"));
        assert!(!host_matches("a.b.facebook.com", "*.facebook.com"));
        assert!(!host_matches("facebook.com", "*.facebook.com"));
        assert!(host_matches("Proton.ME", "proton.me"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(summarize(b"", None).is_none());
        assert!(summarize(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3], None).is_none());
    }
}
