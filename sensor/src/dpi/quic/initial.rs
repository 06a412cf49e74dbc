//! QUIC Initial packets: long header (RFC 9000 §17.2, §17.2.2), Initial secrets and packet
//! protection (RFC 9001 §5.2–§5.4; QUIC v2: RFC 9369 §3.3), and the frames an Initial may carry
//! (RFC 9000 §19). Pure functions over borrowed slices; the only allocation is the decrypted
//! payload of one packet (at most one datagram).

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::dpi::util::Reader;

/// QUIC v1 (RFC 9000).
pub const V1: u32 = 1;
/// QUIC v2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Longest connection id (RFC 9000 §17.2).
pub const MAX_CID: usize = 20;

/// Initial salts (RFC 9001 §5.2, RFC 9369 §3.3.1, draft-ietf-quic-tls-23/-29).
const SALT_V1: [u8; 20] =
    *b"\x38\x76\x2c\xf7\xf5\x59\x34\xb3\x4d\x17\x9a\xe6\xa4\xc8\x0c\xad\xcc\xbb\x7f\x0a";
const SALT_V2: [u8; 20] =
    *b"\x0d\xed\xe3\xde\xf7\x00\xa6\xdb\x81\x93\x81\xbe\x6e\x26\x9d\xcb\xf9\xbd\x2e\xd9";
const SALT_D23: [u8; 20] =
    *b"\xc3\xee\xf7\x12\xc7\x2e\xbb\x5a\x11\xa7\xd2\x43\x2b\xb4\x63\x65\xbe\xf9\xf5\x02";
const SALT_D29: [u8; 20] =
    *b"\xaf\xbf\xec\x28\x99\x93\xd2\x4c\x9e\x97\x86\xf1\x9c\x61\x11\xe0\x43\x90\xa8\x99";

/// Which Initial protection a version uses: salt, HKDF label prefix, and the long-header
/// packet type of an Initial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    salt: &'static [u8; 20],
    v2: bool,
}

impl Flavor {
    /// The protection of `version`, for the versions whose Initials we can open: v1, v2 and
    /// IETF drafts 23 to 34 (draft-33 and later use the v1 salt).
    pub fn of(version: u32) -> Option<Self> {
        let salt = match version {
            V1 | 0xff00_0021 | 0xff00_0022 => &SALT_V1,
            V2 => &SALT_V2,
            0xff00_0017..=0xff00_001c => &SALT_D23,
            0xff00_001d..=0xff00_0020 => &SALT_D29,
            _ => return None,
        };
        Some(Self {
            salt,
            v2: version == V2,
        })
    }

    /// The long-header type bits (`(first >> 4) & 3`) of an Initial: 0, or 1 in QUIC v2
    /// (RFC 9369 §3.2).
    const fn initial_type(self) -> u8 {
        if self.v2 { 1 } else { 0 }
    }
}

/// Client Initial packet protection keys (RFC 9001 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// AEAD key (AES-128-GCM).
    pub key: [u8; 16],
    /// AEAD IV.
    pub iv: [u8; 12],
    /// Header protection key (AES-128).
    pub hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &Hkdf<Sha256>, label: &str, out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?;
    let full = 6 + label.len();
    let label_len = u8::try_from(full).ok()?;
    let parts: [&[u8]; 5] = [
        &len.to_be_bytes(),
        &[label_len],
        b"tls13 ",
        label.as_bytes(),
        &[0],
    ];
    secret.expand_multi_info(&parts, out).ok()
}

/// The client's Initial keys for a connection whose client chose `dcid` (RFC 9001 §5.2).
pub fn client_keys(flavor: Flavor, dcid: &[u8]) -> Option<Keys> {
    initial_keys(flavor, dcid, "client in")
}

/// Initial keys of one side (`"client in"` or `"server in"`).
pub(crate) fn initial_keys(flavor: Flavor, dcid: &[u8], side: &str) -> Option<Keys> {
    let (_, initial) = Hkdf::<Sha256>::extract(Some(flavor.salt), dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, side, &mut client)?;
    let client = Hkdf::<Sha256>::from_prk(&client).ok()?;
    let (key, iv, hp) = if flavor.v2 {
        ("quicv2 key", "quicv2 iv", "quicv2 hp")
    } else {
        ("quic key", "quic iv", "quic hp")
    };
    let mut keys = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, key, &mut keys.key)?;
    expand_label(&client, iv, &mut keys.iv)?;
    expand_label(&client, hp, &mut keys.hp)?;
    Some(keys)
}

/// A QUIC variable-length integer (RFC 9000 §16).
pub fn varint(r: &mut Reader<'_>) -> Option<u64> {
    let first = r.u8()?;
    let len = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3f);
    for b in r.take(len - 1)? {
        v = (v << 8) | u64::from(*b);
    }
    Some(v)
}

