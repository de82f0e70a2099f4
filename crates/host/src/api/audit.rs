//! `GET /v1/audit/verify`: recomputes the tenant's hash chain; 200 either way, with
//! `ok` and, when broken, the first bad sequence number and why (optionally also
//! against a kept checkpoint). `GET /v1/audit/checkpoint`: the chain's head, signed.

use axum::Json;
use axum::extract::State;
use crm_api::checkpoint::Checkpoint;

use super::auth::Caller;
use super::error::Query;
use crate::error::{HostError, HostResult};
use crate::service::{App, audit, clock};

/// `GET /v1/audit/verify`: the chain and the ledger, at most `limit` records per call
/// (`crm_api::verify`), continued with `resume`.
pub async fn verify(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<audit::Verification>> {
    caller.require_tenant_wide()?;
    let q = crm_api::verify::query(&params.0, Some(&app.checkpoint_key), caller.tenant())
        .map_err(HostError::Api)?;
    let start = match q.resume {
        Some(paused) => audit::Start::Resume(paused),
        None => audit::Start::Anchor(q.kept),
    };
    let (store, tenant) = (app.store.clone(), caller.tenant().to_owned());
    let (v, paused) = tokio::task::spawn_blocking(move || {
        audit::verify(&store, &tenant, start, Some(q.limit), |_, _| {})
    })
    .await
    .map_err(|e| HostError::internal(anyhow::anyhow!("verify task: {e}")))??;
    Ok(Json(
        crm_api::verify::answer(v, paused, Some(&app.checkpoint_key)).map_err(HostError::Api)?,
    ))
}

pub async fn checkpoint(State(app): State<App>, caller: Caller) -> HostResult<Json<Checkpoint>> {
    caller.require_tenant_wide()?;
    let tenant = caller.tenant().to_owned();
    let d = app.store.dialect();
    let bounds = app
        .store
        .read(move |c| audit::bounds(c, d, &tenant))
        .await?;
    Ok(Json(app.checkpoint_key.sign(
        caller.tenant(),
        bounds.head_seq,
        &bounds.head_hash,
        clock::now(),
    )))
}
