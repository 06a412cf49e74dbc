//! TLS and DTLS: follows the record layer (RFC 8446 §5, RFC 6347 §4.1) of both directions
//! until the handshake turns encrypted, reassembling records split over TCP segments and
//! handshake messages split over records (bounded per direction), and learns the ClientHello
//! (SNI, ALPN, versions, JA3/JA4), the ServerHello (version, cipher, ALPN, JA3S) and, up to
//! TLS 1.2, the server's certificate chain. TLS risks follow nDPI's `tls.c` semantics.
//!
//! Must not: decrypt anything, keep buffers after the handshake ([`TlsFlow::shrink`]), or grow a
//! buffer past the configured reassembly limit.

pub mod cert;
pub mod hello;
#[cfg(test)]
pub(crate) mod tests;

use super::rid;
use netwarden_api::flow::TlsInfo;

use self::cert::CertSummary;
use self::hello::{ClientHello, ServerHello, alpn_names};
use super::Risks;
use super::util::{MAX_HOST, MAX_LIST, Reader, is_ip_literal, text, u16s};

/// Handshake message types (RFC 8446 §4).
mod hs {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_HELLO_DONE: u8 = 14;
}

/// Record content types (RFC 8446 §5.1).
mod ct {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// Largest record fragment allowed (2^14 + 2048, RFC 8446 §5.2).
const MAX_RECORD: usize = 16384 + 2048;
/// Out-of-order TCP segments held per direction while waiting for the gap to fill.
const MAX_OOO: usize = 8;
/// 398 days, nDPI's limit for certificates issued after 2020-09-01.
const MAX_VALIDITY_SECS: i64 = 34_387_200;
/// 2020-09-01T00:00:00Z.
const VALIDITY_RULE_START: i64 = 1_598_918_400;
/// Certificates expiring within this many seconds of the flow raise "about to expire".
const ABOUT_TO_EXPIRE_SECS: i64 = 30 * 86_400;

/// Whether `payload` starts like a TLS record carrying a handshake (SSLv3 .. TLS 1.3).
pub fn looks_like_tls(payload: &[u8]) -> bool {
    matches!(payload, [ct::HANDSHAKE, 3, 0..=4, _, _, ..])
}

/// Whether `payload` starts like a DTLS record carrying a handshake (DTLS 1.0/1.2/1.3 wire versions).
pub fn looks_like_dtls(payload: &[u8]) -> bool {
    matches!(payload, [ct::HANDSHAKE, 0xfe, 0xff | 0xfd | 0xfc, ..]) && payload.len() >= 25
}

/// One direction of the handshake.
#[derive(Debug, Default)]
struct Dir {
    next_seq: Option<u32>,
    /// Bytes of a record not complete yet.
    rec: Vec<u8>,
    /// Bytes of a handshake message not complete yet (TLS: header included; DTLS: 4-byte header + body).
    hs: Vec<u8>,
    /// Out-of-order segments (seq, bytes).
    ooo: Vec<(u32, Vec<u8>)>,
    /// Records are encrypted from here on.
    encrypted: bool,
    /// Nothing more to learn from this direction.
    done: bool,
}

/// What the TLS dissector learned about a flow, and its reassembly state.
#[derive(Debug, Default)]
pub struct TlsFlow {
    dtls: bool,
    quic: bool,
    dirs: [Dir; 2],
    /// Learned metadata, in record form.
    pub info: TlsInfo,
    /// The SNI, lower-cased (also in `info.sni`).
    pub sni: Option<String>,
    client_hello: bool,
    server_hello: bool,
    client_version: u16,
    alpn_ext: bool,
    alpn_uncommon: Option<String>,
    esni: bool,
    suspicious_ext: Option<u16>,
    fatal_alert: bool,
    leaf: Option<CertSummary>,
    /// Packet time (Unix seconds) of the packet that completed the certificate.
    cert_time: i64,
    desync: [bool; 2],
}

impl TlsFlow {
    /// A TLS (`dtls = false`) or DTLS flow.
    pub fn new(dtls: bool) -> Self {
        Self {
            dtls,
            ..Self::default()
        }
    }

    /// The TLS state of a QUIC flow: the ClientHello comes from CRYPTO frames
    /// ([`crate::dpi::quic`]), JA4 starts with `q`, and the TLS-over-TCP-only risks are off.
    pub fn quic() -> Self {
        Self {
            quic: true,
            ..Self::default()
        }
    }

