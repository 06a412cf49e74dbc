//! Small helpers shared by the dissectors: a bounds-checked big-endian reader over a borrowed
//! slice and bounded text conversion. Nothing here allocates except [`text`].

/// Longest hostname kept (SNI, HTTP Host, DNS query): DNS names are at most 253 characters.
pub const MAX_HOST: usize = 256;
/// Longest URL kept.
pub const MAX_URL: usize = 1024;
/// Longest other header value kept (User-Agent, Server, Content-Type, certificate names).
pub const MAX_FIELD: usize = 256;
/// Most items kept in a list field (ALPNs, SANs, answers, chain issuers).
pub const MAX_LIST: usize = 16;

/// A cursor over a borrowed slice; every read is bounds-checked and returns `None` past the end.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Current offset.
    pub const fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// Big-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Big-endian 24-bit integer.
    pub fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    /// Big-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A vector with a 1-byte length prefix.
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a 2-byte length prefix.
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// A vector with a 3-byte length prefix.
    pub fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
}

/// Iterates the big-endian `u16` values of `b` (a trailing odd byte is ignored).
pub fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// `bytes` as text, lossily decoded and truncated to at most `max` bytes on a char boundary.
pub fn text(bytes: &[u8], max: usize) -> String {
    let bytes = bytes.get(..max.saturating_add(4)).unwrap_or(bytes);
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    truncate(&mut s, max);
    s
}

/// Truncates `s` to at most `max` bytes on a char boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Whether `host` is an IPv4 or IPv6 literal (what nDPI calls a numeric host).
pub fn is_ip_literal(host: &str) -> bool {
    let h = host
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or(host);
    h.parse::<std::net::IpAddr>().is_ok()
        || h.rsplit_once(':').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv4Addr>().is_ok() && port.parse::<u16>().is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_the_end() {
        let mut r = Reader::new(&[0, 3, 1, 2]);
        assert_eq!(r.vec16(), None);
        let mut r = Reader::new(&[0, 2, 1, 2, 9]);
        assert_eq!(r.vec16(), Some(&[1u8, 2][..]));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(9));
        assert!(r.is_empty());
    }

    #[test]
    fn text_is_bounded_on_char_boundaries() {
        assert_eq!(text("héllo".as_bytes(), 2), "h");
        assert_eq!(text(b"abc\xff", 10), "abc\u{fffd}");
        assert_eq!(text(&[b'a'; 5000], 256).len(), 256);
    }

    #[test]
    fn ip_literals() {
        assert!(is_ip_literal("192.168.1.1"));
        assert!(is_ip_literal("192.168.1.1:8080"));
        assert!(is_ip_literal("[2001:db8::1]:80"));
        assert!(is_ip_literal("2001:db8::1"));
        assert!(!is_ip_literal("www.example.com"));
    }
}
