//! Dedup of the same alert key within a window (ntopng sends one notification per alert and
//! recipient per hour): a host alert re-raised every minute is told once per window.
//! Pure (time is passed in) and bounded: at most [`MAX_KEYS`] keys are remembered; past that
//! the oldest is forgotten (and may be told again) and counted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys remembered per endpoint at most.
pub const MAX_KEYS: usize = 65_536;

/// The keys told recently, in the order they were told.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    max_keys: usize,
    told: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
    /// Keys forgotten before their window ended because the table was full.
    pub evicted: u64,
}

impl Dedup {
    /// A dedup over `window` remembering at most `max_keys` keys (a zero window tells all).
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys: max_keys.max(1),
            told: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// True when `key` was not told within the window before `now` (and remembers it told now).
    pub fn first(&mut self, key: &str, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        while let Some((at, k)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.window {
                break;
            }
            if self.told.get(k) == Some(at) {
                self.told.remove(k);
            }
            self.order.pop_front();
        }
        if self.told.contains_key(key) {
            return false;
        }
        while self.told.len() >= self.max_keys {
            let Some((at, k)) = self.order.pop_front() else {
                break;
            };
            if self.told.get(&k) == Some(&at) {
                self.told.remove(&k);
                self.evicted += 1;
            }
        }
        self.told.insert(key.to_owned(), now);
        self.order.push_back((now, key.to_owned()));
        true
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.told.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.told.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_window() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(3600), 10);
        assert!(d.first("a", t0));
        assert!(!d.first("a", t0 + Duration::from_secs(1800)));
        assert!(d.first("b", t0 + Duration::from_secs(1800)));
        assert!(d.first("a", t0 + Duration::from_secs(3600)));
        assert!(!d.first("b", t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(3600), 3);
        for k in ["a", "b", "c", "d"] {
            assert!(d.first(k, t0));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evicted, 1);
        assert!(d.first("a", t0), "the oldest was forgotten");
        assert!(!d.first("d", t0));
    }
}