    /// Whether the handshake was seen far enough that nothing more can be learned.
    pub fn is_done(&self) -> bool {
        self.dirs[0].done && self.dirs[1].done
    }

    /// Whether a ClientHello or ServerHello was parsed (the flow is TLS for sure).
    pub fn is_confirmed(&self) -> bool {
        self.client_hello || self.server_hello
    }

    /// Frees reassembly buffers.
    pub fn shrink(&mut self) {
        for d in &mut self.dirs {
            d.rec = Vec::new();
            d.hs = Vec::new();
            d.ooo = Vec::new();
        }
    }

    /// Feeds one TCP segment (or UDP datagram for DTLS) of direction `from_client`.
    pub fn on_payload(
        &mut self,
        from_client: bool,
        seq: Option<u32>,
        mut payload: &[u8],
        ts_ns: u64,
        max: usize,
    ) {
        let di = usize::from(!from_client);
        if self.dirs[di].done || payload.is_empty() {
            return;
        }
        if self.dtls {
            self.feed(di, payload, ts_ns, max);
            return;
        }
        if let (Some(seq), Some(next)) = (seq, self.dirs[di].next_seq) {
            let delta = seq.wrapping_sub(next) as i32;
            if delta < 0 {
                // Retransmission or overlap: keep only what is new.
                let old = delta.unsigned_abs() as usize;
                if old >= payload.len() {
                    return;
                }
                payload = &payload[old..];
            } else if delta > 0 {
                let d = &mut self.dirs[di];
                let held: usize = d.ooo.iter().map(|(_, b)| b.len()).sum();
                if d.ooo.len() < MAX_OOO && held + payload.len() <= max {
                    d.ooo.push((seq, payload.to_vec()));
                }
                return;
            }
        }
        // After trimming, `payload` starts at the expected position.
        let mut next = self.dirs[di]
            .next_seq
            .or(seq)
            .map(|s| s.wrapping_add(payload.len() as u32));
        self.dirs[di].next_seq = next;
        self.feed(di, payload, ts_ns, max);
        // Drain held segments that the stream has reached.
        while let Some(n) = next {
            let d = &mut self.dirs[di];
            let Some(i) = d.ooo.iter().position(|(s, b)| {
                let delta = s.wrapping_sub(n) as i32;
                delta <= 0 && (delta.unsigned_abs() as usize) < b.len()
            }) else {
                break;
            };
            let (s, bytes) = d.ooo.swap_remove(i);
            let skip = n.wrapping_sub(s) as usize;
            let fresh = &bytes[skip..];
            next = Some(n.wrapping_add(fresh.len() as u32));
            self.dirs[di].next_seq = next;
            self.feed(di, fresh, ts_ns, max);
            if self.dirs[di].done {
                break;
            }
        }
    }

    /// Record layer: consumes whole records, keeps a partial one.
    fn feed(&mut self, di: usize, data: &[u8], ts_ns: u64, max: usize) {
        if self.desync[di] {
            return;
        }
        if self.dirs[di].rec.is_empty() {
            let used = self.records(di, data, ts_ns, max);
            let rest = &data[used.min(data.len())..];
            if !rest.is_empty() && !self.dirs[di].done && !self.dtls {
                if rest.len() > max {
                    self.desync[di] = true;
                } else {
                    self.dirs[di].rec.extend_from_slice(rest);
                }
            }
        } else {
            let mut buf = std::mem::take(&mut self.dirs[di].rec);
            if buf.len() + data.len() > max {
                self.desync[di] = true;
                self.dirs[di].done = true;
                return;
            }
            buf.extend_from_slice(data);
            let used = self.records(di, &buf, ts_ns, max);
            buf.drain(..used.min(buf.len()));
            if !self.dirs[di].done {
                self.dirs[di].rec = buf;
            }
        }
    }

    /// Handles every complete record at the start of `data`; returns the bytes consumed.
    fn records(&mut self, di: usize, data: &[u8], ts_ns: u64, max: usize) -> usize {
        let hdr = if self.dtls { 13 } else { 5 };
        let mut off = 0;
        while !self.dirs[di].done {
            let Some(h) = data.get(off..off + hdr) else {
                break;
            };
            let ty = h[0];
            let len = usize::from(u16::from_be_bytes([h[hdr - 2], h[hdr - 1]]));
            let version_ok = if self.dtls { h[1] == 0xfe } else { h[1] == 3 };
            if !(ct::CHANGE_CIPHER_SPEC..=ct::HEARTBEAT).contains(&ty)
                || !version_ok
                || len > MAX_RECORD
            {
                // Not (or no longer) a TLS stream we can follow.
                self.desync[di] = true;
                self.dirs[di].done = true;
                return data.len();
            }
            let Some(frag) = data.get(off + hdr..off + hdr + len) else {
                break;
            };
            off += hdr + len;
            self.record(di, ty, frag, ts_ns, max);
        }
        off
    }

