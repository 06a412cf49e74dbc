//! NetFlow v9 / IPFIX templates: their fields, how one data record is walked with them, the
//! per-exporter cache (keyed by observation domain / source id and template id; the exporter
//! address is the key of the table holding the cache), and the bounded buffer of data sets
//! that arrived before their template.
//!
//! Must not: trust any length. A template whose records would consume no byte is refused
//! (it would loop forever on a data set), and every walk stops at the set's end.

use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashMap;

use super::fields::TimeBase;
use super::wire::u16_at;

/// Most fields one template may declare. Real templates have tens; a v9 flowset could carry
/// 16 383, which is only useful to make every data record expensive.
pub const MAX_TEMPLATE_FIELDS: u16 = 512;

/// Length value meaning "variable length" (RFC 7011 section 7).
pub const VARIABLE_LENGTH: u16 = 65535;

/// One field of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// Information element id (enterprise bit cleared) or NetFlow v9 field type.
    pub id: u16,
    /// Encoded length in bytes, or [`VARIABLE_LENGTH`].
    pub len: u16,
    /// IANA private enterprise number, 0 for IANA elements.
    pub pen: u32,
}

/// Data template or options template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// Describes flow records.
    Data,
    /// Describes options records (sampling, system init time...), about the exporter itself.
    Options,
}

/// A template as learned from an exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Data or options.
    pub kind: TemplateKind,
    /// How many of the leading fields are scope fields (options templates), 0 for data.
    pub scope_fields: u16,
    /// The fields, in record order.
    pub fields: Box<[FieldSpec]>,
    /// Smallest record length (variable-length fields count 1 byte); always at least 1.
    pub min_len: usize,
    /// When it was learned or last refreshed (ns).
    pub learned_ns: u64,
}

impl Template {
    /// Builds a template, or `None` when its records would consume no byte.
    pub fn new(
        kind: TemplateKind,
        scope_fields: u16,
        fields: Vec<FieldSpec>,
        now_ns: u64,
    ) -> Option<Self> {
        let min_len: usize = fields
            .iter()
            .map(|f| {
                if f.len == VARIABLE_LENGTH {
                    1
                } else {
                    usize::from(f.len)
                }
            })
            .sum();
        (min_len > 0).then(|| Self {
            kind,
            scope_fields,
            fields: fields.into_boxed_slice(),
            min_len,
            learned_ns: now_ns,
        })
    }

    /// Walks the record that starts at `pos` in `set`, calling `f(field, value)` for each field.
    /// Returns where the next record starts, or the offset and name of what was truncated.
    pub fn walk(
        &self,
        set: &[u8],
        mut pos: usize,
        mut f: impl FnMut(&FieldSpec, &[u8]),
    ) -> Result<usize, (usize, &'static str)> {
        for field in &*self.fields {
            let len = if field.len == VARIABLE_LENGTH {
                // RFC 7011 section 7: one length byte, or 255 then a 16-bit length.
                let first = *set.get(pos).ok_or((pos, "variable-length field length"))?;
                pos += 1;
                if first == 255 {
                    let long = u16_at(set, pos).ok_or((pos, "variable-length field length"))?;
                    pos += 2;
                    usize::from(long)
                } else {
                    usize::from(first)
                }
            } else {
                usize::from(field.len)
            };
            let value = set.get(pos..pos + len).ok_or((pos, "data record field"))?;
            f(field, value);
            pos += len;
        }
        Ok(pos)
    }
}

/// What inserting a template did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// New template.
    New,
    /// Same fields as the cached one: only its timestamp moved.
    Refreshed,
    /// Different fields replaced the cached one.
    Replaced,
}

/// Templates of one exporter, keyed by (observation domain / source id, template id).
#[derive(Debug, Default)]
pub struct TemplateCache {
    map: HashMap<(u32, u16), Arc<Template>>,
}

impl TemplateCache {
    /// Number of templates cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no template is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many templates each domain has cached.
    pub fn per_domain(&self) -> HashMap<u32, u64> {
        let mut counts = HashMap::new();
        for (domain, _) in self.map.keys() {
            *counts.entry(*domain).or_insert(0) += 1;
        }
        counts
    }

