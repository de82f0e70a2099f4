//! API keys for admins: `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{id}`.
//! Revocation takes effect on the next request on this host (its key cache forgets
//! the key) and within `crm_store::key_cache::TTL_MS` on any other.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::requests::{KeyList, NewKeyAnswer, NewKeyRequest};

use super::auth::Caller;
use super::error::Body;
use super::flows::run;
use super::idempotency::IdempotencyKey;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;
use crm_api::flow::Idempotency;
use crm_api::flow::credentials::{AdminWrite, ListKeys, RevokeKey};
use crm_api::flow::new_key::{CreateKey, CreatedKey};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<KeyList>> {
    let build: Build<KeyList> = Box::new(|cx| Box::new(ListKeys::new(cx)));
    Ok(Json(run(&app, &caller, build).await?))
}

/// `POST /v1/keys` (`crm_api::flow::new_key`): 201 with the key's text; a retry under
/// the same `Idempotency-Key` answers 200 with the same key's id, without the text.
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<(StatusCode, Json<NewKeyAnswer>)> {
    let idempotency = key.0.map(|k| Idempotency::of("createKey", &k, &body.0));
    let request: NewKeyRequest = body.parse()?;
    let random = rand::random();
    let build: Build<CreatedKey> =
        Box::new(move |cx| Box::new(CreateKey::new(cx, request, idempotency, random)));
    let created = run(&app, &caller, build).await?;
    let status = if created.fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created.answer)))
}

pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    let build: Build<()> = Box::new(move |cx| Box::new(AdminWrite::new(cx, RevokeKey(id))));
    run(&app, &caller, build).await?;
    app.store.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}