    fn record(&mut self, di: usize, ty: u8, frag: &[u8], ts_ns: u64, max: usize) {
        match ty {
            ct::HANDSHAKE if !self.dirs[di].encrypted => {
                if self.dtls {
                    self.dtls_handshake(di, frag, ts_ns, max);
                } else {
                    self.tls_handshake(di, frag, ts_ns, max);
                }
            }
            ct::CHANGE_CIPHER_SPEC => {
                self.dirs[di].encrypted = true;
                self.dirs[di].done = true;
            }
            ct::ALERT if !self.dirs[di].encrypted && frag.len() == 2 && frag[0] == 2 => {
                self.fatal_alert = true;
            }
            ct::APPLICATION_DATA => self.dirs[di].done = true,
            _ => {}
        }
    }

    /// TLS handshake layer: messages may span records and records may hold several messages.
    fn tls_handshake(&mut self, di: usize, frag: &[u8], ts_ns: u64, max: usize) {
        let mut buf = std::mem::take(&mut self.dirs[di].hs);
        let data: &[u8] = if buf.is_empty() {
            frag
        } else {
            buf.extend_from_slice(frag);
            &buf
        };
        let mut r = Reader::new(data);
        let mut used = 0;
        loop {
            let start = r.pos();
            let (Some(ty), Some(len)) = (r.u8(), r.u24()) else {
                break;
            };
            let Some(body) = r.take(len) else {
                // Incomplete: a Certificate too large for the buffer still yields its leaf.
                if ty == hs::CERTIFICATE && len + 4 > max {
                    self.certificate(data.get(start + 4..).unwrap_or_default(), ts_ns);
                    self.dirs[di].done = true;
                    return;
                }
                break;
            };
            used = r.pos();
            self.handshake_message(di, ty, body, ts_ns);
            if self.dirs[di].done {
                return;
            }
        }
        let rest = &data[used..];
        if rest.len() > max {
            self.dirs[di].done = true;
            return;
        }
        let rest = rest.to_vec();
        buf.clear();
        buf.extend_from_slice(&rest);
        self.dirs[di].hs = buf;
    }

    /// DTLS handshake layer: 12-byte headers with fragment offsets (RFC 6347 §4.2.2); fragments
    /// are reassembled when they arrive in order.
    fn dtls_handshake(&mut self, di: usize, frag: &[u8], ts_ns: u64, max: usize) {
        let mut r = Reader::new(frag);
        while let (Some(ty), Some(len), Some(_seq), Some(off), Some(flen)) =
            (r.u8(), r.u24(), r.u16(), r.u24(), r.u24())
        {
            let Some(body) = r.take(flen) else { return };
            if len > max {
                if ty == hs::CERTIFICATE && off == 0 {
                    self.certificate(body, ts_ns);
                    self.dirs[di].done = true;
                }
                return;
            }
            if off == 0 && flen == len {
                self.handshake_message(di, ty, body, ts_ns);
            } else {
                let d = &mut self.dirs[di];
                if off == 0 {
                    d.hs.clear();
                    d.hs.push(ty);
                    d.hs.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
                }
                if d.hs.len() >= 4 && d.hs[0] == ty && d.hs.len() - 4 == off {
                    d.hs.extend_from_slice(body);
                    if d.hs.len() - 4 >= len {
                        let msg = std::mem::take(&mut d.hs);
                        self.handshake_message(
                            di,
                            ty,
                            msg.get(4..4 + len).unwrap_or_default(),
                            ts_ns,
                        );
                    }
                }
            }
            if self.dirs[di].done {
                return;
            }
        }
    }

