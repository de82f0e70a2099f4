//! Administration at the edge, with the same rules and answers as crm-host: directory
//! (replace and patch), policy and prices, credit grants, API keys, viewer tokens and
//! the session. Tenant changes are optimistic: apply to the stored row, compile, store
//! guarded on the version read — retried when another change landed first.

use std::rc::Rc;

use crate::auth::Caller;
use crm_api::error::ApiCode;
use crm_api::flow::credits::{AlertsQuery, BalanceQuery, CreditQuery, CreditRead};
use crm_api::requests::{KeyList, NewKeyAnswer, NewKeyRequest, ViewerTokenRequest};
use crm_api::versioned::{DirectoryDocument, DirectorySummary, PolicyDocument, PriceList};
use crm_api::viewer_tokens::Remembered;
use crm_api::wallet::{AdjustmentRequest, GrantRequest, WalletAnswer};
use crm_core::TenantPolicy;
use crm_core::Timestamp;
use crm_core::directory::{DirectoryPatch, DirectorySpec};
use crm_core::engine::TenantSnapshot;
use crm_core::pricing::PriceTable;
use crm_store::grants::{self, WalletOp};
use crm_store::idempotency;
use crm_store::keys::{self, KeyScope, NewKey};
use crm_store::shards;
use crm_store::tenants::{self, TenantRow};
use serde_json::{Value, json};
use worker::Env;

use crate::auth::{self, now_ms};
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{random, store};

/// Attempts at an optimistic change before giving up: each retry means another change
/// landed in between, which is rare.
const UPDATE_ATTEMPTS: usize = 5;

/// D1 refuses rows over 2 MB; a directory and policy must fit one `tenants` row and
/// one `tenant_versions` row with room for the other columns.
pub const MAX_STORED_DIRECTORY_BYTES: usize = 1_900_000;

fn conflict(message: &str) -> Failure {
    Failure::new(ApiCode::Conflict, message)
}

/// Applies `change` to the tenant's directory and policy and stores the result as the
/// next version; answers the compiled snapshot.
async fn update(
    env: &Env,
    tenant: &str,
    change: impl Fn(&mut DirectorySpec, &mut TenantPolicy) -> ApiResult<()>,
) -> ApiResult<Rc<TenantSnapshot>> {
    let db = Db::of_tenant(env, tenant).await?;
    for _ in 0..UPDATE_ATTEMPTS {
        let row: TenantRow = store::tenant_row(env, tenant).await?;
        let mut spec: DirectorySpec =
            serde_json::from_str(&row.directory).map_err(Failure::internal)?;
        let mut policy: TenantPolicy =
            serde_json::from_str(&row.policy).map_err(Failure::internal)?;
        change(&mut spec, &mut policy)?;
        let directory = serde_json::to_string(&spec).map_err(Failure::internal)?;
        let policy = serde_json::to_string(&policy).map_err(Failure::internal)?;
        if directory.len() + policy.len() > MAX_STORED_DIRECTORY_BYTES {
            return Err(Failure::too_large(format!(
                "the directory and policy take {} bytes; the edge stores at most {MAX_STORED_DIRECTORY_BYTES} (D1's row limit)",
                directory.len() + policy.len()
            )));
        }
        let version = row.version + 1;
        let snap = TenantSnapshot::from_json(tenant, version, &policy, &directory)?;
        let written = d1::transaction(
            &db,
            &[
                tenants::update_snapshot(DIALECT, tenant, row.version, &policy, &directory),
                tenants::record_version(DIALECT, tenant, version, &policy, &directory, now_ms()),
            ],
        )
        .await;
        match written {
            Ok(()) => return Ok(store::install(snap, directory.len() + policy.len())),
            // The guard refused: another change came first. Anything else is real.
            Err(_) if store::tenant_row(env, tenant).await?.version != row.version => {}
            Err(e) => return Err(e),
        }
    }
    Err(conflict(
        "the directory kept changing while this change was applied; retry",
    ))
}

fn summary(snap: &TenantSnapshot) -> ApiResult<Answer> {
    Answer::of(200, &DirectorySummary::of(&snap.directory, snap.version))
}

pub async fn directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    let row = store::tenant_row(env, caller.tenant()).await?;
    let directory: Value = serde_json::from_str(&row.directory).map_err(Failure::internal)?;
    Answer::of(
        200,
        &DirectoryDocument {
            version: row.version,
            directory,
        },
    )
}

