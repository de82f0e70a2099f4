//! `POST /v1/permissions/check`: `{userId, permission}` or `{checks: [...]}`.

use axum::Json;
use axum::extract::State;
use crm_core::limits::MAX_CHECK_BATCH;
use crm_core::permission::CheckRequest;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::App;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    checks: Vec<CheckRequest>,
}

pub async fn check(State(app): State<App>, caller: Caller, body: Body) -> HostResult<Json<Value>> {
    let tenant = caller.snapshot(&app).await?;
    if body.0.get("checks").is_some() {
        let batch: Batch = body.parse()?;
        if batch.checks.len() > MAX_CHECK_BATCH {
            return Err(HostError::PayloadTooLarge(format!(
                "at most {MAX_CHECK_BATCH} checks per request"
            )));
        }
        let decisions = app
            .engines
            .run(move |e| e.check_batch(&tenant, &batch.checks))
            .await?;
        for d in &decisions {
            app.stats.checked(d.allowed);
        }
        return Ok(Json(json!({ "decisions": decisions })));
    }
    let one: CheckRequest = body.parse()?;
    // A single check takes microseconds: answered inline, a thread hop would cost more.
    let mut decisions = app
        .engine
        .check_batch(&tenant, std::slice::from_ref(&one))?;
    let decision = decisions
        .pop()
        .ok_or_else(|| HostError::internal(anyhow::anyhow!("no decision")))?;
    app.stats.checked(decision.allowed);
    Ok(Json(
        serde_json::to_value(decision).map_err(HostError::internal)?,
    ))
}
