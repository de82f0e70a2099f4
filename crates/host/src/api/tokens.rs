//! `POST /v1/viewer-tokens` (admin): a short-lived, read-only token for a dashboard,
//! for the whole tenant or limited to one user or one department subtree.

use axum::Json;
use axum::extract::State;
use crm_api::requests::ViewerTokenRequest;
use crm_core::Timestamp;
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, tokens};

pub async fn create(State(app): State<App>, caller: Caller, body: Body) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Admin)?;
    let req: ViewerTokenRequest = body.parse()?;
    let tenant = caller.snapshot(&app).await?;
    let (scope, ttl_ms) = req
        .plan(&tenant.snapshot.directory)
        .map_err(HostError::Api)?;
    let (token, expires_at) = tokens::issue(&app, caller.tenant(), scope.clone(), ttl_ms).await?;
    Ok(Json(json!({
        "token": token,
        "expiresAt": Timestamp::from_millis(expires_at)?,
        "scope": scope,
        "dashboardPath": format!("/#token={token}"),
    })))
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret; every earlier token is
/// refused from the next request on (tokens are checked against the stored secret on
/// every request).
pub async fn rotate(
    axum::extract::State(app): axum::extract::State<crate::service::App>,
    caller: super::auth::Caller,
) -> crate::error::HostResult<axum::http::StatusCode> {
    caller.require(crm_store::keys::KeyScope::Admin)?;
    app.store.rotate_secret(caller.tenant()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
