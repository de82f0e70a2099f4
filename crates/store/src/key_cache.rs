//! API keys looked up recently, so an authenticated request costs no database read —
//! and keys found missing, for as briefly, so a client repeating a wrong or revoked
//! key (a misconfigured one, or a flood) costs one read per second, not one per
//! request (issue 26.9, 25.10). Pure: the caller passes the time and holds the cache
//! (crm-host behind a lock shared by its threads, the worker per isolate). Revoking
//! through a holder forgets everything it holds at once.

use std::collections::HashMap;

use crate::keys::KeyRecord;

/// How long a looked-up key is trusted without asking the database: the bound on how
/// late a holder sees a revocation or directory change made elsewhere (another host
/// over the same PostgreSQL, another isolate); its own changes it sees at once.
pub const TTL_MS: i64 = 1_000;
/// Keys remembered at most; past it the cache starts over, so memory stays bounded
/// whatever the number of keys in use (about 2 MB at the edge, whose isolates have
/// 128 MB for everything).
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub struct KeyCache {
    /// `None`: no live key has this hash. The time is when the database was read.
    entries: HashMap<String, (Option<KeyRecord>, i64)>,
}

impl KeyCache {
    /// What was read for this hash less than [`TTL_MS`] before `now`: `Some(Some(key))`
    /// if it is still live at `now`, `Some(None)` if it was missing (or has expired
    /// since); `None` when the database must be asked.
    pub fn get(&self, hash: &str, now: i64) -> Option<Option<KeyRecord>> {
        let (record, read_at) = self.entries.get(hash)?;
        (now.saturating_sub(*read_at) < TTL_MS && now >= *read_at)
            .then(|| record.as_ref().filter(|r| r.live_at(now)).cloned())
    }

    /// Remembers what the database answered for `hash` (a key, or none) at `now`.
    pub fn put(&mut self, hash: String, record: Option<KeyRecord>, now: i64) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(hash, (record, now));
    }

    /// Forgets every key (after a revocation).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: "k".to_owned(),
            tenant_id: "t".to_owned(),
            scopes: Vec::new(),
            tenant_version: 1,
            expires_at,
        }
    }

    #[test]
    fn remembers_keys_and_misses_briefly_and_never_past_expiry() {
        let mut cache = KeyCache::default();
        cache.put("a".to_owned(), Some(record(None)), 0);
        cache.put("b".to_owned(), Some(record(Some(500))), 0);
        cache.put("missing".to_owned(), None, 0);
        assert!(cache.get("a", 999).is_some_and(|r| r.is_some()));
        assert_eq!(cache.get("a", TTL_MS), None, "stale: ask again");
        assert_eq!(cache.get("a", -1), None, "a clock stepped back: ask again");
        assert!(cache.get("b", 499).is_some_and(|r| r.is_some()));
        assert_eq!(cache.get("b", 500), Some(None), "expired while cached");
        assert_eq!(cache.get("missing", 10), Some(None), "a miss is remembered");
        assert_eq!(cache.get("c", 0), None, "never read: ask the database");
        cache.clear();
        assert_eq!(cache.get("a", 5), None);
        assert_eq!(cache.get("missing", 5), None);
    }

    #[test]
    fn stays_bounded() {
        let mut cache = KeyCache::default();
        for i in 0..=MAX_ENTRIES {
            cache.put(format!("k{i}"), None, 0);
        }
        assert_eq!(cache.entries.len(), 1, "started over");
    }
}
