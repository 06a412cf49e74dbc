//! Sliding counters of the host checks, cheap enough to keep a few dozen per host.
//!
//! * [`Window`]: events in a window of fixed width, approximated by two buckets (the previous
//!   one weighted by how much of it still overlaps the window).
//! * [`Distinct`]: distinct values (peers, ports, servers, domain names) in the current and the
//!   previous bucket, estimated by linear counting over a small bitmap (Whang et al., 1990):
//!   `n ≈ −m·ln(z/m)` for `m` bits of which `z` are zero. Deterministic: values are hashed with
//!   a fixed function, so a replay gives the same estimates.

/// A sliding-window rate over two buckets of `width_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    bucket: u64,
    current: u32,
    previous: u32,
}

impl Window {
    /// Adds one event at `t_ns` (events older than the current bucket count in it).
    pub fn add(&mut self, t_ns: u64, width_ns: u64) {
        self.add_n(t_ns, width_ns, 1);
    }

    /// Adds `n` events at `t_ns`.
    pub fn add_n(&mut self, t_ns: u64, width_ns: u64, n: u64) {
        self.roll(t_ns, width_ns);
        self.current = self
            .current
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn roll(&mut self, t_ns: u64, width_ns: u64) {
        let b = t_ns / width_ns;
        if b > self.bucket {
            self.previous = if b == self.bucket + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.bucket = b;
        }
    }

    /// Events in the window ending at `t_ns`.
    pub fn value(&self, t_ns: u64, width_ns: u64) -> u32 {
        self.value_at(Tick::new(t_ns, width_ns))
    }

    /// Events in the window ending at `tick` (a time already divided into buckets: the
    /// host checks read a dozen windows of the same width at once).
    pub fn value_at(&self, tick: Tick) -> u32 {
        let (cur, prev) = match tick.bucket.saturating_sub(self.bucket) {
            0 => (self.current, self.previous),
            1 => (0, self.current),
            _ => (0, 0),
        };
        // f64 is exact enough here (a floor of at most 2^32 · 1) and spares a u128 division.
        cur.saturating_add((f64::from(prev) * tick.weight) as u32)
    }
}

/// A time seen through buckets of one width: its bucket and the share of the previous bucket
/// still inside the window that ends at it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    bucket: u64,
    weight: f64,
}

impl Tick {
    /// `t_ns` in buckets of `width_ns`.
    pub fn new(t_ns: u64, width_ns: u64) -> Self {
        let width = width_ns.max(1);
        Self {
            bucket: t_ns / width,
            weight: (width - t_ns % width) as f64 / width as f64,
        }
    }
}

/// Distinct values seen in the current and the previous bucket of `width_ns`, as `W` 64-bit
/// words of linear-counting bitmap per bucket (`64·W` bits: exact-ish for small counts, a few
/// percent off near `64·W`, saturating near `64·W·ln(64·W)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Distinct<const W: usize> {
    bucket: u64,
    current: [u64; W],
    previous: [u64; W],
}

impl<const W: usize> Default for Distinct<W> {
    fn default() -> Self {
        Self {
            bucket: 0,
            current: [0; W],
            previous: [0; W],
        }
    }
}

impl<const W: usize> Distinct<W> {
    /// Adds the value of hash `h` at `t_ns`.
    pub fn add(&mut self, h: u64, t_ns: u64, width_ns: u64) {
        let b = t_ns / width_ns;
        if b > self.bucket {
            self.previous = if b == self.bucket + 1 {
                self.current
            } else {
                [0; W]
            };
            self.current = [0; W];
            self.bucket = b;
        }
        let bit = (h % (64 * W as u64)) as usize;
        self.current[bit / 64] |= 1 << (bit % 64);
    }

    /// Distinct values in the current and previous buckets at `t_ns` (so over at least one
    /// and at most two widths).
    pub fn value(&self, t_ns: u64, width_ns: u64) -> u32 {
        self.value_above(Tick::new(t_ns, width_ns), 0)
    }

