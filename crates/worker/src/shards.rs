//! Tenant shards (see docs/edge-capacity.md): shard `n` is a D1 database and a queue,
//! bound as `DB`/`ACTIVITIES` for shard 0 and `DB_n`/`ACTIVITIES_n` for the others.
//! The control database (`DB`) maps tenants to shards and API keys to tenants
//! (`crm_store::shards`); both answers are cached per isolate for [`CACHE_MS`].

use std::cell::RefCell;
use std::collections::HashMap;

use crm_store::shards;
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::ApiResult;

/// How long an isolate trusts its copy of a placement. A key's tenant never changes;
/// a tenant's shard changes only when it is moved, and a move waits this long after
/// switching the row before it removes the old copy (ARCHITECTURE.md, "Tenant shards").
const CACHE_MS: i64 = 60_000;

/// Entries per cache before it is emptied: an isolate serving more tenants or keys
/// than this re-reads placements rather than growing without bound.
const CACHE_ENTRIES: usize = 10_000;

thread_local! {
    static TENANT_SHARD: RefCell<HashMap<String, (u32, i64)>> = RefCell::new(HashMap::new());
    static KEY_TENANT: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// The binding of shard `n`'s D1 database.
pub fn database(shard: u32) -> String {
    match shard {
        0 => "DB".to_owned(),
        n => format!("DB_{n}"),
    }
}

/// The binding of shard `n`'s activity queue.
pub fn queue(shard: u32) -> String {
    match shard {
        0 => "ACTIVITIES".to_owned(),
        n => format!("ACTIVITIES_{n}"),
    }
}

/// The shard holding `tenant`.
pub async fn of_tenant(env: &Env, tenant: &str) -> ApiResult<u32> {
    let now = now_ms();
    if let Some(shard) = TENANT_SHARD.with_borrow(|m| {
        m.get(tenant)
            .filter(|(_, at)| now - at < CACHE_MS)
            .map(|(s, _)| *s)
    }) {
        return Ok(shard);
    }
    let shard = match d1::query_opt(&Db::control(env)?, &shards::shard_of(DIALECT, tenant)).await? {
        Some(row) => shards::decode_shard(&row)?,
        None => 0,
    };
    TENANT_SHARD.with_borrow_mut(|m| {
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(tenant.to_owned(), (shard, now));
    });
    Ok(shard)
}

/// Remembers a placement this isolate just wrote (a probe before it may have cached
/// the default shard).
pub fn placed(tenant: &str, shard: u32) {
    TENANT_SHARD.with_borrow_mut(|m| {
        m.insert(tenant.to_owned(), (shard, now_ms()));
    });
}

/// The tenant an API key (by its hash) belongs to, if the key was ever issued.
pub async fn tenant_of_key(env: &Env, key_hash: &str) -> ApiResult<Option<String>> {
    if let Some(t) = KEY_TENANT.with_borrow(|m| m.get(key_hash).cloned()) {
        return Ok(Some(t));
    }
    let Some(row) =
        d1::query_opt(&Db::control(env)?, &shards::key_tenant(DIALECT, key_hash)).await?
    else {
        return Ok(None);
    };
    let tenant = row.string(0)?;
    KEY_TENANT.with_borrow_mut(|m| {
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key_hash.to_owned(), tenant.clone());
    });
    Ok(Some(tenant))
}
