//! The in-process level: entries by tag, bounded, evicted oldest first.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct Entry {
    pub(super) value: Arc<dyn Any + Send + Sync>,
    pub(super) expires: Instant,
    pub(super) seq: u64,
}

#[derive(Default)]
pub(super) struct L1 {
    /// tag → key → entry.
    pub(super) tags: HashMap<String, HashMap<String, Entry>>,
    pub(super) len: usize,
    /// Insertion order for eviction: (tag, key, seq); items whose seq no longer matches are
    /// skipped.
    pub(super) order: VecDeque<(String, String, u64)>,
    pub(super) seq: u64,
    /// Loads in flight by tag: (count, invalidated meanwhile).
    pub(super) loading: HashMap<String, (usize, bool)>,
}

impl L1 {
    pub(super) fn get(
        &self,
        tag: &str,
        key: &str,
        now: Instant,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let e = self.tags.get(tag)?.get(key)?;
        (e.expires > now).then(|| e.value.clone())
    }

    pub(super) fn insert(
        &mut self,
        tag: &str,
        key: &str,
        value: Arc<dyn Any + Send + Sync>,
        ttl: Duration,
        cap: usize,
    ) {
        self.seq += 1;
        let seq = self.seq;
        let old = self.tags.entry(tag.to_string()).or_default().insert(
            key.to_string(),
            Entry {
                value,
                expires: Instant::now() + ttl,
                seq,
            },
        );
        if old.is_none() {
            self.len += 1;
        }
        self.order
            .push_back((tag.to_string(), key.to_string(), seq));
        while self.len > cap {
            let Some((t, k, s)) = self.order.pop_front() else {
                break;
            };
            self.remove_if(&t, &k, s);
        }
        // Replaced entries leave stale order items behind: compact now and then.
        if self.order.len() > 2 * cap.max(16) {
            let tags = &self.tags;
            self.order.retain(|(t, k, s)| {
                tags.get(t)
                    .and_then(|m| m.get(k))
                    .is_some_and(|e| e.seq == *s)
            });
        }
    }

    pub(super) fn remove_if(&mut self, tag: &str, key: &str, seq: u64) {
        if let Some(m) = self.tags.get_mut(tag)
            && m.get(key).is_some_and(|e| e.seq == seq)
        {
            m.remove(key);
            self.len -= 1;
            if m.is_empty() {
                self.tags.remove(tag);
            }
        }
    }

    pub(super) fn drop_tag(&mut self, tag: &str) {
        if let Some(m) = self.tags.remove(tag) {
            self.len -= m.len();
        }
        if let Some(l) = self.loading.get_mut(tag) {
            l.1 = true;
        }
    }

    pub(super) fn clear(&mut self) {
        self.tags.clear();
        self.order.clear();
        self.len = 0;
        for l in self.loading.values_mut() {
            l.1 = true;
        }
    }
}
