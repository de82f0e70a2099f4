//! `GET /v1/session`: who the caller is and what it may look at — what a dashboard
//! needs to build its pickers without reading the whole directory.

use axum::Json;
use axum::extract::State;
use crm_api::access::Session;
use crm_store::keys::KeyScope;
use serde_json::Value;

use super::auth::Caller;
use crate::error::HostResult;
use crate::service::App;

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<Session>> {
    caller.require(KeyScope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    let spec: Value = serde_json::to_value(tenant.snapshot.directory.to_spec())
        .map_err(crate::error::HostError::internal)?;
    Ok(Json(caller.principal.session(
        caller.tenant(),
        &spec,
        &tenant.snapshot.directory,
    )?))
}
