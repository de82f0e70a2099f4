//! `GET /v1/reports/users/{id}` and `/v1/reports/departments/{id}` (subtree).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::auth::Caller;
use super::error::Query;
use crate::error::HostResult;
use crate::service::queries::Scope as Where;
use crate::service::{App, reports};
use crate::store::Scope;

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    Ok(Json(
        reports::report(&app, caller.tenant(), Where::User(id), &params).await?,
    ))
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    Ok(Json(
        reports::report(&app, caller.tenant(), Where::Department(id), &params).await?,
    ))
}
