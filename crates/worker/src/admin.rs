//! Administration at the edge: directory, policy, prices, credits, keys, viewer tokens
//! and the session, each the `crm_api::flow` crm-host drives too. Written here: what is
//! the edge's own — D1's row cap on a stored directory, the isolate's snapshot cache,
//! and key creation, whose hash is registered in the control database first.

use crm_api::access::Session;
use crm_api::flow::Idempotency;
use crm_api::flow::credentials::{
    AdminWrite, ListKeys, RevokeKey, RevokeViewerToken, RotateViewerSecret,
};
use crm_api::flow::credits::{AlertsQuery, BalanceQuery, CreditQuery, CreditRead};
use crm_api::flow::new_key::CreateKey;
use crm_api::flow::tenant_documents::{self, FromSnapshot, ReadRow};
use crm_api::flow::tenant_update::{
    Change, D1_MAX_STORED_BYTES, PatchDirectory, ReplaceDirectory, ReplacePolicy, ReplacePrices,
    TenantUpdate,
};
use crm_api::flow::viewer_token::IssueViewerToken;
use crm_api::flow::wallet_change::WalletChange;
use crm_api::requests::{NewKeyRequest, ViewerTokenRequest};
use crm_api::versioned::DirectoryDocument;
use crm_api::wallet::{AdjustmentRequest, GrantRequest};
use crm_core::Timestamp;
use crm_store::grants::WalletOp;
use crm_store::keys::{self, KeyScope};
use crm_store::shards;
use serde_json::{Value, json};
use worker::Env;

use crate::auth::{self, now_ms};
use crate::d1::{self, DIALECT, Db};
use crate::flows::run;
use crate::http::{Answer, ApiResult, Ctx};
use crate::{random, store};

/// Stores a change of the directory or policy (`crm_api::flow::tenant_update`, the
/// flow crm-host runs too, under D1's row limit) and caches the new snapshot.
async fn change<C: Change + 'static>(ctx: &mut Ctx, env: &Env, change: C) -> ApiResult<Answer>
where
    C::Answer: serde::Serialize,
{
    let updated = run(ctx, env, |cx| {
        Box::new(TenantUpdate::new(cx, change, Some(D1_MAX_STORED_BYTES)))
    })
    .await?;
    store::install(updated.snapshot, updated.stored_bytes);
    Answer::of(200, &updated.answer)
}

pub async fn directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let doc = run(ctx, env, |cx| {
        Box::new(ReadRow::<DirectoryDocument>::new(cx))
    })
    .await?;
    Answer::of(200, &doc)
}

pub async fn put_directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let spec = ctx.parse()?;
    change(ctx, env, ReplaceDirectory(spec)).await
}

pub async fn patch_directory(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let patch = ctx.parse()?;
    change(ctx, env, PatchDirectory(patch)).await
}

pub async fn policy(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let doc = run(ctx, env, |cx| {
        Box::new(FromSnapshot::new(tenant_documents::policy(cx)))
    })
    .await?;
    Answer::of(200, &doc)
}

pub async fn put_policy(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let policy = ctx.parse()?;
    change(ctx, env, ReplacePolicy(policy)).await
}

pub async fn prices(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let table = run(ctx, env, |cx| {
        Box::new(FromSnapshot::new(tenant_documents::prices(cx)))
    })
    .await?;
    Answer::of(200, &table)
}

pub async fn put_prices(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let table = ctx.parse()?;
    change(ctx, env, ReplacePrices(table)).await
}

/// `GET /v1/credits/prices/{operation}`.
pub async fn price(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let operation = ctx.param("operation")?;
    let price = run(ctx, env, |cx| {
        Box::new(FromSnapshot::new(tenant_documents::price(cx, &operation)))
    })
    .await?;
    Answer::of(200, &price)
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
    let answer = run(ctx, env, |cx| Box::new(CreditRead::<Q>::new(cx, params))).await?;
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
    change_wallet(ctx, env, "grantCredits", &request, op).await
}

/// `POST /v1/credits/adjustments`.
pub async fn adjust(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let body = ctx.take_body()?;
    let request = body.clone();
    let op = crm_api::request::parse::<AdjustmentRequest>(body)?.op()?;
    change_wallet(ctx, env, "adjustCredits", &request, op).await
}

