//! NetBIOS over TCP/IP (RFC 1001/1002): the names of the name service (UDP 137) and the
//! datagram service (UDP 138), and whether a datagram carries SMB (a browser announcement:
//! nDPI's `NetBIOS.SMBv1`). Pure functions over the payload; names are decoded from the
//! "first-level encoding" (RFC 1001 §14.1) and kept as bounded, lossily decoded text.

use super::util::{MAX_HOST, Reader, text};

/// Decodes one first-level encoded NetBIOS name: a 32-byte label of letters `A`..`P`
/// (two per byte). Returns the 15-character name without its padding and without the
/// 16th (suffix) byte.
pub fn decode_name(label: &[u8]) -> Option<String> {
    if label.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in label.chunks_exact(2).enumerate() {
        let hi = pair[0].checked_sub(b'A').filter(|n| *n < 16)?;
        let lo = pair[1].checked_sub(b'A').filter(|n| *n < 16)?;
        out[i] = hi << 4 | lo;
    }
    let name = &out[..15];
    let end = name
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let name = &name[..end];
    if name.is_empty() {
        return None;
    }
    Some(text(name, MAX_HOST))
}

/// The question name of a name-service packet (RFC 1002 §4.2.1): DNS-style header, then a
/// 32-byte label.
pub fn query_name(p: &[u8]) -> Option<String> {
    let mut r = Reader::new(p);
    r.skip(12)?;
    if r.u8()? != 32 {
        return None;
    }
    decode_name(r.take(32)?)
}

/// A datagram-service packet (RFC 1002 §4.4.1: direct unique/group or broadcast, types
/// 0x10–0x12): the source name, and whether the user data is an SMB message.
pub fn datagram(p: &[u8]) -> Option<(String, bool)> {
    if !matches!(p.first(), Some(0x10..=0x12)) {
        return None;
    }
    let mut r = Reader::new(p);
    r.skip(14)?;
    if r.u8()? != 32 {
        return None;
    }
    let source = decode_name(r.take(32)?)?;
    // The label ends with the root (0); scope identifiers are not used in practice.
    if r.u8()? != 0 || r.u8()? != 32 {
        return Some((source, false));
    }
    r.skip(33)?;
    let smb = r.rest().starts_with(b"\xffSMB");
    Some((source, smb))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1001 §14.1's example: "FRED" pads to 16 bytes and encodes as `EGFCEFEE…`.
    #[test]
    fn first_level_encoding() {
        let mut label = b"EGFCEFEE".to_vec();
        label.extend(std::iter::repeat_n(*b"CA", 11).flatten());
        label.extend(b"AA");
        assert_eq!(decode_name(&label).as_deref(), Some("FRED"));
        // The wildcard "*" padded with NULs.
        let mut star = b"CK".to_vec();
        star.extend(std::iter::repeat_n(*b"AA", 15).flatten());
        assert_eq!(decode_name(&star).as_deref(), Some("*"));
        assert_eq!(decode_name(b"short"), None);
        assert_eq!(decode_name(&[b'Z'; 32]), None);
    }

    #[test]
    fn hostile_datagrams_are_bounded() {
        for n in 0..120 {
            let mut p = vec![0x11u8; n];
            if n > 14 {
                p[14] = 32;
            }
            let _ = datagram(&p);
            let _ = query_name(&p);
        }
    }
}
