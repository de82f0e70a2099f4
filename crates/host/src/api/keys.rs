//! API keys for admins: `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{id}`.
//! Revocation takes effect on the next request on this host (its key cache forgets
//! the key) and within `crm_store::key_cache::TTL_MS` on any other.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::requests::{KeyList, NewKeyAnswer, NewKeyRequest};
use crm_store::keys::KeyScope;

use super::auth::Caller;
use super::error::Body;
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<KeyList>> {
    caller.require(KeyScope::Admin)?;
    let keys = app.store.list_keys(caller.tenant()).await?;
    Ok(Json(KeyList { keys }))
}

/// `POST /v1/keys`: 201 with the key's text; a retry under the same
/// `Idempotency-Key` answers 200 with the same key's id, without the text.
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<(StatusCode, Json<NewKeyAnswer>)> {
    caller.require(KeyScope::Admin)?;
    let request_hash = crm_api::request::digest(&body.0);
    let req: NewKeyRequest = body.parse()?;
    let now = clock::now().millis();
    let plan = req.plan(now)?;
    let idempotency = key.0.map(|k| {
        (
            crm_store::idempotency::scoped_key("createKey", &k),
            request_hash,
        )
    });
    let (answer, made) = app
        .store
        .create_key(caller.tenant(), plan, now, idempotency)
        .await?;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)))
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
