//! `Authorization: Bearer <api key | viewer token>`. The tenant comes from the key or
//! the signed token and nothing else; the rules of what each may do are
//! `crm_api::access`, shared with crm-host.

use std::cell::RefCell;

use crm_api::access::{Denied, Principal};
use crm_api::error::ApiCode;
use crm_api::viewer_tokens;
use crm_store::key_cache::KeyCache;
use crm_store::keys::{self, KeyScope};
use worker::{Env, Request};

use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};
use crate::shards;

/// Bytes of a tenant's signing secret: 256 bits, as HMAC-SHA256 wants.
pub const SECRET_BYTES: usize = 32;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    /// The tenant's directory version when the credential was checked.
    pub tenant_version: u64,
    pub principal: Principal,
}

fn denied(Denied(message): Denied) -> Failure {
    Failure::new(ApiCode::Forbidden, message)
}

fn unauthorized(message: &str) -> Failure {
    Failure::new(ApiCode::Unauthorized, message)
}

impl Caller {
    pub fn tenant(&self) -> &str {
        &self.tenant_id
    }

    pub fn require(&self, scope: KeyScope) -> ApiResult<&Caller> {
        self.principal.require(scope).map_err(denied)?;
        Ok(self)
    }
}

pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

pub async fn caller(req: &Request, env: &Env) -> ApiResult<Caller> {
    let header = req
        .headers()
        .get("authorization")?
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <api key>`"))?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthorized("the Authorization header must be `Bearer <api key or viewer token>`")
        })?;
    let now = now_ms();
    if token.starts_with("vt1.") {
        return viewer(env, token, now).await;
    }
    let hash = keys::hash_key(token);
    let cached = KEYS.with(|c| c.borrow().get(&hash, now));
    let found = match cached {
        Some(known) => known,
        None => {
            let found = look_up(env, &hash, now).await?;
            KEYS.with(|c| c.borrow_mut().put(hash, found.clone(), now));
            found
        }
    };
    let key = found.ok_or_else(|| unauthorized("unknown, expired or revoked API key"))?;
    Ok(Caller {
        tenant_id: key.tenant_id,
        tenant_version: key.tenant_version,
        principal: Principal::Key {
            id: key.id,
            scopes: key.scopes,
        },
    })
}

thread_local! {
    /// Keys (and misses) this isolate looked up in the last second
    /// (`crm_store::key_cache`): a repeated or unknown key costs no D1 query.
    static KEYS: RefCell<KeyCache> = RefCell::default();
}

/// Forgets this isolate's keys (after a revocation through it).
pub fn forget_keys() {
    KEYS.with(|c| c.borrow_mut().clear());
}

/// The live key with this hash: its tenant from the control database, the key from
/// the tenant's shard.
async fn look_up(env: &Env, hash: &str, now: i64) -> ApiResult<Option<keys::KeyRecord>> {
    let Some(tenant) = shards::tenant_of_key(env, hash).await? else {
        return Ok(None);
    };
    let db = Db::of_tenant(env, &tenant).await?;
    d1::query_opt(&db, &keys::lookup(DIALECT, hash, now))
        .await?
        .map(|row| keys::decode(&row))
        .transpose()
        .map_err(Into::into)
}

async fn viewer(env: &Env, token: &str, now: i64) -> ApiResult<Caller> {
    let (tenant, token_id) = viewer_tokens::claimed(token)?;
    let db = Db::of_tenant(env, &tenant).await?;
    let stored = d1::query_opt(
        &db,
        &crm_store::viewer_tokens::check(DIALECT, &tenant, token_id.as_deref()),
    )
    .await?
    .map(|row| crm_store::viewer_tokens::decode_check(&row))
    .transpose()?;
    let (claims, version) = viewer_tokens::verify(token, stored, now)?;
    Ok(Caller {
        tenant_id: claims.tenant,
        tenant_version: version,
        principal: Principal::Viewer {
            scope: claims.scope,
            expires_at: claims.expires_at,
        },
    })
}
