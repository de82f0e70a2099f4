//! API key operations. Keys are random (192 bits), shown once, stored as SHA-256.

use crm_store::keys::{self, KeyInfo, KeyRecord, KeyScope, NewKey};
use rand::RngCore;

use super::Store;
use crate::error::{HostError, HostResult};

pub use crm_store::keys::hash_key;

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut random = vec![0u8; n];
    rand::rng().fill_bytes(&mut random);
    hex::encode(random)
}

/// A fresh key text and its id.
pub fn generate() -> (String, String) {
    let mut random = [0u8; keys::KEY_RANDOM_BYTES];
    rand::rng().fill_bytes(&mut random);
    keys::from_random(&random)
}

impl Store {
    /// The live key with this text, and its tenant's current version.
    /// Answered from the key cache when it can (`key_cache.rs`).
    pub async fn key(&self, key: &str, now: i64) -> HostResult<Option<KeyRecord>> {
        let (d, hash) = (self.dialect(), hash_key(key));
        if let Some(known) = self.inner.keys.get(&hash, now) {
            return Ok(known);
        }
        let lookup = keys::lookup(d, &hash, now);
        let found = self
            .read(move |c| {
                c.query_opt(&lookup)?
                    .map(|r| keys::decode(&r).map_err(HostError::from))
                    .transpose()
            })
            .await?;
        self.inner.keys.put(hash, found.clone());
        Ok(found)
    }

    /// Creates a key; answers `(id, key text)`. The text is never stored.
    pub async fn create_key(
        &self,
        tenant: &str,
        scopes: Vec<KeyScope>,
        label: Option<String>,
        expires_at: Option<i64>,
        now: i64,
    ) -> HostResult<(String, String)> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.write(None, move |c| {
            let row = c.query_opt(&crm_store::tenants::get(d, &tenant, false))?;
            if row.is_none() {
                return Err(HostError::NotFound(format!(
                    "tenant `{tenant}` does not exist"
                )));
            }
            let (id, key) = generate();
            let hash = hash_key(&key);
            c.execute(&keys::insert(
                d,
                &NewKey {
                    id: &id,
                    tenant_id: &tenant,
                    key_hash: &hash,
                    scopes: &scopes,
                    label: label.as_deref(),
                    created_at: now,
                    expires_at,
                },
            )?)?;
            Ok((id, key))
        })
        .await
    }

    pub async fn list_keys(&self, tenant: &str) -> HostResult<Vec<KeyInfo>> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.read(move |c| {
            c.query(&keys::list(d, &tenant))?
                .iter()
                .map(|r| keys::decode_info(r).map_err(HostError::from))
                .collect()
        })
        .await
    }

    /// Revokes a key of `tenant`; false when the tenant has no such key.
    pub async fn revoke_key(&self, tenant: &str, key_id: &str, now: i64) -> HostResult<bool> {
        let (d, tenant, key_id) = (self.dialect(), tenant.to_owned(), key_id.to_owned());
        let revoked = self
            .write(None, move |c| {
                Ok(c.execute(&keys::revoke(d, &tenant, &key_id, now))? > 0)
            })
            .await?;
        self.inner.keys.clear();
        Ok(revoked)
    }
}
