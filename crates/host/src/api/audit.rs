//! `GET /v1/audit/verify`: recomputes the tenant's hash chain; 200 either way, with
//! `ok` and, when broken, the first bad sequence number and why (optionally also
//! against a kept checkpoint). `GET /v1/audit/checkpoint`: the chain's head, signed.
//! Both are the shared flows (`crm_api::flow::audit`), signed with the host's key.

use axum::Json;
use axum::extract::State;
use crm_api::checkpoint::Checkpoint;
use crm_api::flow::audit::{SignCheckpoint, VerifyChain};
use crm_store::audit::Verification;

use super::auth::Caller;
use super::error::Query;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;

/// `GET /v1/audit/verify`: the chain and the ledger, at most `limit` records per call
/// (`crm_api::verify`), continued with `resume`.
pub async fn verify(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<Verification>> {
    let key = Some((*app.checkpoint_key).clone());
    let build: Build<Verification> =
        Box::new(move |cx| Box::new(VerifyChain::new(cx, key, params.0)));
    Ok(Json(run(&app, &caller, build).await?))
}

pub async fn checkpoint(State(app): State<App>, caller: Caller) -> HostResult<Json<Checkpoint>> {
    let key = Some((*app.checkpoint_key).clone());
    let build: Build<Checkpoint> = Box::new(move |cx| Box::new(SignCheckpoint::new(cx, key)));
    Ok(Json(run(&app, &caller, build).await?))
}
