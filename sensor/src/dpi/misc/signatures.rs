//! First-payload signatures that work on any port: each checks a magic value and a length or
//! framing field against the payload itself (spec section in each comment). Ports are only
//! used where the framing is too weak on its own. Names are nDPI's (`protocols.csv`).

use crate::dpi::util::Reader;

/// TCP payload signatures (first payload of either direction).
pub fn tcp_signature(p: &[u8]) -> Option<&'static str> {
    let framed_u32_be = |p: &[u8]| {
        p.get(..4)
            .is_some_and(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 4 == p.len())
    };
    // RFC 9113 §3.4: the HTTP/2 client connection preface.
    if p.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") {
        return Some("HTTP2");
    }
    // BitTorrent peer wire handshake (BEP 3): pstrlen 19, "BitTorrent protocol".
    if p.starts_with(b"\x13BitTorrent protocol") {
        return Some("BitTorrent");
    }
    // IRC (RFC 2812 §3.1): registration commands open the session.
    if irc_registration(p) {
        return Some("IRC");
    }
    // Telnet (RFC 854): option negotiation, IAC followed by WILL/WONT/DO/DONT.
    if let [0xff, 0xfb..=0xfe, _, ..] = p {
        return Some("Telnet");
    }
    // Kerberos over TCP (RFC 4120 §7.2.2): 4-byte record length, then a KDC message.
    if framed_u32_be(p) && kerberos_message(&p[4..]) {
        return Some("Kerberos");
    }
    if ldap_message(p) {
        return Some("LDAP");
    }
    // MySQL handshake v10 (server greeting): 3-byte LE length, sequence 0, protocol 10,
    // NUL-terminated server version starting with a digit.
    if let [a, b, c, 0, 10, d, ..] = p
        && usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16 == p.len() - 4
        && d.is_ascii_digit()
        && p[5..].iter().take(64).any(|&x| x == 0)
    {
        return Some("MySQL");
    }
    // PostgreSQL StartupMessage / SSLRequest / GSSENCRequest (protocol §55.7): length, then
    // 3.0 or the request code.
    if p.len() >= 8 {
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        if len == p.len() && matches!(code, 0x0003_0000 | 80_877_103 | 80_877_104) {
            return Some("PostgreSQL");
        }
    }
    // Redis RESP (array of bulk strings): "*<n>\r\n$<len>\r\n".
    if resp_command(p) {
        return Some("Redis");
    }
    // MongoDB wire protocol: LE messageLength = payload, requestID, responseTo, opCode.
    if let Some(h) = p.get(..16) {
        let le = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if le(0) as usize == p.len() && matches!(le(12), 1 | 2004 | 2012 | 2013) && le(0) >= 21 {
            return Some("MongoDB");
        }
    }
    // MQTT CONNECT (v3.1 "MQIsdp" 3, v3.1.1 "MQTT" 4, v5 "MQTT" 5): fixed header 0x10 and a
    // remaining length that matches.
    if mqtt_connect(p) {
        return Some("MQTT");
    }
    // eDonkey (protocol 0xe3, eMule extended 0xc5, packed 0xd4): LE length = rest + opcode.
    if let [0xe3 | 0xc5 | 0xd4, a, b, c, d, ..] = p
        && u32::from_le_bytes([*a, *b, *c, *d]) as usize + 5 == p.len()
    {
        return Some("eDonkey");
    }
    if kafka_request(p) {
        return Some("Kafka");
    }
    if sip_message(p) {
        return Some("SIP");
    }
    if stun_message(p) {
        return Some("STUN");
    }
    // An FTP data connection carrying a Unix `ls -l` listing.
    if ls_line(p) {
        return Some("FTP_DATA");
    }
    None
}

