//! Health, readiness, the OpenAPI document, the tenant's figures, and the answer for a
//! path or method the edge does not route.

use crm_core::api_spec;
use crm_store::keys::KeyScope;
use crm_store::{export, outbox};
use serde_json::json;
use worker::{Env, Request};

use crate::auth;
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Failure};

/// Whether the test hooks are on (`CONFORMANCE = "on"`, the e2e suite only).
pub fn testing(env: &Env) -> bool {
    env.var("CONFORMANCE")
        .map(|v| v.to_string())
        .unwrap_or_default()
        == "on"
}

pub fn health() -> Answer {
    json!({ "status": "ok" }).into()
}

/// Ready when the control database (which every request reads first) answers.
pub async fn ready(env: &Env) -> ApiResult<Answer> {
    d1::query(&Db::control(env)?, &DIALECT.stmt("SELECT 1", vec![]))
        .await
        .map_err(|_| {
            Failure::new(
                crm_core::api_error::ApiCode::Unavailable,
                "D1 does not answer",
            )
        })?;
    Ok(json!({ "status": "ready", "runtime": "worker" }).into())
}

pub fn openapi() -> Answer {
    api_spec::document(env!("CARGO_PKG_VERSION")).into()
}

/// `GET /v1/metrics` (admin): what D1 knows about the caller's tenant — the chain head,
/// activities waiting in the queue, upstream delivery, dead letters. (Request counters
/// live in Workers analytics: an isolate's own counts would mean nothing.)
pub async fn metrics(req: &Request, env: &Env) -> ApiResult<Answer> {
    let caller = auth::caller(req, env).await?;
    caller.require(KeyScope::Admin)?;
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
    .map(|r| r.int(0))
    .transpose()?
    .unwrap_or(0);
    let dead = d1::query_opt(
        &db,
        &count("SELECT COUNT(*) FROM dead_letters WHERE tenant_id = ?1"),
    )
    .await?
    .map(|r| r.int(0))
    .transpose()?
    .unwrap_or(0);
    let delivered = d1::query_opt(&db, &outbox::cursor(DIALECT, tenant, "upstream"))
        .await?
        .map(|r| r.uint(0))
        .transpose()?
        .unwrap_or(0);
    Ok(json!({
        "runtime": "worker",
        "headSeq": bounds.head_seq,
        "queuedIds": queued,
        "deadLetters": dead,
        "upstream": {
            "deliveredSeq": delivered,
            "pending": bounds.head_seq.saturating_sub(delivered),
        },
    })
    .into())
}

/// 405 when the path is an endpoint with other methods, else 404 (as crm-host).
pub fn unrouted(req: &Request) -> Failure {
    let path = req.path();
    let matches = |template: &str| {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), path.split('/').collect());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    };
    if api_spec::ENDPOINTS.iter().any(|e| matches(e.path)) {
        method_not_allowed()
    } else {
        Failure::not_found("no such endpoint")
    }
}

pub fn method_not_allowed() -> Failure {
    Failure::new(
        crm_core::api_error::ApiCode::MethodNotAllowed,
        "this endpoint does not support that method",
    )
}