    /// Whether `(domain, id)` is cached (expired or not).
    pub fn contains(&self, domain: u32, id: u16) -> bool {
        self.map.contains_key(&(domain, id))
    }

    /// Inserts or refreshes a template.
    pub fn insert(&mut self, domain: u32, id: u16, template: Template) -> Learned {
        match self.map.get_mut(&(domain, id)) {
            Some(old) if old.kind == template.kind && old.fields == template.fields => {
                let old = Arc::make_mut(old);
                old.learned_ns = template.learned_ns;
                old.scope_fields = template.scope_fields;
                Learned::Refreshed
            }
            Some(old) => {
                *old = Arc::new(template);
                Learned::Replaced
            }
            None => {
                self.map.insert((domain, id), Arc::new(template));
                Learned::New
            }
        }
    }

    /// The template `(domain, id)` if it is younger than `ttl_ns`; an expired one is removed
    /// and reported as `Err(true)`, a missing one as `Err(false)`.
    pub fn get(
        &mut self,
        domain: u32,
        id: u16,
        now_ns: u64,
        ttl_ns: u64,
    ) -> Result<&Arc<Template>, bool> {
        let expired = match self.map.get(&(domain, id)) {
            None => return Err(false),
            Some(t) => now_ns.saturating_sub(t.learned_ns) > ttl_ns,
        };
        if expired {
            self.map.remove(&(domain, id));
            return Err(true);
        }
        self.map.get(&(domain, id)).ok_or(false)
    }

    /// Removes one template; whether it existed.
    pub fn withdraw(&mut self, domain: u32, id: u16) -> bool {
        self.map.remove(&(domain, id)).is_some()
    }

    /// Removes every template of `kind` in `domain` (IPFIX "withdraw all"); how many.
    pub fn withdraw_all(&mut self, domain: u32, kind: TemplateKind) -> usize {
        let before = self.map.len();
        self.map.retain(|&(d, _), t| d != domain || t.kind != kind);
        before - self.map.len()
    }

    /// Removes the least recently learned template; whether there was one.
    pub fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, t)| t.learned_ns)
            .map(|(k, _)| *k);
        oldest.is_some_and(|k| self.map.remove(&k).is_some())
    }
}

/// A data set kept until its template arrives.
#[derive(Debug, Clone)]
pub struct PendingSet {
    /// Observation domain / source id.
    pub domain: u32,
    /// Template the set refers to.
    pub template: u16,
    /// When it arrived (ns).
    pub received_ns: u64,
    /// Time references of the datagram it came in.
    pub time: TimeBase,
    /// Offset of the set body in its datagram (for errors).
    pub offset: usize,
    /// The set body (records and padding), copied.
    pub body: Box<[u8]>,
}

/// Bounded FIFO of data sets waiting for their template, per exporter.
///
/// Bounds: at most `max_sets` sets and `max_bytes` bytes; the oldest goes first when full,
/// and sets older than the wait limit are dropped. Both drops are counted by the caller.
#[derive(Debug, Default)]
pub struct PendingSets {
    queue: VecDeque<PendingSet>,
    bytes: usize,
}

impl PendingSets {
    /// Number of sets waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Adds a set; returns how many older sets were dropped to make room. A set larger than
    /// `max_bytes` on its own is not kept (returned as 1 dropped).
    pub fn push(&mut self, set: PendingSet, max_sets: usize, max_bytes: usize) -> u64 {
        if max_sets == 0 || set.body.len() > max_bytes {
            return 1;
        }
        let mut dropped = 0;
        while self.queue.len() >= max_sets || self.bytes + set.body.len() > max_bytes {
            match self.queue.pop_front() {
                Some(old) => {
                    self.bytes -= old.body.len();
                    dropped += 1;
                }
                None => break,
            }
        }
        self.bytes += set.body.len();
        self.queue.push_back(set);
        dropped
    }

