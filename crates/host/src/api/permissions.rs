//! `POST /v1/permissions/check`: `{userId, permission}` or `{checks: [...]}` (parsed by
//! `crm_api::permissions`); the endpoint's `ingest` scope is checked before the body is
//! read, as for every endpoint (`api::auth`).

use axum::Json;
use axum::extract::State;
use crm_api::permissions::{CheckAnswer, Checks};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::App;

pub async fn check(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<CheckAnswer>> {
    let tenant = caller.snapshot(&app).await?;
    let one = match Checks::from_body(body.0).map_err(HostError::Api)? {
        Checks::Batch(checks) => {
            let decisions = app
                .engines
                .run(move |e| e.check_batch(&tenant, &checks))
                .await?;
            for d in &decisions {
                app.stats.checked(caller.tenant(), d.allowed);
            }
            return Ok(Json(CheckAnswer::Batch { decisions }));
        }
        Checks::One(one) => one,
    };
    // A single check takes microseconds: answered inline, a thread hop would cost more.
    let mut decisions = app
        .engine
        .check_batch(&tenant, std::slice::from_ref(&one))?;
    let decision = decisions
        .pop()
        .ok_or_else(|| HostError::internal(anyhow::anyhow!("no decision")))?;
    app.stats.checked(caller.tenant(), decision.allowed);
    Ok(Json(CheckAnswer::One(decision)))
}
