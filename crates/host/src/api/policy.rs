//! `GET/PUT /v1/policy`: the tenant's policy — report timezone, price table,
//! metadata keys to redact and retention days — versioned with the directory.

use axum::Json;
use axum::extract::State;
use crm_api::flow::tenant_update::ReplacePolicy;
use crm_api::versioned::PolicyDocument;

use super::auth::Caller;
use super::error::Body;
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;
use crm_api::flow::tenant_documents::{self, FromSnapshot};

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<PolicyDocument>> {
    let build: Build<PolicyDocument> =
        Box::new(|cx| Box::new(FromSnapshot::new(tenant_documents::policy(cx))));
    Ok(Json(run(&app, &caller, build).await?))
}

pub async fn put(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<PolicyDocument>> {
    let change = ReplacePolicy(body.parse()?);
    let tenant = caller.snapshot(&app).await?;
    let principal = caller.principal.clone();
    Ok(Json(app.tenants.change(tenant, principal, change).await?))
}