/// UDP payload signatures.
pub fn udp_signature(sport: u16, dport: u16, p: &[u8]) -> Option<&'static str> {
    let port = |x: u16| sport == x || dport == x;
    if sip_message(p) {
        return Some("SIP");
    }
    if stun_message(p) {
        return Some("STUN");
    }
    if kerberos_message(p) {
        return Some("Kerberos");
    }
    // Connectionless LDAP (RFC 1798) on 389.
    if port(389) && ldap_message(p) {
        return Some("LDAP");
    }
    // ISAKMP/IKE (RFC 2408 §3.1, RFC 7296 §3.1) on 500, or on 4500 after the 4-byte
    // non-ESP marker (RFC 3948 §2.2).
    if port(500) && ike_header(p) {
        return Some("IPsec");
    }
    if port(4500) && p.starts_with(&[0, 0, 0, 0]) && ike_header(&p[4..]) {
        return Some("IPsec");
    }
    // BitTorrent DHT (BEP 5): a bencoded dictionary with a transaction and a type.
    if p.starts_with(b"d1:ad2:id20:") || p.starts_with(b"d1:rd2:id20:") {
        return Some("BitTorrent");
    }
    // uTP (BEP 29): version 1 header of 20 bytes, then the peer wire handshake.
    if let [t, 0..=2, ..] = p
        && t & 0x0f == 1
        && t >> 4 <= 4
        && p.get(20..40) == Some(b"\x13BitTorrent protocol")
    {
        return Some("BitTorrent");
    }
    if rtcp_compound(p) {
        return Some("RTCP");
    }
    None
}

/// IRC registration: the first line is NICK, USER, PASS or CAP with an argument.
fn irc_registration(p: &[u8]) -> bool {
    let line = p.split(|&b| b == b'\n').next().unwrap_or_default();
    line.len() < 512
        && line.ends_with(b"\r")
        && [b"NICK ".as_slice(), b"USER ", b"PASS ", b"CAP LS"]
            .iter()
            .any(|c| line.starts_with(c))
        && line.iter().all(|&b| b >= 0x20 || b == b'\r')
}

/// A KDC or AP message (RFC 4120 §5): APPLICATION tag, DER length, SEQUENCE, then
/// `pvno [0] INTEGER 5` (or `[1]` for AS/TGS-REQ after `pvno`... which is `[1] 5`, §5.4.1).
pub(crate) fn kerberos_message(p: &[u8]) -> bool {
    // 10 AS-REQ, 11 AS-REP, 12 TGS-REQ, 13 TGS-REP, 14 AP-REQ, 15 AP-REP, 30 KRB-ERROR.
    let Some(&tag) = p.first() else { return false };
    if !matches!(tag, 0x6a..=0x6f | 0x7e) {
        return false;
    }
    let mut r = Reader::new(&p[1..]);
    let Some(len) = der_len(&mut r) else {
        return false;
    };
    if len != r.rest().len() {
        return false;
    }
    if r.u8() != Some(0x30) || der_len(&mut r).is_none() {
        return false;
    }
    // pvno is the first field: [0] for AP-REQ/AP-REP/KRB-ERROR, [1] for KDC-REQ, [0] for KDC-REP.
    matches!(r.take(5), Some([0xa0 | 0xa1, 3, 2, 1, 5]))
}

/// A DER length (short or long form up to 4 bytes).
fn der_len(r: &mut Reader<'_>) -> Option<usize> {
    let first = r.u8()?;
    if first < 0x80 {
        return Some(usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in r.take(n)? {
        len = len << 8 | usize::from(*b);
    }
    Some(len)
}

/// An LDAPMessage (RFC 4511 §4.1.1): SEQUENCE whose length is the payload, messageID
/// INTEGER, then a protocolOp APPLICATION tag.
pub(crate) fn ldap_message(p: &[u8]) -> bool {
    let mut r = Reader::new(p);
    if r.u8() != Some(0x30) {
        return false;
    }
    let Some(len) = der_len(&mut r) else {
        return false;
    };
    // A TCP segment may carry several messages: the first must fit.
    if len > r.rest().len() || len < 5 {
        return false;
    }
    if r.u8() != Some(0x02) {
        return false;
    }
    let Some(n @ 1..=4) = r.u8() else {
        return false;
    };
    if r.skip(usize::from(n)).is_none() {
        return false;
    }
    // bindRequest 0x60 … extendedResp 0x78, plus the primitive unbindRequest 0x42 and
    // delRequest 0x4a, abandonRequest 0x50.
    matches!(r.u8(), Some(0x60..=0x79 | 0x42 | 0x4a | 0x50))
}

/// A RESP array of bulk strings: `*<n>\r\n$<len>\r\n`.
fn resp_command(p: &[u8]) -> bool {
    let Some(rest) = p.strip_prefix(b"*") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=4).contains(&digits) {
        return false;
    }
    let Some(rest) = rest[digits..].strip_prefix(b"\r\n$") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=9).contains(&digits) && rest[digits..].starts_with(b"\r\n")
}

