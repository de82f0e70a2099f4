//! Health, readiness, the OpenAPI document, the tenant's figures, and the answer for a
//! path or method the edge does not route.

use crm_api::endpoints;
use crm_api::status::{Health, Metrics, Readiness, Ready, UpstreamProgress};
use crm_store::{export, outbox};
use worker::Env;

use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};

/// Whether the test hooks are on (`CONFORMANCE = "on"`, the e2e suite only).
pub fn testing(env: &Env) -> bool {
    env.var("CONFORMANCE")
        .map(|v| v.to_string())
        .unwrap_or_default()
        == "on"
}

/// What `/readyz` and `/v1/metrics` name as the engine here.
const ENGINE: &str = "worker";

pub fn health() -> ApiResult<Answer> {
    Answer::of(200, &Health::OK)
}

/// Ready when the control database (which every request reads first) answers.
pub async fn ready(env: &Env) -> ApiResult<Answer> {
    d1::query(&Db::control(env)?, &DIALECT.stmt("SELECT 1", vec![]))
        .await
        .map_err(|_| {
            Failure(crm_api::error::ApiError::unavailable(
                "D1 does not answer",
                crm_api::storage::BUSY_RETRY_AFTER_SECONDS,
            ))
        })?;
    Answer::of(
        200,
        &Ready {
            status: Readiness::Ready,
            engine: ENGINE.to_owned(),
            fanout: None,
        },
    )
}

/// The document as built (`crm_api::endpoints::DOCUMENT`), byte for byte what crm-host
/// serves.
pub fn openapi() -> worker::Result<worker::Response> {
    let mut response = worker::Response::ok(endpoints::DOCUMENT)?;
    response
        .headers_mut()
        .set("content-type", "application/json")?;
    Ok(response)
}

/// `GET /v1/metrics` (admin): what D1 knows about the caller's tenant — the chain head,
/// activities waiting in the queue, upstream delivery, dead letters. (Request counters
/// live in Workers analytics: an isolate's own counts would mean nothing.)
pub async fn metrics(ctx: &Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?;
    let tenant = caller.tenant();
    let db = Db::of_tenant(env, tenant).await?;
    let bounds = d1::query_opt(&db, &export::bounds(DIALECT, tenant))
        .await?
        .map(|r| export::decode_bounds(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found("the key's tenant does not exist"))?;
    let count = |sql: &str| DIALECT.stmt(sql, vec![tenant.into()]);
    let queued = d1::query_opt(
        &db,
        &count("SELECT COUNT(*) FROM queued_ids WHERE tenant_id = ?1"),
    )
    .await?
    .map(|r| r.uint(0))
    .transpose()?
    .unwrap_or(0);
    let dead = d1::query_opt(
        &db,
        &count("SELECT COUNT(*) FROM dead_letters WHERE tenant_id = ?1"),
    )
    .await?
    .map(|r| r.uint(0))
    .transpose()?
    .unwrap_or(0);
    let delivered = d1::query_opt(&db, &outbox::cursor(DIALECT, tenant, "upstream"))
        .await?
        .map(|r| r.uint(0))
        .transpose()?
        .unwrap_or(0);
    Answer::of(
        200,
        &Metrics {
            tenant_id: tenant.to_owned(),
            engine: ENGINE.to_owned(),
            requests: None,
            fanout: None,
            head_seq: Some(bounds.head_seq),
            queued_ids: Some(queued),
            dead_letters: Some(dead),
            upstream: Some(UpstreamProgress {
                delivered_seq: delivered,
                pending: bounds.head_seq.saturating_sub(delivered),
            }),
            isolate: Some(crate::invocation::usage(crate::invocation::Limits::of(env))),
        },
    )
}
