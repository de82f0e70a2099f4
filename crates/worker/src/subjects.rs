//! `POST /v1/subjects/{userId}/erase` at the edge: the shared flow
//! (`crm_api::flow::erasure`), with the invocation's D1 queries as its budget.

use crm_api::erasure::ERASE_QUERY_BUDGET;
use crm_api::flow::erasure::EraseSubject;
use crm_core::Timestamp;
use worker::Env;

use crate::auth::now_ms;
use crate::http::{Answer, ApiResult, Ctx};
use crate::{flows, ingest, invocation};

/// [`ERASE_QUERY_BUDGET`], lowered by the tests (`ERASE_QUERY_BUDGET`) to show an
/// erasure that continues over several requests.
fn query_budget(env: &Env) -> usize {
    env.var("ERASE_QUERY_BUDGET")
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(ERASE_QUERY_BUDGET)
}

pub async fn erase(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let user_id = ctx.param("userId")?;
    let record_id = ingest::fresh_id(Timestamp::from_millis(now_ms())?)?;
    // What the request spent before the flow (credentials, the snapshot) counts too.
    let budget = query_budget(env).saturating_sub(invocation::queries_spent() as usize);
    let answer = flows::run(ctx, env, |cx| {
        Box::new(EraseSubject::new(cx, user_id, record_id, Some(budget)))
    })
    .await?;
    Answer::of(200, &answer)
}
