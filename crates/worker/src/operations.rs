//! `POST /v1/operations/{operation}` at the edge: metering for any CRM — check, price,
//! charge and record one activity, written to D1 directly (the answer needs the
//! outcome), answered exactly as crm-host answers it (`crm_api::operations`).

use crm_api::operations;
use crm_core::chain::canonical_json;
use crm_core::{CoreError, Timestamp};
use crm_store::keys::KeyScope;
use sha2::{Digest, Sha256};
use worker::Env;

use crate::auth::now_ms;
use crate::consumer::{self, Item};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{ingest, store};

pub async fn metering(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let operation = ctx.param("operation")?;
    let operation = operation.as_str();
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Ingest)?;
    let idempotency_key = ctx.idempotency_key.clone();
    let body = ctx.take_body()?;
    let tenant = caller.tenant().to_owned();
    let now = Timestamp::from_millis(now_ms())?;
    let id = match &idempotency_key {
        Some(k) => operations::derived_id(&tenant, &format!("op:{operation}"), k),
        None => ingest::fresh_id(now)?,
    };
    let input = operations::metering_input(operation, &id, body)?;
    // Refused before anything is enriched or queued when the database is near its cap.
    crate::capacity::admit(env, &crate::d1::Db::of_tenant(env, &tenant).await?).await?;
    let snap = store::snapshot(env, &caller).await?;
    let activity = snap
        .enrich_json(
            &input.to_string(),
            &id,
            now,
            ctx.client_ip.clone().as_deref(),
        )
        .map_err(|e: CoreError| Failure::from(e))?;
    let item = Item {
        activity,
        input_hash: hex::encode(Sha256::digest(canonical_json(&input).as_bytes())),
    };
    let stored = consumer::write(
        env,
        &tenant,
        std::slice::from_ref(&item),
        &[now.millis()],
        &[],
    )
    .await?
    .map_err(|r| {
        r.or_conflict(|_| {
            Failure::new(
                crm_api::error::ApiCode::Conflict,
                "this Idempotency-Key was used for a different request",
            )
        })
    })?
    .pop()
    .ok_or_else(|| Failure::internal("recording answered nothing"))?;
    let error_code = (stored.duplicate && stored.outcome == crm_core::Outcome::Failed)
        .then_some("replayed_failure");
    let (status, body) = operations::answer(&stored, None, error_code, 201).map_err(Failure)?;
    Answer::of(status, &body)
}
