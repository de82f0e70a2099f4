//! `POST /v1/operator/tenants` at the edge (`crm_api::provisioning`): a tenant placed on
//! a shard, its opening balance and its first admin key, with the Worker secret
//! `OPERATOR_SECRET` — no SQL by hand.

use crm_api::provisioning::ProvisionRequest;
use crm_store::{keys, shards, tenants};
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::random;

/// Shards a deployment can bind (`DB`, `DB_1`, …); counting stops at the first gap.
const MAX_SHARDS: u32 = 64;

/// The operator's secret: a Worker secret in production, a variable in development.
pub fn secret(env: &Env) -> Option<String> {
    env.secret("OPERATOR_SECRET")
        .or_else(|_| env.var("OPERATOR_SECRET"))
        .ok()
        .map(|s| s.to_string())
        .filter(|s| crm_api::provisioning::usable_secret(s).is_ok())
}

fn shard_count(env: &Env) -> u32 {
    (0..MAX_SHARDS)
        .take_while(|n| Db::shard(env, *n).is_some())
        .count() as u32
}

/// Whether the tenant exists: its placement names a shard holding its row (a
/// placement left by an attempt that failed before the row was written does not
/// count), or — unplaced tenants live on shard 0 — shard 0 holds it.
async fn exists(env: &Env, tenant: &str) -> ApiResult<bool> {
    let control = Db::control(env)?;
    let shard = match d1::query_opt(&control, &shards::shard_of(DIALECT, tenant)).await? {
        Some(row) => shards::Placement::decode(&row)?.shard,
        None => 0,
    };
    let Some(db) = Db::shard(env, shard) else {
        return Ok(false);
    };
    Ok(d1::query_opt(&db, &tenants::get(DIALECT, tenant, false))
        .await?
        .is_some())
}

pub async fn provision(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let plan = ctx.parse::<ProvisionRequest>()?.plan(shard_count(env))?;
    if exists(env, &plan.id).await? {
        return Err(Failure(crm_api::provisioning::exists(&plan.id)));
    }
    let (id, shard) = (plan.id.clone(), plan.shard);
    let db =
        Db::shard(env, shard).ok_or_else(|| Failure::internal("a counted shard has no binding"))?;
    let mut key_random = [0u8; keys::KEY_RANDOM_BYTES];
    random::fill(&mut key_random)?;
    let new = plan.writes(DIALECT, now_ms(), &key_random)?;
    // The control database first (placement, the key's tenant): a placement whose
    // tenant row never got written is ignored by `exists` and overwritten by a retry.
    d1::transaction(
        &Db::control(env)?,
        &[
            shards::place(DIALECT, &id, shard),
            shards::register_key(DIALECT, &new.key_hash, &id),
        ],
    )
    .await?;
    crate::shards::placed(&id, shard);
    d1::transaction(&db, &new.statements).await?;
    Answer::of(201, &new.answer)
}