    /// Handles one handshake message. Dispatch is by message type, not direction, so a flow
    /// whose client was guessed wrong (capture started after the SYN) is still understood.
    fn handshake_message(&mut self, di: usize, ty: u8, body: &[u8], ts_ns: u64) {
        match ty {
            hs::CLIENT_HELLO if !self.client_hello => {
                if let Some(ch) = hello::parse_client_hello(body, self.dtls) {
                    self.client_hello(&ch);
                }
                self.dirs[di].done = true;
            }
            hs::SERVER_HELLO if !self.server_hello => {
                if let Some(sh) = hello::parse_server_hello(body, self.dtls) {
                    self.server_hello(&sh);
                    if matches!(sh.negotiated_version(), 0x0304 | 0xfefc) {
                        // TLS 1.3: everything after the ServerHello is encrypted.
                        self.dirs[di].done = true;
                    }
                }
            }
            hs::CERTIFICATE if self.server_hello => self.certificate(body, ts_ns),
            hs::SERVER_HELLO_DONE => self.dirs[di].done = true,
            _ => {}
        }
    }

    /// Records a host name learned outside a ClientHello (Google QUIC's CHLO).
    pub fn set_sni(&mut self, sni: &[u8]) {
        let mut s = text(sni, MAX_HOST);
        s.make_ascii_lowercase();
        self.info.sni.clone_from(&s);
        self.sni = Some(s);
    }

    /// Learns what a ClientHello tells (also used by QUIC, whose CRYPTO frames carry one).
    pub fn client_hello(&mut self, ch: &ClientHello<'_>) {
        self.client_hello = true;
        self.client_version = ch.max_version();
        if let Some(sni) = ch.sni {
            self.set_sni(sni);
        }
        if let Some(list) = ch.alpn {
            self.alpn_ext = true;
            let mut any = false;
            for name in alpn_names(list) {
                any = true;
                let name = text(name, 64);
                if self.alpn_uncommon.is_none() && !is_common_alpn(&name) {
                    self.alpn_uncommon = Some(name.clone());
                }
                if self.info.alpn_offered.len() < MAX_LIST {
                    self.info.alpn_offered.push(name);
                }
            }
            if !any {
                self.alpn_uncommon = Some(String::new());
            }
        }
        self.info.supported_versions = u16s(ch.supported_versions)
            .take(MAX_LIST)
            .map(u32::from)
            .collect();
        self.esni = ch.esni;
        self.suspicious_ext = ch.suspicious_ext;
        self.info.ja3c = ch.ja3();
        let transport = if self.quic {
            'q'
        } else if self.dtls {
            'd'
        } else {
            't'
        };
        self.info.ja4 = ch.ja4(transport);
        if self.info.version == 0 {
            self.info.version = u32::from(self.client_version);
        }
    }

    fn server_hello(&mut self, sh: &ServerHello<'_>) {
        self.server_hello = true;
        self.info.version = u32::from(sh.negotiated_version());
        self.info.cipher = u32::from(sh.cipher);
        if let Some(alpn) = sh.alpn {
            self.info.alpn_negotiated = text(alpn, 64);
        }
        self.info.ja3s = sh.ja3s();
    }

    /// A Certificate body (`certificate_list`, RFC 5246 §7.4.2), possibly truncated after the leaf.
    fn certificate(&mut self, body: &[u8], ts_ns: u64) {
        if self.leaf.is_some() {
            return;
        }
        let mut r = Reader::new(body);
        let Some(_total) = r.u24() else { return };
        let mut first = true;
        while let Some(der) = r.vec24() {
            if first {
                let Some(summary) = cert::summarize(der, self.sni.as_deref()) else {
                    return;
                };
                self.info.certificate = Some(summary.cert.clone());
                self.leaf = Some(summary);
                self.cert_time = (ts_ns / 1_000_000_000) as i64;
                first = false;
            } else if self.info.chain_issuers.len() < MAX_LIST
                && let Some(issuer) = cert::issuer_of(der)
            {
                self.info.chain_issuers.push(issuer);
            }
        }
    }

    /// The negotiated version, else the client's highest.
    fn version(&self) -> u16 {
        if self.server_hello {
            self.info.version as u16
        } else {
            self.client_version
        }
    }