pub async fn put_directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let spec: DirectorySpec = ctx.parse()?;
    let snap = update(env, caller.tenant(), |current, _| {
        current.clone_from(&spec);
        Ok(())
    })
    .await?;
    summary(&snap)
}

pub async fn patch_directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let patch: DirectoryPatch = ctx.parse()?;
    let snap = update(env, caller.tenant(), |current, _| {
        *current = current.patched(&patch)?;
        Ok(())
    })
    .await?;
    summary(&snap)
}

fn policy_answer(snap: &TenantSnapshot) -> ApiResult<Answer> {
    Answer::of(
        200,
        &PolicyDocument {
            version: snap.version,
            policy: snap.policy.clone(),
        },
    )
}

pub async fn policy(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    policy_answer(&*store::snapshot(env, &caller).await?)
}

pub async fn put_policy(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let next: TenantPolicy = ctx.parse()?;
    next.validate()?;
    let snap = update(env, caller.tenant(), |_, policy| {
        policy.clone_from(&next);
        Ok(())
    })
    .await?;
    policy_answer(&snap)
}

pub async fn prices(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    Answer::of(200, &store::snapshot(env, &caller).await?.policy.prices)
}

pub async fn put_prices(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let table: PriceTable = ctx.parse()?;
    let snap = update(env, caller.tenant(), |_, policy| {
        policy.prices = table.clone();
        Ok(())
    })
    .await?;
    Answer::of(
        200,
        &PriceList {
            prices: snap.policy.prices.clone(),
            version: snap.version,
        },
    )
}

/// `GET /v1/credits/prices/{operation}`: what one operation would cost (`crm_api::credits`).
pub async fn price(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let operation = ctx.param("operation")?;
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    let snap = store::snapshot(env, &caller).await?;
    let price = crm_api::credits::price(&snap.policy.prices, &operation)?;
    Ok(serde_json::to_value(price)
        .map_err(Failure::internal)?
        .into())
}

/// `GET /v1/credits/balance`.
pub async fn balance(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    credit_read::<BalanceQuery>(ctx, env).await
}

/// `GET /v1/credits/alerts`.
pub async fn alerts(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    credit_read::<AlertsQuery>(ctx, env).await
}

/// `GET /v1/credits/grants`.
pub async fn grants(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    credit_read::<crm_api::wallet::GrantsQuery>(ctx, env).await
}

/// `GET /v1/credits/ledger`.
pub async fn ledger(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    credit_read::<crm_store::ledger::LedgerQuery>(ctx, env).await
}

/// A tenant-wide credit read (`crm_api::flow::credits`).
async fn credit_read<Q: CreditQuery + 'static>(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer>
where
    Q::Answer: serde::Serialize,
{
    let params = ctx.query.clone();
    let answer =
        crate::reads::read(ctx, env, |cx| Box::new(CreditRead::<Q>::new(cx, params))).await?;
    Answer::of(200, &answer)
}

/// `POST /v1/credits/grants`.
pub async fn grant(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let body = ctx.take_body()?;
    let request = body.clone();
    let now = Timestamp::from_millis(now_ms())?;
    let op = crm_api::request::parse::<GrantRequest>(body)?
        .op(crate::ingest::fresh_id(now)?, now.millis())?;
    change_wallet(ctx, env, &caller, "grantCredits", &request, op).await
}

/// `POST /v1/credits/adjustments`.
pub async fn adjust(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let body = ctx.take_body()?;
    let request = body.clone();
    let op = crm_api::request::parse::<AdjustmentRequest>(body)?.op()?;
    change_wallet(ctx, env, &caller, "adjustCredits", &request, op).await
}

/// `POST /v1/credits/grants/{id}/void`.
pub async fn void_grant(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let op = crm_api::wallet::void(&id)?;
    change_wallet(
        ctx,
        env,
        &caller,
        "voidCreditGrant",
        &json!({ "id": id }),
        op,
    )
    .await
}

