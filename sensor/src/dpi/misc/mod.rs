//! Small payload signatures for protocols that need no per-flow state: a first-packet check
//! that names the protocol (nDPI spelling), plus the few fields worth keeping (DHCP client
//! facts, an SSDP or NetBIOS name). Each check looks at a handful of bytes and the ports;
//! every length read from the payload is checked against the payload's own length, so a
//! random payload rarely passes (the corpus test counts false positives).

use netwarden_api::flow::DhcpInfo;

use super::util::{MAX_FIELD, MAX_HOST, Reader, text};

mod signatures;

pub use signatures::{tcp_signature, udp_signature};

/// What a signature recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// A protocol with nothing more to learn.
    Proto(&'static str),
    /// A protocol and a host name read from its first message (SSDP `HOST`, NetBIOS names).
    Named(&'static str, String),
    /// A protocol carried over another one (`NetBIOS` + `SMBv1` for a NetBIOS datagram
    /// that carries SMB), with the host name.
    Sub(&'static str, &'static str, String),
    /// A DHCP message.
    Dhcp(Box<DhcpInfo>),
}

/// Checks `payload` (the first payload of the flow in either direction) against the signatures.
pub fn detect(l4: u8, sport: u16, dport: u16, payload: &[u8]) -> Option<Hit> {
    let port = |p: u16| sport == p || dport == p;
    match l4 {
        6 => {
            if payload.starts_with(b"SSH-") {
                return Some(Hit::Proto("SSH"));
            }
            if port(3389) && payload.starts_with(&[3, 0]) {
                return Some(Hit::Proto("RDP"));
            }
            if payload.starts_with(b"RFB 0") {
                return Some(Hit::Proto("VNC"));
            }
            if (port(25) || port(587))
                && (payload.starts_with(b"220 ")
                    || payload.starts_with(b"220-")
                    || payload.starts_with(b"EHLO "))
            {
                return Some(Hit::Proto("SMTP"));
            }
            if port(110) && (payload.starts_with(b"+OK") || payload.starts_with(b"USER ")) {
                return Some(Hit::Proto("POP3"));
            }
            if port(143) && payload.starts_with(b"* OK") {
                return Some(Hit::Proto("IMAP"));
            }
            if port(21)
                && (payload.starts_with(b"220 ")
                    || payload.starts_with(b"220-")
                    || payload.starts_with(b"USER "))
            {
                return Some(Hit::Proto("FTP_CONTROL"));
            }
            if port(139) && matches!(payload.first(), Some(0x81 | 0x82 | 0x85)) {
                return Some(Hit::Proto("NetBIOS"));
            }
            tcp_signature(payload).map(Hit::Proto)
        }
        17 => udp(sport, dport, payload),
        _ => None,
    }
}

fn udp(sport: u16, dport: u16, p: &[u8]) -> Option<Hit> {
    let port = |x: u16| sport == x || dport == x;
    if (port(67) || port(68)) && p.len() >= 240 && p[236..240] == [0x63, 0x82, 0x53, 0x63] {
        return Some(Hit::Dhcp(Box::new(dhcp(p))));
    }
    if port(123) && p.len() >= 48 && matches!((p[0] >> 3) & 7, 1..=4) && matches!(p[0] & 7, 1..=5) {
        return Some(Hit::Proto("NTP"));
    }
    if p.starts_with(b"M-SEARCH * HTTP/1.1")
        || p.starts_with(b"NOTIFY * HTTP/1.1")
        || (port(1900) && p.starts_with(b"HTTP/1.1 200"))
    {
        return Some(match header(p, b"host") {
            Some(h) => Hit::Named("SSDP", text(h, MAX_HOST)),
            None => Hit::Proto("SSDP"),
        });
    }
    if (port(161) || port(162))
        && let [0x30, _, ..] = p
        && p.windows(3)
            .take(6)
            .any(|w| w[0] == 2 && w[1] == 1 && w[2] <= 3)
    {
        return Some(Hit::Proto("SNMP"));
    }
    if port(514) && p.first() == Some(&b'<') && p.iter().skip(1).take(4).any(|&b| b == b'>') {
        return Some(Hit::Proto("Syslog"));
    }
    if port(138) && matches!(p.first(), Some(0x10..=0x16)) && p.len() >= 14 {
        return Some(match super::netbios::datagram(p) {
            Some((name, true)) => Hit::Sub("NetBIOS", "SMBv1", name),
            Some((name, false)) => Hit::Named("NetBIOS", name),
            None => Hit::Proto("NetBIOS"),
        });
    }
    if port(137) && p.len() >= 12 && super::dns::looks_like_dns(p) {
        return Some(match super::netbios::query_name(p) {
            Some(name) => Hit::Named("NetBIOS", name),
            None => Hit::Proto("NetBIOS"),
        });
    }
    if port(17500) && p.starts_with(b"{\"") {
        return Some(Hit::Proto("Dropbox"));
    }
    if port(57621) && p.starts_with(b"SpotUdp") {
        return Some(Hit::Proto("Spotify"));
    }
    if port(3544)
        && p.len() >= 40
        && (p[0] >> 4 == 6 || p.starts_with(&[0, 1]) || p.starts_with(&[0, 0]))
    {
        return Some(Hit::Proto("Teredo"));
    }
    if port(5351) && p.first() == Some(&0) && p.len() >= 2 {
        return Some(Hit::Proto("NAT-PMP"));
    }
    // WireGuard (whitepaper §5.4): type 1..4 then three reserved zero bytes, fixed sizes.
    if let [t @ 1..=4, 0, 0, 0, ..] = p {
        let ok = matches!((t, p.len()), (1, 148) | (2, 92) | (3, 64))
            || (*t == 4 && p.len() >= 32 && p.len().is_multiple_of(16));
        if ok {
            return Some(Hit::Proto("WireGuard"));
        }
    }
    if super::quic::is_quic(p) {
        return Some(Hit::Proto("QUIC"));
    }
    udp_signature(sport, dport, p).map(Hit::Proto)
}

/// The value of HTTP-style header `name` (lower-case) in `p`, if present.
fn header<'a>(p: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    p.split(|&b| b == b'\n').skip(1).take(32).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// DHCP (RFC 2131 §2, options RFC 2132): client MAC, host name (12), parameter list (55),
/// vendor class (60).
fn dhcp(p: &[u8]) -> DhcpInfo {
    let mut info = DhcpInfo::default();
    if p.get(2) == Some(&6)
        && let Some(mac) = p.get(28..34)
    {
        info.mac = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
    }
    let mut r = Reader::new(p.get(240..).unwrap_or_default());
    while let Some(code) = r.u8() {
        match code {
            0 => continue,
            255 => break,
            _ => {}
        }
        let Some(data) = r.vec8() else { break };
        match code {
            12 => info.hostname = text(data, MAX_HOST),
            55 => info.fingerprint = data.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
            60 => info.vendor_class = text(data, MAX_FIELD),
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(
            detect(6, 40000, 22, b"SSH-2.0-OpenSSH_8.2p1\r\n"),
            Some(Hit::Proto("SSH"))
        );
        let mut ntp = [0u8; 48];
        ntp[0] = 0x23;
        assert_eq!(detect(17, 40000, 123, &ntp), Some(Hit::Proto("NTP")));
        assert_eq!(
            detect(17, 40000, 1900, b"M-SEARCH * HTTP/1.1\r\n"),
            Some(Hit::Proto("SSDP"))
        );
        assert_eq!(
            detect(
                17,
                40000,
                1900,
                b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"
            ),
            Some(Hit::Named("SSDP", "239.255.255.250:1900".into()))
        );
        let mut wg = vec![1u8, 0, 0, 0];
        wg.resize(148, 7);
        assert_eq!(detect(17, 40000, 51820, &wg), Some(Hit::Proto("WireGuard")));
        assert_eq!(detect(17, 40000, 40001, b"hello"), None);
        for n in 0..300 {
            let _ = detect(17, 67, 68, &vec![0x63; n]);
            let _ = detect(6, 139, 21, &vec![0x81; n]);
        }
    }
}