/// `POST /v1/credits/grants/{id}/void`.
pub async fn void_grant(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let op = crm_api::wallet::void(&id)?;
    change_wallet(ctx, env, "voidCreditGrant", &json!({ "id": id }), op).await
}

/// A wallet change (`crm_api::flow::wallet_change`, as crm-host runs it), idempotent
/// by `Idempotency-Key` within the endpoint named by `operation_id`.
async fn change_wallet(
    ctx: &Ctx,
    env: &Env,
    operation_id: &str,
    request: &Value,
    op: WalletOp,
) -> ApiResult<Answer> {
    let idempotency = ctx
        .idempotency_key
        .as_deref()
        .map(|k| Idempotency::of(operation_id, k, request));
    let answer = run(ctx, env, |cx| {
        Box::new(WalletChange::new(cx, op, idempotency))
    })
    .await?;
    Answer::of(200, &answer)
}

pub async fn list_keys(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let keys = run(ctx, env, |cx| Box::new(ListKeys::new(cx))).await?;
    Answer::of(200, &keys)
}

/// `POST /v1/keys` (`crm_api::flow::new_key`): 201 with the key's text, or 200 for a
/// retry under the same `Idempotency-Key`.
pub async fn create_key(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let body = ctx.take_body()?;
    let idempotency = ctx
        .idempotency_key
        .as_deref()
        .map(|k| Idempotency::of("createKey", k, &body));
    let request: NewKeyRequest = crm_api::request::parse(body)?;
    let mut random = [0u8; keys::KEY_RANDOM_BYTES];
    random::fill(&mut random)?;
    // The key's hash is registered in the control database first: a registration
    // whose key row never got written (a replay, a failure) resolves to no key (401),
    // never to a wrong tenant.
    let hash = keys::hash_key(&keys::from_random(&random).1);
    d1::transaction(
        &Db::control(env)?,
        &[shards::register_key(DIALECT, &hash, caller.tenant())],
    )
    .await?;
    let created = run(ctx, env, |cx| {
        Box::new(CreateKey::new(cx, request, idempotency, random))
    })
    .await?;
    Answer::of(if created.fresh { 201 } else { 200 }, &created.answer)
}

pub async fn revoke_key(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    run(ctx, env, |cx| Box::new(AdminWrite::new(cx, RevokeKey(id)))).await?;
    crate::auth::forget_keys();
    Ok(().into())
}

pub async fn viewer_token(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let body = ctx.take_body()?;
    let idempotency = ctx
        .idempotency_key
        .as_deref()
        .map(|k| Idempotency::of("createViewerToken", k, &body));
    let request: ViewerTokenRequest = crm_api::request::parse(body)?;
    let fresh_id = crate::ingest::fresh_id(Timestamp::from_millis(now_ms())?)?;
    let mut fresh_secret = [0u8; auth::SECRET_BYTES];
    random::fill(&mut fresh_secret)?;
    let fresh_secret = hex::encode(fresh_secret);
    let token = run(ctx, env, |cx| {
        Box::new(IssueViewerToken::new(
            cx,
            request,
            idempotency,
            fresh_id,
            fresh_secret,
        ))
    })
    .await?;
    Answer::of(200, &token)
}

/// `DELETE /v1/viewer-tokens/{id}`.
pub async fn revoke_viewer_token(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    run(ctx, env, |cx| {
        Box::new(AdminWrite::new(cx, RevokeViewerToken(id)))
    })
    .await?;
    Ok(().into())
}

/// `POST /v1/viewer-tokens/rotate`.
pub async fn rotate_viewer_secret(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let mut fresh = [0u8; auth::SECRET_BYTES];
    random::fill(&mut fresh)?;
    let change = RotateViewerSecret(hex::encode(fresh));
    run(ctx, env, |cx| Box::new(AdminWrite::new(cx, change))).await?;
    Ok(().into())
}

pub async fn session(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let session = run(ctx, env, |cx| Box::new(ReadRow::<Session>::new(cx))).await?;
    Answer::of(200, &session)
}
