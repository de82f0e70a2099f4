//! `POST /v1/subjects/{userId}/erase`: the shared flow (`crm_api::flow::erasure`); the
//! keys destroyed and the erasure recorded in one writer transaction, then the scrub a
//! chunk per transaction. crm-host has no per-request query limit.

use axum::Json;
use axum::extract::{Path, State};
use crm_api::erasure::ErasureAnswer;
use crm_api::flow::erasure::EraseSubject;

use super::auth::Caller;
use super::flows::run;
use crate::error::HostResult;
use crate::service::{App, clock};
use crate::store::Build;

pub async fn erase(
    State(app): State<App>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> HostResult<Json<ErasureAnswer>> {
    let record_id = app.ids.next(clock::now());
    let build: Build<ErasureAnswer> =
        Box::new(move |cx| Box::new(EraseSubject::new(cx, user_id, record_id, None)));
    Ok(Json(run(&app, &caller, build).await?))
}
