//! Tenant shards (see docs/edge-capacity.md): shard `n` is a D1 database and a queue,
//! bound as `DB`/`ACTIVITIES` for shard 0 and `DB_n`/`ACTIVITIES_n` for the others.
//! The control database (`DB`) maps tenants to shards and API keys to tenants
//! (`crm_store::shards`); both answers are cached per isolate for [`CACHE_MS`].

use std::cell::RefCell;
use std::collections::HashMap;

use crm_store::shards::{self, Placement};
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};

/// How long an isolate trusts its copy of a placement. A key's tenant never changes;
/// a tenant's shard changes only when it is moved, and a move waits this long after
/// marking the tenant moving before it copies (ARCHITECTURE.md, "Tenant shards").
/// `PLACEMENT_CACHE_MS` can only lower it (the tests' moves).
const CACHE_MS: i64 = 60_000;

/// How long a caller of a tenant being moved should wait: a move copies for seconds to
/// minutes, then isolates learn the new placement within [`CACHE_MS`].
const MOVING_RETRY_AFTER_SECONDS: u32 = 60;

/// Entries per cache before it is emptied: an isolate serving more tenants or keys
/// than this re-reads placements rather than growing without bound.
const CACHE_ENTRIES: usize = 10_000;

thread_local! {
    static TENANT_SHARD: RefCell<HashMap<String, (Placement, i64)>> = RefCell::new(HashMap::new());
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

/// The shard holding `tenant`; 503 with `Retry-After` while it is being moved, so
/// nothing of it is read or written (the consumer retries its packets meanwhile).
pub async fn of_tenant(env: &Env, tenant: &str) -> ApiResult<u32> {
    let placement = placement(env, tenant).await?;
    if placement.moving {
        return Err(Failure(crm_api::ApiError::unavailable(
            "this tenant is being moved to another shard; retry",
            MOVING_RETRY_AFTER_SECONDS,
        )));
    }
    Ok(placement.shard)
}

/// Where `tenant` is placed, cached per isolate.
pub async fn placement(env: &Env, tenant: &str) -> ApiResult<Placement> {
    let now = now_ms();
    let ttl = env
        .var("PLACEMENT_CACHE_MS")
        .ok()
        .and_then(|v| v.to_string().parse::<i64>().ok())
        .map_or(CACHE_MS, |v| v.min(CACHE_MS));
    if let Some(placement) = TENANT_SHARD.with_borrow(|m| {
        m.get(tenant)
            .filter(|(_, at)| now - at < ttl)
            .map(|(p, _)| *p)
    }) {
        return Ok(placement);
    }
    let placement =
        match d1::query_opt(&Db::control(env)?, &shards::shard_of(DIALECT, tenant)).await? {
            Some(row) => Placement::decode(&row)?,
            None => Placement::DEFAULT,
        };
    TENANT_SHARD.with_borrow_mut(|m| {
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(tenant.to_owned(), (placement, now));
    });
    Ok(placement)
}

/// Remembers a placement this isolate just wrote (a probe before it may have cached
/// the default shard).
pub fn placed(tenant: &str, shard: u32) {
    let placement = Placement {
        shard,
        moving: false,
    };
    TENANT_SHARD.with_borrow_mut(|m| {
        m.insert(tenant.to_owned(), (placement, now_ms()));
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