    /// Drops sets received before `deadline_ns`; how many.
    pub fn expire(&mut self, deadline_ns: u64) -> u64 {
        let mut dropped = 0;
        while self
            .queue
            .front()
            .is_some_and(|s| s.received_ns < deadline_ns)
        {
            if let Some(old) = self.queue.pop_front() {
                self.bytes -= old.body.len();
                dropped += 1;
            }
        }
        dropped
    }

    /// Takes out every set waiting for `(domain, template)`, oldest first.
    pub fn take(&mut self, domain: u32, template: u16) -> Vec<PendingSet> {
        if !self
            .queue
            .iter()
            .any(|s| s.domain == domain && s.template == template)
        {
            return Vec::new();
        }
        let (ready, keep): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|s| s.domain == domain && s.template == template);
        self.queue = keep.into();
        self.bytes = self.queue.iter().map(|s| s.body.len()).sum();
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u16, len: u16) -> FieldSpec {
        FieldSpec { id, len, pen: 0 }
    }

    #[test]
    fn zero_length_templates_are_refused() {
        assert!(Template::new(TemplateKind::Data, 0, vec![spec(1, 0), spec(2, 0)], 0).is_none());
        assert!(Template::new(TemplateKind::Data, 0, vec![], 0).is_none());
        let t = Template::new(
            TemplateKind::Data,
            0,
            vec![spec(1, 0), spec(9, VARIABLE_LENGTH)],
            0,
        );
        assert_eq!(t.map(|t| t.min_len), Some(1));
    }

    #[test]
    fn walk_reads_variable_length_fields() {
        let t = Template::new(
            TemplateKind::Data,
            0,
            vec![
                spec(4, 1),
                spec(96, VARIABLE_LENGTH),
                spec(97, VARIABLE_LENGTH),
            ],
            0,
        )
        .unwrap();
        let mut body = vec![6, 3, b'a', b'b', b'c', 255, 0, 2, b'x', b'y'];
        let mut seen = Vec::new();
        let end = t
            .walk(&body, 0, |f, v| seen.push((f.id, v.to_vec())))
            .unwrap();
        assert_eq!(end, body.len());
        assert_eq!(seen[1], (96, b"abc".to_vec()));
        assert_eq!(seen[2], (97, b"xy".to_vec()));
        body.pop();
        assert_eq!(t.walk(&body, 0, |_, _| {}), Err((8, "data record field")));
    }

    #[test]
    fn cache_refreshes_replaces_expires_and_withdraws() {
        let mut c = TemplateCache::default();
        let t = |f, now| Template::new(TemplateKind::Data, 0, vec![spec(f, 4)], now).unwrap();
        assert_eq!(c.insert(1, 256, t(8, 0)), Learned::New);
        assert_eq!(c.insert(1, 256, t(8, 10)), Learned::Refreshed);
        assert_eq!(c.insert(1, 256, t(12, 20)), Learned::Replaced);
        assert!(c.get(1, 256, 30, 100).is_ok());
        assert_eq!(c.get(2, 256, 30, 100).err(), Some(false));
        assert_eq!(c.get(1, 256, 200, 100).err(), Some(true));
        assert!(c.is_empty());
        c.insert(1, 256, t(8, 0));
        c.insert(1, 257, t(8, 5));
        assert!(c.evict_oldest());
        assert!(c.contains(1, 257) && !c.contains(1, 256));
        assert_eq!(c.withdraw_all(1, TemplateKind::Data), 1);
    }

    #[test]
    fn pending_sets_are_bounded() {
        let mut p = PendingSets::default();
        let set = |t, at| PendingSet {
            domain: 0,
            template: t,
            received_ns: at,
            time: TimeBase::default(),
            offset: 0,
            body: vec![0; 10].into_boxed_slice(),
        };
        assert_eq!(p.push(set(256, 1), 2, 100), 0);
        assert_eq!(p.push(set(257, 2), 2, 100), 0);
        assert_eq!(p.push(set(256, 3), 2, 100), 1);
        assert_eq!(p.push(set(256, 3), 2, 5), 1, "too big alone");
        assert_eq!(p.take(0, 256).len(), 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p.expire(10), 1);
        assert!(p.is_empty());
    }
}
