//! `GET /v1/session`: who the caller is and what it may look at — what a dashboard
//! needs to build its pickers without reading the whole directory.

use axum::Json;
use axum::extract::State;
use crm_api::access::Session;
use crm_api::flow::tenant_documents::ReadRow;

use super::auth::Caller;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<Session>> {
    let build: Build<Session> = Box::new(|cx| Box::new(ReadRow::<Session>::new(cx)));
    Ok(Json(run(&app, &caller, build).await?))
}
