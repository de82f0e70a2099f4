//! `GET /v1/reports` (tenant), `/v1/reports/users/{id}` and
//! `/v1/reports/departments/{id}` (subtree): `crm_api::flow::report`, driven here.

use axum::Json;
use axum::extract::{Path, State};
use crm_api::flow::report::ReportFlow;
use crm_api::reports::Report;

use super::auth::Caller;
use super::error::Query;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::service::queries::Params;
use crm_store::listing::Subject;

async fn report(
    app: &App,
    caller: &Caller,
    subject: Subject,
    params: Params,
) -> HostResult<Json<Report>> {
    let build: crate::store::Build<Report> =
        Box::new(move |cx| Box::new(ReportFlow::new(cx, subject, params.0)));
    Ok(Json(run(app, caller, build).await?))
}

/// `GET /v1/reports`: the whole tenant.
pub async fn tenant(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::Tenant, params).await
}

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::User(id), params).await
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Report>> {
    report(&app, &caller, Subject::Department(id), params).await
}