    /// [`Self::value`] at `tick`, except that a count that cannot exceed `threshold` may be
    /// given as the (lower) number of bits set, skipping the logarithm on the hot path.
    pub fn value_above(&self, tick: Tick, threshold: u32) -> u32 {
        match tick.bucket.saturating_sub(self.bucket) {
            0 => {
                let mut u = self.current;
                for (a, b) in u.iter_mut().zip(self.previous) {
                    *a |= b;
                }
                estimate_above(&u, threshold)
            }
            1 => estimate_above(&self.current, threshold),
            _ => 0,
        }
    }
}

/// [`estimate`], or the bits set when the estimate cannot exceed `threshold`
/// (`−ln(1 − x) ≤ 2x` for `x ≤ 0.79`).
fn estimate_above(words: &[u64], threshold: u32) -> u32 {
    let ones: u32 = words.iter().map(|w| w.count_ones()).sum();
    let m = 64 * words.len() as u32;
    if 2 * ones <= threshold && 100 * ones <= 79 * m {
        return ones;
    }
    estimate(words)
}

/// Linear-counting estimate of the distinct values set in `words`.
pub fn estimate(words: &[u64]) -> u32 {
    let ones: u32 = words.iter().map(|w| w.count_ones()).sum();
    // Up to a few bits set, collisions are negligible: skip the logarithm.
    if ones <= 2 {
        return ones;
    }
    let m = f64::from(64 * words.len() as u32);
    let zeros = m - f64::from(ones);
    let n = if zeros < 1.0 {
        m * m.ln()
    } else {
        -m * (zeros / m).ln()
    };
    n.round() as u32
}

/// A fixed 64-bit mixer (splitmix64's finaliser): spreads small integers over all bits.
pub const fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash of an address.
pub fn hash_ip(ip: std::net::IpAddr) -> u64 {
    let v = match ip {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
        std::net::IpAddr::V6(a) => u128::from(a) ^ (1 << 127),
    };
    mix64((v as u64) ^ mix64((v >> 64) as u64))
}

/// Longest name hashed (a DNS name has at most 253 characters; longer input is untrusted junk).
const MAX_NAME: usize = 253;

/// The hash of a domain name, case-insensitive, over its first 253 bytes.
pub fn hash_name(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().take(MAX_NAME) {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * NS;

    #[test]
    fn window_slides() {
        let mut w = Window::default();
        for i in 0..10 {
            w.add(i * NS, MINUTE);
        }
        assert_eq!(w.value(10 * NS, MINUTE), 10);
        // Half a minute into the next bucket, half of the previous one still counts.
        assert_eq!(w.value(90 * NS, MINUTE), 5);
        assert_eq!(w.value(200 * NS, MINUTE), 0);
        w.add_n(200 * NS, MINUTE, u64::MAX);
        assert_eq!(w.value(200 * NS, MINUTE), u32::MAX, "saturates");
    }

    #[test]
    fn distinct_counts_are_close_and_slide() {
        let mut d = Distinct::<8>::default();
        let w = 300 * NS;
        for i in 0..300u64 {
            // Each value twice: duplicates do not count.
            d.add(mix64(i), i * NS / 2, w);
            d.add(mix64(i), i * NS / 2, w);
        }
        let n = d.value(150 * NS, w);
        // Linear counting at 300 values in 512 bits: within about ±10%.
        assert!((270..=330).contains(&n), "{n}");
        // Next bucket: the previous one still counts, then nothing.
        assert_eq!(d.value(400 * NS, w), n);
        d.add(mix64(1), 400 * NS, w);
        assert_eq!(d.value(400 * NS, w), n, "an old value seen again");
        assert_eq!(d.value(700 * NS, w), 1);
        assert_eq!(d.value(1000 * NS, w), 0);
        let mut small = Distinct::<1>::default();
        for ip in 1..=6u32 {
            small.add(hash_ip(std::net::Ipv4Addr::from(ip).into()), 0, w);
        }
        assert_eq!(small.value(0, w), 6, "small counts are exact");
    }

    #[test]
    fn saturated_bitmaps_stay_finite() {
        let mut d = Distinct::<1>::default();
        for i in 0..100_000u64 {
            d.add(mix64(i), 0, NS);
        }
        assert_eq!(d.value(0, NS), 266, "64·ln 64");
        assert_eq!(hash_name("Example.COM"), hash_name("example.com"));
        let long = "a".repeat(100_000);
        assert_eq!(hash_name(&long), hash_name(&long[..253]));
    }
}