/// A wallet change (`crm_store::grants::plan`), guarded on the head, the balance and
/// each grant read (the consumer's writes are guarded on them too, so neither
/// overwrites the other), planned again when they moved. With an `Idempotency-Key`,
/// a retry answers the first answer and changes nothing.
async fn change_wallet(
    ctx: &Ctx,
    env: &Env,
    caller: &Caller,
    operation_id: &str,
    request: &Value,
    op: WalletOp,
) -> ApiResult<Answer> {
    let tenant = caller.tenant();
    let request_hash = crm_api::request::digest(request);
    let key = ctx
        .idempotency_key
        .as_ref()
        .map(|k| idempotency::scoped_key(operation_id, k));
    let db = Db::of_tenant(env, tenant).await?;
    for _ in 0..UPDATE_ATTEMPTS {
        if let Some(key) = &key
            && let Some(row) = d1::query_opt(&db, &idempotency::get(DIALECT, tenant, key)).await?
        {
            let first = idempotency::decode(&row)?;
            crm_api::request::same_request(&first.request_hash, &request_hash)?;
            let answer: Value = serde_json::from_str(&first.response).map_err(Failure::internal)?;
            return Ok(answer.into());
        }
        let store::Account {
            head,
            loaded,
            rules,
            ..
        } = store::account(env, tenant).await?;
        let wallet = loaded.wallet.clone();
        let now = now_ms();
        let planned = grants::plan(DIALECT, tenant, &head, loaded, &rules, op.clone(), now)?;
        let mut statements = planned.statements.clone();
        let answer =
            serde_json::to_value(WalletAnswer::new(planned)?).map_err(Failure::internal)?;
        if let Some(key) = &key {
            let recorded = idempotency::Recorded {
                request_hash: request_hash.clone(),
                status: 200,
                response: answer.to_string(),
            };
            statements.push(idempotency::insert(DIALECT, tenant, key, &recorded, now));
        }
        match d1::transaction(&db, &statements).await {
            Ok(()) => return Ok(answer.into()),
            // Refused by a guard or a concurrent use of the key: look again.
            Err(_)
                if key.is_some() || {
                    let now = store::account(env, tenant).await?;
                    now.head != head || now.loaded.wallet != wallet
                } => {}
            Err(e) => return Err(e),
        }
    }
    Err(conflict("the balance kept changing; retry"))
}

pub async fn list_keys(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let keys = d1::query(&db, &keys::list(DIALECT, caller.tenant()))
        .await?
        .iter()
        .map(keys::decode_info)
        .collect::<Result<Vec<_>, _>>()?;
    Answer::of(200, &KeyList { keys })
}

/// `POST /v1/keys`: 201 with the key's text; a retry under the same
/// `Idempotency-Key` answers 200 with the same key's id, without the text.
pub async fn create_key(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let now = now_ms();
    let body = ctx.take_body()?;
    let request_hash = crm_api::request::digest(&body);
    let plan = crm_api::request::parse::<NewKeyRequest>(body)?.plan(now)?;
    let tenant_db = Db::of_tenant(env, caller.tenant()).await?;
    let kept_as = ctx
        .idempotency_key
        .as_ref()
        .map(|k| idempotency::scoped_key("createKey", k));
    if let Some(kept_as) = &kept_as
        && let Some(row) = d1::query_opt(
            &tenant_db,
            &idempotency::get(DIALECT, caller.tenant(), kept_as),
        )
        .await?
    {
        let first = idempotency::decode(&row)?;
        crm_api::request::same_request(&first.request_hash, &request_hash)?;
        let answer = NewKeyAnswer::replayed(&first.response)?;
        return Ok(Answer(
            200,
            serde_json::to_value(answer).map_err(Failure::internal)?,
        ));
    }
    let mut bytes = [0u8; keys::KEY_RANDOM_BYTES];
    random::fill(&mut bytes)?;
    let (id, key) = keys::from_random(&bytes);
    let hash = keys::hash_key(&key);
    let mut statements = vec![keys::insert(
        DIALECT,
        &NewKey {
            id: &id,
            tenant_id: caller.tenant(),
            key_hash: &hash,
            scopes: &plan.scopes,
            label: plan.label.as_deref(),
            created_at: now,
            expires_at: plan.expires_at,
        },
    )?];
    let answer = NewKeyAnswer::new(id, key, &plan)?;
    if let Some(kept_as) = &kept_as {
        let recorded = idempotency::Recorded {
            request_hash,
            status: 201,
            response: answer.remembered(),
        };
        // In the key's own transaction: a concurrent first use of the same key loses
        // on the primary key (409), and its key row is never written.
        statements.push(idempotency::insert(
            DIALECT,
            caller.tenant(),
            kept_as,
            &recorded,
            now,
        ));
    }
    // The key's hash is registered in the control database first: a registration whose
    // key row never got written resolves to no key (401), never to a wrong tenant.
    d1::transaction(
        &Db::control(env)?,
        &[shards::register_key(DIALECT, &hash, caller.tenant())],
    )
    .await?;
    d1::transaction(&tenant_db, &statements).await?;
    Ok(Answer(
        201,
        serde_json::to_value(answer).map_err(Failure::internal)?,
    ))
}

