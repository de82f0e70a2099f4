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
use super::flows::read;
use super::idempotency::IdempotencyKey;
use crate::error::HostResult;
use crate::service::{App, clock};
use crate::store::Build;
use crm_api::flow::credentials::{AdminWrite, ListKeys, RevokeKey};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<KeyList>> {
    let build: Build<KeyList> = Box::new(|cx| Box::new(ListKeys::new(cx)));
    Ok(Json(read(&app, &caller, build).await?))
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
    let build: Build<()> = Box::new(move |cx| Box::new(AdminWrite::new(cx, RevokeKey(id))));
    read(&app, &caller, build).await?;
    app.store.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}
