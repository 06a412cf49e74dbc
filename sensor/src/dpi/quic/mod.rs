//! QUIC: recognises QUIC long headers (RFC 9000 §17.2; v1, v2, IETF drafts, Google Q0xx,
//! Facebook mvfst) and, for v1, v2 (RFC 9369) and drafts 23–34, opens the client's Initial
//! packets (RFC 9001 §5), reassembles the TLS ClientHello from their CRYPTO frames, possibly
//! over several packets, and hands it to the TLS dissector ([`TlsFlow::client_hello`]): SNI,
//! ALPN, versions, JA3C, JA4 (`q`) and the TLS risks with QUIC's exceptions.
//!
//! Must not: decrypt anything but client Initials (no Handshake or 1-RTT keys exist here), hold
//! the CRYPTO buffer after the ClientHello (or past the reassembly limit), or allocate for a
//! flow that is not QUIC (the flow is only claimed after [`is_quic`]).

pub mod initial;
#[cfg(test)]
pub(crate) mod tests;

use self::initial::{Flavor, MAX_CID};
use super::tls::TlsFlow;
use super::tls::hello;
use super::util::Reader;

/// Client Initials that do not open (other keys, a server's Initial, garbage) before giving up.
const MAX_FAILED: u8 = 8;
/// Out-of-order CRYPTO ranges tracked.
const MAX_RANGES: usize = 32;

/// Whether `p` starts with a QUIC long header (RFC 9000 §17.2) of a known version: v1, v2,
/// IETF drafts, Google Q0xx, Facebook mvfst.
pub fn is_quic(p: &[u8]) -> bool {
    let [first, v0, v1, v2, v3, ..] = p else {
        return false;
    };
    if first & 0x80 == 0 || p.len() < 20 {
        return false;
    }
    let v = u32::from_be_bytes([*v0, *v1, *v2, *v3]);

    v == initial::V1
        || v == initial::V2
        || (v & 0xffff_ff00) == 0xff00_0000
        || (v & 0xffff_fff0) == 0xface_b000
        || (&p[1..3] == b"Q0" && p[3].is_ascii_digit())
}

/// The version as nDPI prints it (`V-1`, `V-2`, `Draft-29`, `Q046`), empty when unknown.
pub fn version_name(v: u32) -> String {
    match v {
        initial::V1 => "V-1".into(),
        initial::V2 => "V-2".into(),
        _ if v & 0xffff_ff00 == 0xff00_0000 => format!("Draft-{}", v & 0xff),
        _ => {
            let b = v.to_be_bytes();
            if b[0] == b'Q' && b.iter().all(u8::is_ascii_alphanumeric) {
                b.iter().map(|c| char::from(*c)).collect()
            } else {
                String::new()
            }
        }
    }
}

/// Whether `v` is a Google QUIC version (`Q0xx`).
fn is_gquic(v: u32) -> bool {
    let b = v.to_be_bytes();
    b[0] == b'Q' && b[1..].iter().all(u8::is_ascii_digit)
}

/// The SNI tag of a Google QUIC CHLO handshake message (QUIC Crypto, "Handshake message
/// format": `CHLO`, u16 LE tag count, 2 padding bytes, (tag, u32 LE end offset) pairs, values),
/// looked for near the start of a Q0xx long-header packet sent in clear.
pub fn gquic_chlo_sni(p: &[u8]) -> Option<&[u8]> {
    const MAX_TAGS: usize = 128;
    let at = p.windows(4).take(128).position(|w| w == b"CHLO")?;
    let mut r = Reader::new(p.get(at + 4..)?);
    let n = r
        .take(2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))?;
    r.skip(2)?;
    if n > MAX_TAGS {
        return None;
    }
    let table = r.take(n * 8)?;
    let values = r.rest();
    let mut start = 0usize;
    for e in table.chunks_exact(8) {
        let end = usize::try_from(u32::from_le_bytes([e[4], e[5], e[6], e[7]])).ok()?;
        if &e[..4] == b"SNI\0" {
            return values.get(start..end).filter(|v| !v.is_empty());
        }
        start = end;
    }
    None
}

/// CRYPTO stream reassembly (RFC 9000 §19.6): bytes by offset, with the ranges received.
#[derive(Debug, Default)]
struct Crypto {
    buf: Vec<u8>,
    /// Sorted, disjoint, non-adjacent `[start, end)` ranges received.
    ranges: Vec<(usize, usize)>,
}

