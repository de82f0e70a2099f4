//! `GET/PUT /v1/policy`: the tenant's policy — report timezone, price table,
//! metadata keys to redact and retention days — versioned with the directory.

use axum::Json;
use axum::extract::State;
use crm_api::flow::tenant_update::ReplacePolicy;
use crm_api::versioned::PolicyDocument;
use crm_core::TenantPolicy;

use super::auth::Caller;
use super::error::Body;
use crate::error::HostResult;
use crate::service::App;

fn answer(policy: &TenantPolicy, version: u64) -> HostResult<Json<PolicyDocument>> {
    Ok(Json(PolicyDocument {
        version,
        policy: policy.clone(),
    }))
}

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<PolicyDocument>> {
    caller.require_tenant_wide()?;
    let t = caller.snapshot(&app).await?;
    answer(&t.snapshot.policy, t.version())
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
