//! `POST /v1/operator/tenants` at the edge (`crm_api::provisioning`): a tenant placed on
//! a shard, its opening balance and its first admin key, with the Worker secret
//! `OPERATOR_SECRET` — no SQL by hand.

use crm_api::provisioning::{ProvisionRequest, Provisioned};
use crm_api::requests::{KeyPlan, NewKeyAnswer};
use crm_core::TenantPolicy;
use crm_core::directory::DirectorySpec;
use crm_core::engine::TenantSnapshot;
use crm_core::wallet::{DEFAULT_PRIORITY, Grant, Wallet};
use crm_store::grants::{self, Label, Loaded, WalletOp};
use crm_store::keys::{self, KeyScope, NewKey};
use crm_store::tenants::{self, Head};
use crm_store::{Statement, shards};
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
        return Err(Failure(crm_api::ApiError::conflict(format!(
            "tenant `{}` already exists",
            plan.id
        ))));
    }
    let db = Db::shard(env, plan.shard)
        .ok_or_else(|| Failure::internal("a counted shard has no binding"))?;
    let now = now_ms();
    let policy = serde_json::to_string(&TenantPolicy {
        timezone: Some(plan.timezone.clone()),
        ..TenantPolicy::default()
    })
    .map_err(Failure::internal)?;
    let directory = serde_json::to_string(&DirectorySpec::default()).map_err(Failure::internal)?;
    TenantSnapshot::from_json(&plan.id, 1, &policy, &directory)?;
    let mut statements: Vec<Statement> =
        tenants::create(DIALECT, &plan.id, &plan.name, &policy, &directory, now);
    if plan.balance.units() > 0 {
        let empty = Head {
            seq: 0,
            hash: crm_core::chain::GENESIS.to_owned(),
            balance: crm_core::Credits::ZERO,
        };
        let opening = Grant::new(
            grants::OPENING_GRANT_ID.to_owned(),
            plan.balance.units(),
            now,
            None,
            DEFAULT_PRIORITY,
            now,
        )?;
        let loaded = Loaded {
            wallet: Wallet::new(Vec::new())?,
            labels: Default::default(),
        };
        let op = WalletOp::Grant {
            grant: opening,
            label: Label {
                reason: "opening balance".to_owned(),
                external_id: None,
            },
        };
        statements
            .extend(grants::plan(DIALECT, &plan.id, &empty, loaded, &[], op, now)?.statements);
    }
    let mut bytes = [0u8; keys::KEY_RANDOM_BYTES];
    random::fill(&mut bytes)?;
    let (key_id, key) = keys::from_random(&bytes);
    let hash = keys::hash_key(&key);
    let key_plan = KeyPlan {
        scopes: vec![KeyScope::Admin],
        label: Some("first admin key".to_owned()),
        expires_at: None,
    };
    statements.push(keys::insert(
        DIALECT,
        &NewKey {
            id: &key_id,
            tenant_id: &plan.id,
            key_hash: &hash,
            scopes: &key_plan.scopes,
            label: key_plan.label.as_deref(),
            created_at: now,
            expires_at: None,
        },
    )?);
    // The control database first (placement, the key's tenant): a placement whose
    // tenant row never got written is ignored by `exists` and overwritten by a retry.
    d1::transaction(
        &Db::control(env)?,
        &[
            shards::place(DIALECT, &plan.id, plan.shard),
            shards::register_key(DIALECT, &hash, &plan.id),
        ],
    )
    .await?;
    crate::shards::placed(&plan.id, plan.shard);
    d1::transaction(&db, &statements).await?;
    let answer = Provisioned {
        tenant_id: plan.id,
        shard: plan.shard,
        balance: plan.balance,
        admin_key: NewKeyAnswer::new(key_id, key, &key_plan)?,
    };
    Ok(Answer(
        201,
        serde_json::to_value(answer).map_err(Failure::internal)?,
    ))
}
