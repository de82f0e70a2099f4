//! `GET /v1/reports` (tenant), `/v1/reports/users/{id}` and
//! `/v1/reports/departments/{id}` (subtree).

use axum::Json;
use axum::extract::{Path, State};
use crm_api::reports::Report;

use super::auth::Caller;
use super::error::Query;
use crate::error::HostResult;
use crate::service::queries::Params;
use crate::service::{App, reports};
use crm_store::keys::KeyScope as Scope;
use crm_store::listing::Subject;

async fn report(
    app: &App,
    caller: &Caller,
    subject: Subject,
    params: &Params,
) -> HostResult<Json<Report>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(app).await?;
    caller.may_read(&subject, &tenant)?;
    Ok(Json(
        reports::report(app, &tenant, subject, params, &caller.principal).await?,
    ))
}

/// `GET /v1/reports`: the whole tenant.
pub async fn tenant(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::Tenant, &params).await
}

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::User(id), &params).await
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::Department(id), &params).await
}
