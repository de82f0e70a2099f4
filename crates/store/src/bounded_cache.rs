//! A cache with a bound on what it holds, for runtimes whose memory is small and shared
//! (a Worker isolate has 128 MB): each entry is put with its size, and an insert past
//! the byte or entry bound starts the cache over — cheaper than tracking use, and what
//! is dropped is only recomputed. Pure: the runtime holds it.

use std::collections::HashMap;

#[derive(Debug)]
pub struct BoundedCache<V> {
    entries: HashMap<String, (V, usize)>,
    bytes: usize,
    max_bytes: usize,
    max_entries: usize,
}

impl<V> BoundedCache<V> {
    pub fn new(max_bytes: usize, max_entries: usize) -> BoundedCache<V> {
        BoundedCache {
            entries: HashMap::new(),
            bytes: 0,
            max_bytes,
            max_entries,
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Keeps `value` (about `bytes` large) under `key`, replacing what was there.
    pub fn insert(&mut self, key: String, value: V, bytes: usize) {
        if let Some((_, old)) = self.entries.remove(&key) {
            self.bytes -= old;
        }
        if self.bytes + bytes > self.max_bytes || self.entries.len() >= self.max_entries {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += bytes;
        self.entries.insert(key, (value, bytes));
    }

    /// What the entries are said to take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_holds_more_than_its_bounds() {
        let mut c = BoundedCache::new(100, 3);
        c.insert("a".into(), 1, 40);
        c.insert("b".into(), 2, 40);
        assert_eq!((c.len(), c.bytes()), (2, 80));
        // Replacing an entry counts its new size only.
        c.insert("b".into(), 3, 50);
        assert_eq!((c.get("b"), c.bytes()), (Some(&3), 90));
        // Past the byte bound: starts over with the new entry.
        c.insert("c".into(), 4, 20);
        assert_eq!((c.len(), c.bytes(), c.get("a")), (1, 20, None));
        // Past the entry bound likewise.
        for (i, k) in ["d", "e"].iter().enumerate() {
            c.insert((*k).into(), i, 1);
        }
        assert_eq!(c.len(), 3);
        c.insert("f".into(), 9, 1);
        assert_eq!((c.len(), c.get("f"), c.get("c")), (1, Some(&9), None));
        // One entry larger than the bound is still kept (alone).
        c.insert("big".into(), 0, 500);
        assert_eq!((c.len(), c.bytes()), (1, 500));
        assert!(!c.is_empty());
    }
}
