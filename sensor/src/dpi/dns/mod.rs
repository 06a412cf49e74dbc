//! DNS (RFC 1035 §4), also as MDNS (RFC 6762) and LLMNR (RFC 4795), over UDP and TCP (2-byte
//! length prefix, RFC 1035 §4.2.2): the query name, type, response code and up to
//! [`MAX_LIST`] answers as text, and nDPI's DNS risks.
//!
//! Must not: follow more than [`MAX_JUMPS`] compression pointers per name, read past the
//! message, or keep more than bounded text.

mod dga;
pub mod mdns;

pub use dga::is_dga;

use netwarden_api::flow::DnsInfo;

use super::rid;
use super::util::{MAX_HOST, MAX_LIST, Reader, text};

/// Most compression pointers followed while reading one name (loop protection).
pub const MAX_JUMPS: usize = 16;
/// Names longer than this are "Long DNS host name" (nDPI's `dns_suspicious_traffic`).
pub const LONG_NAME: usize = 64;

/// Why a message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Shorter than the 12-byte header.
    #[error("DNS message shorter than its header")]
    Short,
    /// A count, name or record runs past the end, or a pointer loops.
    #[error("malformed DNS message at byte {0}")]
    Malformed(usize),
}

/// One parsed DNS message (only what the flow record and the risks need).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit.
    pub is_response: bool,
    /// RCODE.
    pub rcode: u8,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// First question name, bounded, as text (non-printable bytes kept as read, lossily).
    pub query: String,
    /// First question type.
    pub qtype: u16,
    /// Whether the query name holds characters outside `[A-Za-z0-9-_.]`.
    pub invalid_chars: bool,
    /// Answers (A, AAAA, CNAME, PTR, NS) as text, at most [`MAX_LIST`].
    pub answers: Vec<String>,
    /// Whether a record after the question could not be parsed.
    pub truncated_records: bool,
}

/// Whether `payload` is plausibly a DNS message (header sanity only: opcode, counts).
pub fn looks_like_dns(payload: &[u8]) -> bool {
    let mut r = Reader::new(payload);
    let (Some(_id), Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) =
        (r.u16(), r.u16(), r.u16(), r.u16(), r.u16(), r.u16())
    else {
        return false;
    };
    let opcode = (flags >> 11) & 0xf;
    let is_response = flags & 0x8000 != 0;
    opcode <= 5
        && qd <= 16
        && an <= 256
        && ns <= 256
        && ar <= 256
        && (qd > 0 || is_response)
        && payload.len() > 12
}

/// Parses one DNS message.
pub fn parse(msg: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut r = Reader::new(msg);
    let (Some(id), Some(flags), Some(qd), Some(an), Some(_ns), Some(_ar)) =
        (r.u16(), r.u16(), r.u16(), r.u16(), r.u16(), r.u16())
    else {
        return Err(DnsError::Short);
    };
    let mut out = DnsMessage {
        id,
        is_response: flags & 0x8000 != 0,
        rcode: (flags & 0xf) as u8,
        qdcount: qd,
        ancount: an,
        ..DnsMessage::default()
    };
    let mut name = Vec::with_capacity(64);
    for i in 0..qd {
        name.clear();
        read_name(msg, &mut r, &mut name).ok_or(DnsError::Malformed(r.pos()))?;
        let (Some(qtype), Some(_class)) = (r.u16(), r.u16()) else {
            return Err(DnsError::Malformed(r.pos()));
        };
        if i == 0 {
            out.invalid_chars = name
                .iter()
                .any(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
            out.query = text(&name, MAX_HOST);
            out.qtype = qtype;
        }
    }
    for _ in 0..an {
        name.clear();
        let rec = (|| {
            read_name(msg, &mut r, &mut name)?;
            let (ty, _class, _ttl) = (r.u16()?, r.u16()?, r.u32()?);
            let rdata = r.vec16()?;
            Some((ty, rdata))
        })();
        let Some((ty, rdata)) = rec else {
            out.truncated_records = true;
            break;
        };
        if out.answers.len() >= MAX_LIST {
            continue;
        }
        let answer = match (ty, rdata.len()) {
            (1, 4) => netwarden_api::flow::ip_from_bytes(rdata).map(|a| a.to_string()),
            (28, 16) => netwarden_api::flow::ip_from_bytes(rdata).map(|a| a.to_string()),
            (2 | 5 | 12, _) => {
                // The name in rdata may point back into the message.
                let start = msg.len() - r.rest().len() - rdata.len();
                let mut rr = Reader::new(msg);
                let mut target = Vec::with_capacity(64);
                rr.skip(start)
                    .and_then(|()| read_name(msg, &mut rr, &mut target))
                    .map(|()| text(&target, MAX_HOST))
            }
            _ => None,
        };
        if let Some(a) = answer {
            out.answers.push(a);
        }
    }
    Ok(out)
}

/// Reads a possibly compressed name at `r` into `out` (dot-separated, at most 255 bytes);
/// leaves `r` after the name's in-place bytes. `None` on overrun or too many jumps.
fn read_name<'a>(msg: &'a [u8], r: &mut Reader<'a>, out: &mut Vec<u8>) -> Option<()> {
    let mut cur = *r;
    let mut jumped = false;
    for _ in 0..MAX_JUMPS {
        loop {
            let len = cur.u8()?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    if !jumped {
                        *r = cur;
                    }
                    return Some(());
                }
                0x00 => {
                    let label = cur.take(usize::from(len))?;
                    if out.len() + label.len() < 256 {
                        if !out.is_empty() {
                            out.push(b'.');
                        }
                        out.extend_from_slice(label);
                    }
                }
                0xc0 => {
                    let off = usize::from(len & 0x3f) << 8 | usize::from(cur.u8()?);
                    if !jumped {
                        *r = cur;
                        jumped = true;
                    }
                    cur = Reader::new(msg);
                    cur.skip(off)?;
                    break;
                }
                _ => return None, // 0x40/0x80: extended label types, not supported.
            }
        }
    }
    None
}