pub async fn revoke_key(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let id = id.as_str();
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let found = d1::query(&db, &keys::list(DIALECT, caller.tenant()))
        .await?
        .iter()
        .map(keys::decode_info)
        .any(|k| k.is_ok_and(|k| k.id == id));
    if !found {
        return Err(Failure::not_found(format!(
            "no key `{}`",
            crm_core::time::clip(id)
        )));
    }
    d1::transaction(&db, &[keys::revoke(DIALECT, caller.tenant(), id, now_ms())]).await?;
    crate::auth::forget_keys();
    Ok(().into())
}

pub async fn viewer_token(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let body = ctx.take_body()?;
    let request_hash = crm_api::request::digest(&body);
    let request: ViewerTokenRequest = crm_api::request::parse(body)?;
    let snap = store::snapshot(env, &caller).await?;
    let (scope, ttl_ms) = request.plan(&snap.directory).map_err(Failure)?;
    let secret = auth::tenant_secret(env, caller.tenant()).await?;
    let now = Timestamp::from_millis(now_ms())?;
    let fresh = Remembered {
        id: crate::ingest::fresh_id(now)?,
        expires_at: now.millis() + ttl_ms,
        scope,
    };
    // With an Idempotency-Key the first request's id, expiry and scope are kept (never
    // the token), and every retry signs the same token from them.
    let token = match &ctx.idempotency_key {
        None => fresh,
        Some(k) => {
            let db = Db::of_tenant(env, caller.tenant()).await?;
            let kept_as = idempotency::scoped_key("createViewerToken", k);
            let recorded = idempotency::Recorded {
                request_hash: request_hash.clone(),
                status: 200,
                response: fresh.to_json(),
            };
            d1::transaction(
                &db,
                &[idempotency::remember(
                    DIALECT,
                    caller.tenant(),
                    &kept_as,
                    &recorded,
                    now.millis(),
                )],
            )
            .await?;
            let row = d1::query_opt(&db, &idempotency::get(DIALECT, caller.tenant(), &kept_as))
                .await?
                .ok_or_else(|| Failure::internal("the kept answer is gone"))?;
            let first = idempotency::decode(&row)?;
            crm_api::request::same_request(&first.request_hash, &request_hash)?;
            Remembered::from_json(&first.response)?
        }
    };
    Ok(serde_json::to_value(token.issue(caller.tenant(), &secret)?)
        .map_err(Failure::internal)?
        .into())
}

/// `DELETE /v1/viewer-tokens/{id}`: that token is refused from the next request on.
pub async fn revoke_viewer_token(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let now = now_ms();
    let (id, until) = crm_api::viewer_tokens::revocation(&id, now)?;
    d1::transaction(
        &Db::of_tenant(env, caller.tenant()).await?,
        &[crm_store::viewer_tokens::revoke(
            DIALECT,
            caller.tenant(),
            &id,
            until,
            now,
        )],
    )
    .await?;
    Ok(().into())
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret; every earlier token is
/// refused from the next request on.
pub async fn rotate_viewer_secret(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let mut fresh = [0u8; auth::SECRET_BYTES];
    random::fill(&mut fresh)?;
    d1::transaction(
        &Db::of_tenant(env, caller.tenant()).await?,
        &[tenants::rotate_secret(
            DIALECT,
            caller.tenant(),
            &hex::encode(fresh),
        )],
    )
    .await?;
    Ok(().into())
}

pub async fn session(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Read)?;
    let row = store::tenant_row(env, caller.tenant()).await?;
    let snap = store::snapshot(env, &caller).await?;
    let spec: Value = serde_json::from_str(&row.directory).map_err(Failure::internal)?;
    Answer::of(
        200,
        &caller
            .principal
            .session(caller.tenant(), &spec, &snap.directory)?,
    )
}
