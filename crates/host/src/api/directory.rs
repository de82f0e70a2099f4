//! `GET/PUT/PATCH /v1/directory`: the tenant's directory, versioned.

use axum::Json;
use axum::extract::State;
use crm_api::flow::tenant_update::{PatchDirectory, ReplaceDirectory};
use crm_api::versioned::{DirectoryDocument, DirectorySummary};

use super::auth::Caller;
use super::error::Body;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;
use crm_api::flow::tenant_documents::ReadRow;

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<DirectoryDocument>> {
    let build: Build<DirectoryDocument> =
        Box::new(|cx| Box::new(ReadRow::<DirectoryDocument>::new(cx)));
    Ok(Json(run(&app, &caller, build).await?))
}

pub async fn put(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<DirectorySummary>> {
    let change = ReplaceDirectory(body.parse()?);
    let tenant = caller.snapshot(&app).await?;
    let principal = caller.principal.clone();
    Ok(Json(app.tenants.change(tenant, principal, change).await?))
}

pub async fn patch(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<DirectorySummary>> {
    let change = PatchDirectory(body.parse()?);
    let tenant = caller.snapshot(&app).await?;
    let principal = caller.principal.clone();
    Ok(Json(app.tenants.change(tenant, principal, change).await?))
}