impl Crypto {
    /// Stores `data` at `offset`; false when it does not fit within `max` bytes.
    fn insert(&mut self, offset: u64, data: &[u8], max: usize) -> bool {
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        let Some(end) = start.checked_add(data.len()).filter(|e| *e <= max) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[start..end].copy_from_slice(data);
        let (mut s, mut e) = (start, end);
        self.ranges.retain(|&(a, b)| {
            if b < s || a > e {
                true
            } else {
                s = s.min(a);
                e = e.max(b);
                false
            }
        });
        let at = self.ranges.partition_point(|&(a, _)| a < s);
        self.ranges.insert(at, (s, e));
        self.ranges.len() <= MAX_RANGES
    }

    /// The bytes received contiguously from offset 0.
    fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => &self.buf[..end],
            _ => &[],
        }
    }
}

/// The QUIC dissector's state for one flow.
#[derive(Debug)]
pub struct QuicFlow {
    /// What the ClientHello told, in TLS form (`info.quic_version` set).
    pub tls: TlsFlow,
    /// The version of the first long header seen.
    pub version: u32,
    /// Destination connection id of the client's first Initial: the Initial keys derive from
    /// it for the whole connection (RFC 9001 §5.2).
    odcid: Option<([u8; MAX_CID], u8)>,
    crypto: Option<Box<Crypto>>,
    failed: u8,
    done: bool,
}

impl QuicFlow {
    /// A flow whose first packet is `first` (a QUIC long header, [`is_quic`]).
    pub fn new(first: &[u8]) -> Self {
        let version = first
            .get(1..5)
            .map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        let mut tls = TlsFlow::quic();
        tls.info.quic_version = version_name(version);
        Self {
            tls,
            version,
            odcid: None,
            crypto: None,
            failed: 0,
            done: Flavor::of(version).is_none() && !is_gquic(version),
        }
    }

    /// Whether nothing more can be learned (ClientHello parsed, or not decryptable).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Frees the reassembly buffer.
    pub fn shrink(&mut self) {
        self.crypto = None;
    }

    /// Feeds one UDP payload of either direction (server Initials do not open with the client
    /// keys and are skipped).
    pub fn on_payload(&mut self, payload: &[u8], max: usize) {
        if self.done {
            return;
        }
        if is_gquic(self.version) {
            // Google QUIC up to Q046 sends its CHLO in clear: only the host name is kept.
            if let Some(sni) = gquic_chlo_sni(payload) {
                self.tls.set_sni(sni);
                self.finish();
            } else {
                self.failed += 1;
                if self.failed >= MAX_FAILED {
                    self.finish();
                }
            }
            return;
        }
        let Some(init) = initial::find_initial(payload) else {
            return;
        };
        let Some(flavor) = Flavor::of(init.version) else {
            return;
        };
        let mut plain = None;
        if let Some((cid, len)) = self.odcid {
            plain = initial::client_keys(flavor, &cid[..usize::from(len)])
                .and_then(|k| initial::decrypt(&init, &k));
        }
        if plain.is_none() {
            plain =
                initial::client_keys(flavor, init.dcid).and_then(|k| initial::decrypt(&init, &k));
            if plain.is_some() && self.odcid.is_none() {
                let mut cid = [0u8; MAX_CID];
                cid[..init.dcid.len()].copy_from_slice(init.dcid);
                self.odcid = Some((cid, init.dcid.len() as u8));
            }
        }
        let Some(plain) = plain else {
            self.failed += 1;
            if self.failed >= MAX_FAILED {
                self.finish();
            }
            return;
        };
        self.on_frames(&plain, max);
    }

    /// Feeds the decrypted payload of a client Initial: its CRYPTO frames are reassembled and
    /// a complete ClientHello is handed to the TLS dissector.
    pub fn on_frames(&mut self, plain: &[u8], max: usize) {
        if self.done {
            return;
        }
        let crypto = self.crypto.get_or_insert_with(Box::default);
        let mut fits = true;
        initial::crypto_frames(plain, |off, data| {
            fits &= crypto.insert(off, data, max);
        });
        if !fits {
            self.finish();
            return;
        }
        let hs = crypto.contiguous();
        let (Some(&ty), Some(len)) = (hs.first(), hs.get(1..4)) else {
            return;
        };
        let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
        if ty != 1 || len + 4 > max {
            self.finish();
            return;
        }
        if let Some(body) = hs.get(4..4 + len) {
            if let Some(ch) = hello::parse_client_hello(body, false) {
                self.tls.client_hello(&ch);
            }
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.crypto = None;
    }
}
