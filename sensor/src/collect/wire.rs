//! Big-endian reads from borrowed datagram slices, without panics.
//!
//! Every reader returns `None` past the end; decoders turn that into an error that names
//! the byte offset.

/// Reads a big-endian `u16` at `at`.
#[inline]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian `u32` at `at`.
#[inline]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a big-endian `u64` at `at`.
#[inline]
pub(crate) fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

/// An unsigned integer of 1 to 8 bytes (RFC 7011 section 6.2 reduced-size encoding);
/// longer values keep their last 8 bytes, an empty one is 0.
#[inline]
pub(crate) fn uint(value: &[u8]) -> u64 {
    let tail = if value.len() > 8 {
        &value[value.len() - 8..]
    } else {
        value
    };
    tail.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Rounds `n` up to a multiple of 4 (sFlow XDR opaque padding).
#[inline]
pub(crate) fn pad4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let b = [1, 2, 3, 4, 5];
        assert_eq!(u16_at(&b, 3), Some(0x0405));
        assert_eq!(u16_at(&b, 4), None);
        assert_eq!(u32_at(&b, 1), Some(0x0203_0405));
        assert_eq!(u32_at(&b, usize::MAX), None);
        assert_eq!(u64_at(&b, 0), None);
        assert_eq!(uint(&[1, 0]), 256);
        assert_eq!(uint(&[]), 0);
        assert_eq!(uint(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), 1);
        assert_eq!(pad4(5), Some(8));
        assert_eq!(pad4(usize::MAX), None);
    }
}
