//! `GET /v1/reports/users/{id}` and `/v1/reports/departments/{id}` (subtree).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::auth::Caller;
use super::error::Query;
use crate::error::HostResult;
use crate::service::{App, reports};
use crm_store::keys::KeyScope as Scope;
use crm_store::listing::Subject;

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    Ok(Json(
        reports::report(&app, &tenant, Subject::User(id), &params).await?,
    ))
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    Ok(Json(
        reports::report(&app, &tenant, Subject::Department(id), &params).await?,
    ))
}
