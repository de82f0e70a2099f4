//! `GET /v1/session`: who the caller is and what it may look at — what a dashboard
//! needs to build its pickers without reading the whole directory.

use axum::Json;
use axum::extract::State;
use crm_core::Timestamp;
use crm_core::viewer_token::TokenScope;
use crm_store::keys::KeyScope;
use crm_store::listing::Subject;
use serde_json::{Value, json};

use super::auth::{Caller, Principal};
use crate::error::HostResult;
use crate::service::App;

pub async fn get(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    let spec: Value =
        serde_json::from_str(&tenant.directory_json).map_err(crate::error::HostError::internal)?;
    let visible = |kind: &str, make: fn(String) -> Subject| -> Vec<Value> {
        spec[kind]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| {
                let id = item["id"].as_str().unwrap_or_default().to_owned();
                caller.may_read(&make(id), &tenant).is_ok()
            })
            .map(|item| json!({ "id": item["id"], "name": item["name"] }))
            .collect()
    };
    let users = visible("users", Subject::User);
    let departments = visible("departments", Subject::Department);
    let who = match &caller.principal {
        Principal::Key { id, scopes } => json!({
            "kind": "key", "keyId": id, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        }),
        Principal::Viewer { scope, expires_at } => json!({
            "kind": "viewer", "scope": scope, "expiresAt": Timestamp::from_millis(*expires_at)?,
        }),
    };
    let tenant_wide = !matches!(
        &caller.principal,
        Principal::Viewer { scope, .. } if *scope != TokenScope::Tenant
    );
    Ok(Json(json!({
        "tenantId": caller.tenant(),
        "caller": who,
        "tenantWide": tenant_wide,
        "users": users,
        "departments": departments,
    })))
}
