//! Reads at the edge: permission checks, and the read flows of `crm_api::flow`
//! (listings, one record, reports, dashboards), run by `flows`.

use crm_api::flow::activity::ActivityFlow;
use crm_api::flow::dashboard::DashboardFlow;
use crm_api::flow::listing::ListingFlow;
use crm_api::flow::report::ReportFlow;
use crm_api::permissions::{CheckAnswer, Checks};
use crm_store::listing::Subject;
use serde_json::Value;
use worker::{Env, Request};

use crate::http::{self, Answer, ApiResult, Ctx, Failure};
use crate::{flows, store};

pub async fn check(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    let checks = Checks::from_body(ctx.take_body()?)?;
    let snap = store::snapshot(env, &caller).await?;
    let answer = match checks {
        Checks::Batch(checks) => CheckAnswer::Batch {
            decisions: snap.directory.check_batch(&checks)?,
        },
        Checks::One(one) => CheckAnswer::One(snap.directory.check(&one.user_id, &one.permission)?),
    };
    Answer::of(200, &answer)
}

/// The conformance vectors' entry point, enabled only where `CONFORMANCE = "on"` (tests).
pub async fn conformance(req: &mut Request) -> ApiResult<Answer> {
    let body = http::hook_body(req).await?;
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let answer = crm_core::json_api::evaluate_json(
        &get("setup").to_string(),
        get("op").as_str().unwrap_or_default(),
        &get("input").to_string(),
    );
    Ok(Answer(
        200,
        serde_json::from_str(&answer).map_err(Failure::internal)?,
    ))
}

pub async fn list(ctx: &mut Ctx, env: &Env, subject: Subject) -> ApiResult<Answer> {
    let params = ctx.query.clone();
    let page = flows::run(ctx, env, |cx| {
        Box::new(ListingFlow::subject(cx, subject, params))
    })
    .await?;
    Answer::of(200, &page)
}

/// `GET /v1/activities/{id}`.
pub async fn one(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let record = flows::run(ctx, env, |cx| Box::new(ActivityFlow::new(cx, id))).await?;
    Answer::of(200, &record)
}

/// `GET /v1/entities/{type}/{id}/activities`.
pub async fn entity(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let (entity_type, entity_id) = (ctx.param("type")?, ctx.param("id")?);
    let params = ctx.query.clone();
    let page = flows::run(ctx, env, |cx| {
        Box::new(ListingFlow::entity(cx, entity_type, entity_id, params))
    })
    .await?;
    Answer::of(200, &page)
}

pub async fn report(ctx: &mut Ctx, env: &Env, subject: Subject) -> ApiResult<Answer> {
    let params = ctx.query.clone();
    let report = flows::run(ctx, env, |cx| {
        Box::new(ReportFlow::new(cx, subject, params))
    })
    .await?;
    Answer::of(200, &report)
}

/// `GET /v1/dashboards/users/{id}`.
pub async fn dashboard(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let params = ctx.query.clone();
    let dashboard = flows::run(ctx, env, |cx| Box::new(DashboardFlow::new(cx, id, params))).await?;
    Answer::of(200, &dashboard)
}