/// An MQTT CONNECT packet (MQTT 3.1.1 §3.1, 5.0 §3.1).
fn mqtt_connect(p: &[u8]) -> bool {
    let mut r = Reader::new(p);
    if r.u8() != Some(0x10) {
        return false;
    }
    // Remaining length: up to four 7-bit groups.
    let mut len = 0usize;
    for i in 0..4 {
        let Some(b) = r.u8() else { return false };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    if len != r.rest().len() {
        return false;
    }
    matches!(
        r.rest(),
        [0, 4, b'M', b'Q', b'T', b'T', 4 | 5, ..]
            | [0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, ..]
    )
}

/// A Kafka request (protocol guide "Requests"): INT32 size, INT16 api_key, INT16
/// api_version, INT32 correlation_id, NULLABLE_STRING client_id (printable).
fn kafka_request(p: &[u8]) -> bool {
    let mut r = Reader::new(p);
    let (Some(size), Some(key), Some(version), Some(_corr), Some(id_len)) =
        (r.u32(), r.u16(), r.u16(), r.u32(), r.u16())
    else {
        return false;
    };
    if size as usize + 4 != p.len() || key > 74 || version > 20 || !(1..=255).contains(&id_len) {
        return false;
    }
    r.take(usize::from(id_len))
        .is_some_and(|id| id.iter().all(u8::is_ascii_graphic))
}

/// A SIP request or response start line (RFC 3261 §7.1, §7.2).
fn sip_message(p: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"INVITE ",
        b"REGISTER ",
        b"OPTIONS ",
        b"ACK ",
        b"BYE ",
        b"CANCEL ",
        b"NOTIFY ",
        b"SUBSCRIBE ",
        b"MESSAGE ",
        b"INFO ",
        b"PRACK ",
        b"UPDATE ",
        b"REFER ",
        b"PUBLISH ",
    ];
    if p.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let Some(m) = METHODS.iter().find(|m| p.starts_with(m)) else {
        return false;
    };
    let rest = &p[m.len()..];
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    (rest.starts_with(b"sip:") || rest.starts_with(b"sips:"))
        && line.windows(7).any(|w| w == b"SIP/2.0")
}

/// A STUN message (RFC 8489 §5): two zero bits, length = payload − 20 and a multiple of 4,
/// magic cookie.
fn stun_message(p: &[u8]) -> bool {
    p.len() >= 20
        && p[0] & 0xc0 == 0
        && usize::from(u16::from_be_bytes([p[2], p[3]])) + 20 == p.len()
        && p.len().is_multiple_of(4)
        && p[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// An ISAKMP header: version 1.0 or 2.0, a known exchange type, length = payload.
fn ike_header(p: &[u8]) -> bool {
    let Some(h) = p.get(..28) else { return false };
    let len = u32::from_be_bytes([h[24], h[25], h[26], h[27]]) as usize;
    let exchange_ok = match h[17] {
        0x10 => matches!(h[18], 1..=6 | 32),
        0x20 => matches!(h[18], 34..=37),
        _ => false,
    };
    exchange_ok && len == p.len() && h[..8] != [0; 8]
}

/// A compound RTCP packet (RFC 3550 §6.1): version 2, SR/RR first, and packet lengths that
/// add up exactly to the payload.
fn rtcp_compound(p: &[u8]) -> bool {
    if !matches!(p, [b0, 200 | 201, ..] if b0 >> 6 == 2) {
        return false;
    }
    let mut off = 0usize;
    let mut count = 0;
    while off < p.len() {
        let Some(h) = p.get(off..off + 4) else {
            return false;
        };
        if h[0] >> 6 != 2 || !(200..=206).contains(&h[1]) {
            return false;
        }
        off += (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        count += 1;
        if count > 16 {
            return false;
        }
    }
    off == p.len()
}

/// A line of `ls -l` output: type and nine permission characters, then a space.
fn ls_line(p: &[u8]) -> bool {
    let Some(h) = p.get(..11) else { return false };
    let perm = |c: u8, set: &[u8]| c == b'-' || set.contains(&c);
    b"-dlcbps".contains(&h[0])
        && perm(h[1], b"r")
        && perm(h[2], b"w")
        && perm(h[3], b"xsS")
        && perm(h[4], b"r")
        && perm(h[5], b"w")
        && perm(h[6], b"xsS")
        && perm(h[7], b"r")
        && perm(h[8], b"w")
        && perm(h[9], b"xtT")
        && matches!(h[10], b' ' | b'+' | b'@' | b'.')
        && p.contains(&b'\n')
}

#[cfg(test)]
mod tests;
