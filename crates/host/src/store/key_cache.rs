//! API keys looked up recently, so an authenticated request costs no database read —
//! and keys found missing, for as briefly, so a client repeating a wrong or revoked
//! key (a misconfigured one, or a flood) costs one read per second, not one per
//! request (issue 26.9). Revoking through this process forgets everything at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crm_store::keys::KeyRecord;

/// How long a looked-up key is trusted without asking the database: the bound on how
/// late this process sees a revocation or directory change made by another host over
/// the same PostgreSQL (its own changes it sees at once).
const TTL: Duration = Duration::from_secs(1);
/// Keys remembered at most; past it the cache starts over, so memory stays bounded
/// whatever the number of keys in use.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct KeyCache {
    /// `None`: no live key has this hash.
    entries: RwLock<HashMap<String, (Option<KeyRecord>, Instant)>>,
}

impl KeyCache {
    /// What was read for this hash less than [`TTL`] ago: `Some(Some(key))` if it is
    /// still live at `now`, `Some(None)` if it was missing (or has expired since);
    /// `None` when the database must be asked.
    pub fn get(&self, hash: &str, now: i64) -> Option<Option<KeyRecord>> {
        let entries = self.entries.read().ok()?;
        let (record, read_at) = entries.get(hash)?;
        (read_at.elapsed() < TTL).then(|| record.as_ref().filter(|r| r.live_at(now)).cloned())
    }

    /// Remembers what the database answered for `hash` (a key, or none).
    pub fn put(&self, hash: String, record: Option<KeyRecord>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (record, Instant::now()));
        }
    }

    /// Forgets every key (after a revocation).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
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
    fn remembers_live_keys_until_cleared_and_never_past_expiry() {
        let cache = KeyCache::default();
        cache.put("a".to_owned(), Some(record(None)));
        cache.put("b".to_owned(), Some(record(Some(1_000))));
        cache.put("missing".to_owned(), None);
        assert!(cache.get("a", 5_000).is_some_and(|r| r.is_some()));
        assert!(cache.get("b", 999).is_some_and(|r| r.is_some()));
        assert_eq!(cache.get("b", 1_000), Some(None), "expired while cached");
        assert_eq!(cache.get("missing", 0), Some(None), "a miss is remembered");
        assert_eq!(cache.get("c", 0), None, "never read: ask the database");
        cache.clear();
        assert_eq!(cache.get("a", 5_000), None);
        assert_eq!(cache.get("missing", 0), None);
    }
}
