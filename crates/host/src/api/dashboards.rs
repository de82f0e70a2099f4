//! `GET /v1/dashboards/users/{id}`: `crm_api::flow::dashboard`, driven here.

use axum::Json;
use axum::extract::{Path, State};
use crm_api::dashboards::Dashboard;
use crm_api::flow::dashboard::DashboardFlow;

use super::auth::Caller;
use super::error::Query;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Dashboard>> {
    let build: crate::store::Build<Dashboard> =
        Box::new(move |cx| Box::new(DashboardFlow::new(cx, id, params.0)));
    Ok(Json(run(&app, &caller, build).await?))
}