/// A long-header Initial packet, still protected, borrowed from the datagram.
#[derive(Debug, Clone, Copy)]
pub struct Initial<'a> {
    /// The version field.
    pub version: u32,
    /// Destination connection id.
    pub dcid: &'a [u8],
    /// The packet from its first byte to the end of its payload (Length field).
    pub packet: &'a [u8],
    /// Offset of the packet number in `packet`.
    pub pn_offset: usize,
}

/// Finds the first Initial among the (possibly coalesced, RFC 9000 §12.2) long-header packets
/// of a datagram. Stops at anything that is not a long header of a version we can open.
pub fn find_initial(datagram: &[u8]) -> Option<Initial<'_>> {
    let mut rest = datagram;
    // A datagram holds at most a handful of coalesced packets (one per packet type).
    for _ in 0..4 {
        let mut r = Reader::new(rest);
        let first = r.u8()?;
        if first & 0x80 == 0 {
            return None;
        }
        let version = r.u32()?;
        let flavor = Flavor::of(version)?;
        let dcid = r.vec8()?;
        let scid = r.vec8()?;
        if dcid.len() > MAX_CID || scid.len() > MAX_CID {
            return None;
        }
        let ty = (first >> 4) & 3;
        let initial = ty == flavor.initial_type();
        let retry = ty == flavor.initial_type() ^ 3;
        if retry {
            return None; // a Retry has no Length and ends the datagram
        }
        if initial {
            let token = usize::try_from(varint(&mut r)?).ok()?;
            r.skip(token)?;
        }
        let len = usize::try_from(varint(&mut r)?).ok()?;
        let pn_offset = r.pos();
        let end = pn_offset.checked_add(len)?;
        let packet = rest.get(..end)?;
        if initial {
            return Some(Initial {
                version,
                dcid,
                packet,
                pn_offset,
            });
        }
        rest = rest.get(end..)?;
    }
    None
}

/// Removes header protection and the AEAD (RFC 9001 §5.3, §5.4) from `init` with `keys`;
/// returns the plaintext payload, or `None` when the packet does not open with these keys.
pub fn decrypt(init: &Initial<'_>, keys: &Keys) -> Option<Vec<u8>> {
    let p = init.packet;
    let sample = p.get(init.pn_offset + 4..init.pn_offset + 20)?;
    let mut mask = aes::Block::default();
    mask.copy_from_slice(sample);
    Aes128::new(&keys.hp.into()).encrypt_block(&mut mask);
    let first = p[0] ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 3) + 1;
    let mut header = p.get(..init.pn_offset + pn_len)?.to_vec();
    header[0] = first;
    let mut pn = 0u64;
    for (i, b) in header[init.pn_offset..].iter_mut().enumerate() {
        *b ^= mask[1 + i];
        pn = (pn << 8) | u64::from(*b);
    }
    let body = p.get(init.pn_offset + pn_len..)?;
    let tag_at = body.len().checked_sub(16)?;
    let (ct, tag) = body.split_at(tag_at);
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let mut plain = ct.to_vec();
    let tag = Tag::try_from(tag).ok()?;
    Aes128Gcm::new(&keys.key.into())
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &header,
            plain.as_mut_slice().into(),
            &tag,
        )
        .ok()?;
    Some(plain)
}

/// Calls `crypto(offset, data)` for every CRYPTO frame of a decrypted Initial payload
/// (RFC 9000 §19); stops at the first frame an Initial may not carry or that is malformed.
pub fn crypto_frames<'a>(payload: &'a [u8], mut crypto: impl FnMut(u64, &'a [u8])) {
    let mut r = Reader::new(payload);
    while let Some(ty) = varint(&mut r) {
        match ty {
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts].
                let (Some(_), Some(_), Some(count), Some(_)) = (
                    varint(&mut r),
                    varint(&mut r),
                    varint(&mut r),
                    varint(&mut r),
                ) else {
                    return;
                };
                let extra = if ty == 0x03 { 3 } else { 0 };
                let Some(n) = count.checked_mul(2).and_then(|c| c.checked_add(extra)) else {
                    return;
                };
                if n > payload.len() as u64 {
                    return;
                }
                for _ in 0..n {
                    if varint(&mut r).is_none() {
                        return;
                    }
                }
            }
            0x06 => {
                let (Some(off), Some(len)) = (varint(&mut r), varint(&mut r)) else {
                    return;
                };
                let Some(data) = usize::try_from(len).ok().and_then(|l| r.take(l)) else {
                    return;
                };
                crypto(off, data);
            }
            _ => return, // CONNECTION_CLOSE or a frame not allowed in an Initial
        }
    }
}