    /// TLS risks with nDPI's semantics (REFERENCE.md §11), from what was learned so far.
    pub fn risks(&self, out: &mut Risks) {
        let version = self.version();
        // DTLS versions count down (0xfeff = 1.0); nDPI checks ALPN on every DTLS flow.
        let tls12_or_later = self.dtls || version >= 0x0303;
        if (self.client_hello || self.server_hello)
            && !self.dtls
            && version != 0
            && version < 0x0303
            && !self.quic
        {
            out.set(rid::TLS_OBSOLETE_VERSION, None);
        }
        if self.server_hello && weak_cipher(self.info.cipher as u16) {
            out.set(
                rid::TLS_WEAK_CIPHER,
                Some(format!("Cipher 0x{:04x}", self.info.cipher)),
            );
        }
        if self.fatal_alert {
            out.set(rid::TLS_FATAL_ALERT, None);
        }
        if self.client_hello {
            let version_for_sni = if self.dtls {
                0xffff
            } else {
                self.client_version
            };
            match &self.sni {
                None if version_for_sni >= 0x0302 && !self.esni => {
                    out.set(rid::TLS_MISSING_SNI, None);
                    if self.info.alpn_offered.iter().any(|a| a.starts_with('h')) {
                        out.set(rid::TLS_ALPN_SNI_MISMATCH, None);
                    }
                }
                Some(sni) if is_ip_literal(sni) => out.set(rid::NUMERIC_IP_HOST, Some(sni.clone())),
                _ => {}
            }
            if self.esni && self.sni.is_some() {
                out.set(rid::TLS_SUSPICIOUS_ESNI_USAGE, None);
            }
            if !self.alpn_ext && tls12_or_later && !self.quic {
                out.set(rid::TLS_NOT_CARRYING_HTTPS, Some("No ALPN".into()));
            }
            if let Some(alpn) = &self.alpn_uncommon {
                out.set(rid::TLS_UNCOMMON_ALPN, Some(alpn.clone()));
            }
            if let Some(ext) = self.suspicious_ext {
                out.set(
                    rid::TLS_SUSPICIOUS_EXTENSION,
                    Some(format!("Extn id {ext}")),
                );
            }
        }
        if let Some(leaf) = &self.leaf {
            let c = &leaf.cert;
            if c.self_signed {
                out.set(rid::TLS_SELFSIGNED_CERTIFICATE, Some(c.issuer.clone()));
            }
            let now = self.cert_time;
            if now < c.not_before || now > c.not_after {
                out.set(rid::TLS_CERTIFICATE_EXPIRED, None);
            } else if c.not_after - now <= ABOUT_TO_EXPIRE_SECS {
                out.set(rid::TLS_CERTIFICATE_ABOUT_TO_EXPIRE, None);
            }
            if c.not_before >= VALIDITY_RULE_START && c.not_after - c.not_before > MAX_VALIDITY_SECS
            {
                let days = (c.not_after - c.not_before) / 86_400;
                out.set(
                    rid::TLS_CERT_VALIDITY_TOO_LONG,
                    Some(format!("TLS Cert lasts {days} days")),
                );
            }
            if self.sni.is_some() && leaf.has_san && !leaf.sni_matches {
                out.set(rid::TLS_CERTIFICATE_MISMATCH, self.sni.clone());
            }
        }
    }
}

/// nDPI's `ndpi_is_safe_ssl_cipher` "weak" class: static-RSA key exchange and 3DES/IDEA/SEED.
/// RC4 is "insecure" in nDPI and, as its code tests `== WEAK`, does not raise the risk.
pub fn weak_cipher(cipher: u16) -> bool {
    matches!(
        cipher,
        0x009d
            | 0x003d
            | 0x0035
            | 0x0084
            | 0x009c
            | 0x003c
            | 0x002f
            | 0x0041
            | 0xc012
            | 0x000a
            | 0x0096
            | 0x0007
    )
}

/// ALPN values nDPI considers common (its `common_alpns` list, by family).
pub fn is_common_alpn(alpn: &str) -> bool {
    const EXACT: &[&str] = &[
        "http/0.9",
        "http/1.0",
        "http/1.1",
        "h2",
        "h2c",
        "h3",
        "hq-interop",
        "webrtc",
        "c-webrtc",
        "ftp",
        "imap",
        "pop3",
        "managesieve",
        "coap",
        "xmpp-client",
        "xmpp-server",
        "acme-tls/1",
        "mqtt",
        "dot",
        "doq",
        "ntske/1",
        "sunrpc",
        "smb",
        "irc",
        "nntp",
        "nnsp",
        "sip/2",
        "tds/8.0",
        "dicom",
        "postgresql",
        "radius/1.0",
        "radius/1.1",
        "grpc-exp",
        "h2-fb",
    ];
    const PREFIX: &[&str] = &["spdy/", "h2-", "h3-", "hq-", "doq-", "stun."];
    EXACT.contains(&alpn) || PREFIX.iter().any(|p| alpn.starts_with(p))
}