/// What the DNS dissector learned about a flow.
#[derive(Debug, Default)]
pub struct DnsFlow {
    /// Record form.
    pub info: DnsInfo,
    /// Query name, lower-cased (the flow's hostname).
    pub host: String,
    query_seen: bool,
    response_seen: bool,
    invalid_chars: bool,
    malformed: bool,
    large: Option<usize>,
    /// Whether sizes are judged (plain DNS, not MDNS/LLMNR).
    pub check_size: bool,
    /// Whether the flow is mDNS: responses add their DNS-SD service types to
    /// `info.mdns_services`.
    pub mdns: bool,
    /// Partial TCP message bytes.
    tcp_buf: Vec<u8>,
}

impl DnsFlow {
    /// Whether both a query and a response were parsed.
    pub fn is_done(&self) -> bool {
        self.query_seen && self.response_seen
    }

    /// Whether at least one message parsed.
    pub fn is_confirmed(&self) -> bool {
        self.query_seen || self.response_seen
    }

    /// Frees the TCP buffer.
    pub fn shrink(&mut self) {
        self.tcp_buf = Vec::new();
    }

    /// Feeds one UDP datagram or TCP segment.
    pub fn on_payload(&mut self, tcp: bool, fragmented: bool, payload: &[u8], max: usize) {
        if !tcp {
            if self.check_size && payload.len() > 512 {
                self.large = Some(payload.len());
            }
            let malformed = self.malformed;
            self.on_message(payload);
            if fragmented {
                // Only the first fragment is seen: records cut short are expected.
                self.malformed = malformed;
            }
            return;
        }
        let mut buf = std::mem::take(&mut self.tcp_buf);
        let data: &[u8] = if buf.is_empty() {
            payload
        } else {
            buf.extend_from_slice(payload);
            &buf
        };
        let mut r = Reader::new(data);
        let mut used = 0;
        while let Some(msg) = r.vec16() {
            used = r.pos();
            self.on_message(msg);
        }
        let rest = data.get(used..).unwrap_or_default();
        if rest.len() <= max {
            let rest = rest.to_vec();
            buf.clear();
            buf.extend_from_slice(&rest);
            self.tcp_buf = buf;
        }
    }

    fn on_message(&mut self, msg: &[u8]) {
        match parse(msg) {
            Ok(m) => {
                if m.truncated_records {
                    self.malformed = true;
                }
                if m.qdcount > 0 && (self.info.query.is_empty() || !self.query_seen) {
                    self.host = m.query.to_ascii_lowercase();
                    self.info.query.clone_from(&m.query);
                    self.info.query_type = u32::from(m.qtype);
                    self.invalid_chars |= m.invalid_chars;
                }
                if m.is_response {
                    if self.mdns {
                        mdns::services(msg, &mut self.info.mdns_services);
                    }
                    self.response_seen = true;
                    self.info.rcode = u32::from(m.rcode);
                    if self.info.answers.is_empty() {
                        self.info.answers = m.answers;
                    }
                } else {
                    self.query_seen = true;
                }
            }
            Err(_) => self.malformed = true,
        }
    }

    /// DNS risks (nDPI `dns.c` semantics where documented; see README of this module).
    pub fn risks(&self, known_host: bool, out: &mut super::Risks) {
        if self.response_seen && self.info.rcode != 0 {
            out.set(
                rid::ERROR_CODE_DETECTED,
                Some(format!("DNS Error Code {}", rcode_name(self.info.rcode))),
            );
        }
        if let Some(len) = self.large {
            out.set(
                rid::DNS_LARGE_PACKET,
                Some(format!("{len} Bytes DNS Packet")),
            );
        }
        if self.malformed {
            out.set(rid::MALFORMED_PACKET, None);
        }
        if self.invalid_chars {
            out.set(
                rid::INVALID_CHARACTERS,
                Some("Invalid chars detected in domain name".into()),
            );
        }
        if self.host.len() > LONG_NAME {
            out.set(
                rid::DNS_SUSPICIOUS_TRAFFIC,
                Some("Long DNS host name".into()),
            );
        }
        if self.host.split('.').any(|l| l.starts_with("xn--")) {
            out.set(rid::PUNYCODE_IDN, Some(self.host.clone()));
        }
        if !known_host && is_dga(&self.host) {
            out.set(rid::SUSPICIOUS_DGA_DOMAIN, Some(self.host.clone()));
        }
    }
}

/// RFC 1035/2136 name of an RCODE.
fn rcode_name(rcode: u32) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "other",
    }
}

#[cfg(test)]
pub(crate) mod tests;
