//! `GET/PUT/PATCH /v1/directory`: the tenant's directory, versioned.

use axum::Json;
use axum::extract::State;
use crm_api::flow::tenant_update::{PatchDirectory, ReplaceDirectory};
use crm_api::versioned::{DirectoryDocument, DirectorySummary};
use serde_json::Value;

use super::auth::Caller;
use super::error::Body;
use crate::error::HostResult;
use crate::service::App;

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<DirectoryDocument>> {
    caller.require_tenant_wide()?;
    // The document as stored (the engine keeps only the compiled form).
    let row = app.store.tenant(caller.tenant()).await?;
    let directory: Value =
        serde_json::from_str(&row.directory).map_err(crate::error::HostError::internal)?;
    Ok(Json(DirectoryDocument {
        version: row.version,
        directory,
    }))
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
