//! API keys looked up recently, so an authenticated request costs no database read.
//! Only keys that exist are remembered (an unknown key is asked for every time, so
//! guessing fills nothing); revoking through this process forgets them all at once.

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
    entries: RwLock<HashMap<String, (KeyRecord, Instant)>>,
}

impl KeyCache {
    /// The key with this hash if it was read less than [`TTL`] ago and is live at `now`.
    pub fn get(&self, hash: &str, now: i64) -> Option<KeyRecord> {
        let entries = self.entries.read().ok()?;
        let (record, read_at) = entries.get(hash)?;
        (read_at.elapsed() < TTL && record.live_at(now)).then(|| record.clone())
    }

    pub fn put(&self, hash: String, record: KeyRecord) {
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
        cache.put("a".to_owned(), record(None));
        cache.put("b".to_owned(), record(Some(1_000)));
        assert!(cache.get("a", 5_000).is_some());
        assert!(cache.get("b", 999).is_some());
        assert!(cache.get("b", 1_000).is_none(), "expired while cached");
        assert!(cache.get("c", 0).is_none());
        cache.clear();
        assert!(cache.get("a", 5_000).is_none());
    }
}
