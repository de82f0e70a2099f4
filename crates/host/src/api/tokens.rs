//! `POST /v1/viewer-tokens` (admin): a short-lived, read-only token for a dashboard,
//! for the whole tenant or limited to one user or one department subtree;
//! `DELETE /v1/viewer-tokens/{id}` revokes one, `POST /v1/viewer-tokens/rotate` all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::requests::ViewerTokenRequest;
use crm_api::viewer_tokens::{IssuedViewerToken, Remembered};
use crm_store::keys::KeyScope;

use super::auth::Caller;
use super::error::Body;
use super::flows::read;
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};
use crate::store::Build;
use crm_api::flow::credentials::{AdminWrite, RevokeViewerToken, RotateViewerSecret};

/// `POST /v1/viewer-tokens`. A retry under the same `Idempotency-Key` answers the same
/// token (signed again from its kept id, expiry and scope; the token is not stored).
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<Json<IssuedViewerToken>> {
    caller.require(KeyScope::Admin)?;
    let request_hash = crm_api::request::digest(&body.0);
    let req: ViewerTokenRequest = body.parse()?;
    let tenant = caller.snapshot(&app).await?;
    let (scope, ttl_ms) = req
        .plan(&tenant.snapshot.directory)
        .map_err(HostError::Api)?;
    let now = clock::now();
    let fresh = Remembered {
        id: app.ids.next(now),
        expires_at: now.millis() + ttl_ms,
        scope,
    };
    let token = match key.0 {
        None => fresh,
        Some(k) => {
            let kept = app
                .store
                .remember(
                    caller.tenant(),
                    crm_store::idempotency::scoped_key("createViewerToken", &k),
                    request_hash.clone(),
                    fresh.to_json(),
                    now.millis(),
                )
                .await?;
            crm_api::request::same_request(&kept.request_hash, &request_hash)
                .map_err(HostError::Api)?;
            Remembered::from_json(&kept.response).map_err(HostError::Api)?
        }
    };
    let (secret, _) = app.store.tenant_secret(caller.tenant()).await?;
    Ok(Json(
        token
            .issue(caller.tenant(), &secret)
            .map_err(HostError::Api)?,
    ))
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret; every earlier token is
/// refused from the next request on (tokens are checked against the stored secret on
/// every request).
pub async fn rotate(State(app): State<App>, caller: Caller) -> HostResult<StatusCode> {
    let fresh = crate::store::random_secret();
    let build: Build<()> =
        Box::new(move |cx| Box::new(AdminWrite::new(cx, RotateViewerSecret(fresh))));
    read(&app, &caller, build).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/viewer-tokens/{id}`: that token is refused from the next request on.
pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    let build: Build<()> = Box::new(move |cx| Box::new(AdminWrite::new(cx, RevokeViewerToken(id))));
    read(&app, &caller, build).await?;
    Ok(StatusCode::NO_CONTENT)
}
