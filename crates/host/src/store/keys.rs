//! API key operations. Keys are random (192 bits), shown once, stored as SHA-256.

use crm_api::requests::{KeyPlan, NewKeyAnswer};
use crm_store::idempotency;
use crm_store::keys::{self, KeyInfo, KeyRecord, NewKey};
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
    /// Answered from the key cache when it can (`crm_store::key_cache`).
    pub async fn key(&self, key: &str, now: i64) -> HostResult<Option<KeyRecord>> {
        let (d, hash) = (self.dialect(), hash_key(key));
        if let Some(known) = self.inner.keys.read().ok().and_then(|c| c.get(&hash, now)) {
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
        if let Ok(mut cache) = self.inner.keys.write() {
            cache.put(hash, found.clone(), now);
        }
        Ok(found)
    }

    /// Creates a key; answers it with its text (the text is never stored). With an
    /// idempotency key `(key, request hash)`, a retry of the same request answers the
    /// key it made, without the text, and `false` (nothing new); another request under
    /// the same key is 409.
    pub async fn create_key(
        &self,
        tenant: &str,
        plan: KeyPlan,
        now: i64,
        idempotency: Option<(String, String)>,
    ) -> HostResult<(NewKeyAnswer, bool)> {
        let (d, tenant) = (self.dialect(), tenant.to_owned());
        self.write(None, move |c| {
            let row = c.query_opt(&crm_store::tenants::get(d, &tenant, false))?;
            if row.is_none() {
                return Err(HostError::NotFound(format!(
                    "tenant `{tenant}` does not exist"
                )));
            }
            if let Some((key, request_hash)) = &idempotency
                && let Some(row) = c.query_opt(&idempotency::get(d, &tenant, key))?
            {
                let first = idempotency::decode(&row)?;
                crm_api::request::same_request(&first.request_hash, request_hash)
                    .map_err(HostError::Api)?;
                let answer = NewKeyAnswer::replayed(&first.response).map_err(HostError::Api)?;
                return Ok((answer, false));
            }
            let (id, key) = generate();
            let hash = hash_key(&key);
            c.execute(&keys::insert(
                d,
                &NewKey {
                    id: &id,
                    tenant_id: &tenant,
                    key_hash: &hash,
                    scopes: &plan.scopes,
                    label: plan.label.as_deref(),
                    created_at: now,
                    expires_at: plan.expires_at,
                },
            )?)?;
            let answer = NewKeyAnswer::new(id, key, &plan)?;
            if let Some((key, request_hash)) = idempotency {
                let recorded = idempotency::Recorded {
                    request_hash,
                    status: 201,
                    response: answer.remembered(),
                };
                c.execute(&idempotency::insert(d, &tenant, &key, &recorded, now))?;
            }
            Ok((answer, true))
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
        self.forget_keys();
        Ok(revoked)
    }

    /// Forgets every key looked up: after a revocation, each key is looked up again.
    pub fn forget_keys(&self) {
        if let Ok(mut cache) = self.inner.keys.write() {
            cache.clear();
        }
    }
}
