//! Binding an `Idempotency-Key` to the first request sent with it
//! (`crm_store::idempotency::claim`): a later request with the same key and another
//! body is refused (409) before anything is written.

use crm_store::idempotency;

use super::Store;
use crate::error::{HostError, HostResult};

impl Store {
    /// Binds `key` (already scoped to its endpoint) to `request_hash`, or checks that
    /// the request it is bound to is this one.
    pub async fn claim_idempotency(
        &self,
        tenant: &str,
        key: String,
        request_hash: String,
        now: i64,
    ) -> HostResult<()> {
        let d = self.dialect();
        let tenant = tenant.to_owned();
        let first = self
            .write(None, move |c| {
                c.execute(&idempotency::claim(d, &tenant, &key, &request_hash, now))?;
                let row = c
                    .query_opt(&idempotency::get(d, &tenant, &key))?
                    .ok_or_else(|| HostError::internal(anyhow::anyhow!("a claimed key is gone")))?;
                Ok((idempotency::decode(&row)?.request_hash, request_hash))
            })
            .await?;
        crm_api::request::same_request(&first.0, &first.1).map_err(HostError::Api)
    }
}
