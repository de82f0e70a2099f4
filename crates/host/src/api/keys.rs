//! API keys for admins: `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{id}`.
//! Revocation takes effect on the next request everywhere (keys are looked up per
//! request, never cached).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::requests::{KeyPlan, NewKeyRequest};
use crm_core::Timestamp;
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Admin)?;
    let keys = app.store.list_keys(caller.tenant()).await?;
    Ok(Json(json!({ "keys": keys })))
}

pub async fn create(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<(StatusCode, Json<Value>)> {
    caller.require(KeyScope::Admin)?;
    let req: NewKeyRequest = body.parse()?;
    let now = clock::now().millis();
    let KeyPlan {
        scopes,
        label,
        expires_at,
    } = req.plan(now)?;
    let (id, key) = app
        .store
        .create_key(
            caller.tenant(),
            scopes.clone(),
            label.clone(),
            expires_at,
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id, "key": key, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "label": label, "expiresAt": expires_at.map(Timestamp::from_millis).transpose()?,
        })),
    ))
}

pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    caller.require(KeyScope::Admin)?;
    if app
        .store
        .revoke_key(caller.tenant(), &id, clock::now().millis())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HostError::NotFound(format!(
            "no key `{}`",
            crm_core::time::clip(&id)
        )))
    }
}
