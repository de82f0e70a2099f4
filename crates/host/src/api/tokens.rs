//! `POST /v1/viewer-tokens` (admin): a short-lived, read-only token for a dashboard,
//! for the whole tenant or limited to one user or one department subtree;
//! `DELETE /v1/viewer-tokens/{id}` revokes one, `POST /v1/viewer-tokens/rotate` all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::requests::ViewerTokenRequest;
use crm_api::viewer_tokens::{self, IssuedViewerToken};
use crm_store::keys::KeyScope;

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock, tokens};

pub async fn create(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<IssuedViewerToken>> {
    caller.require(KeyScope::Admin)?;
    let req: ViewerTokenRequest = body.parse()?;
    let tenant = caller.snapshot(&app).await?;
    let (scope, ttl_ms) = req
        .plan(&tenant.snapshot.directory)
        .map_err(HostError::Api)?;
    Ok(Json(
        tokens::issue(&app, caller.tenant(), scope, ttl_ms).await?,
    ))
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret; every earlier token is
/// refused from the next request on (tokens are checked against the stored secret on
/// every request).
pub async fn rotate(State(app): State<App>, caller: Caller) -> HostResult<StatusCode> {
    caller.require(KeyScope::Admin)?;
    app.store.rotate_secret(caller.tenant()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/viewer-tokens/{id}`: that token is refused from the next request on.
pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    caller.require(KeyScope::Admin)?;
    let now = clock::now().millis();
    let (id, until) = viewer_tokens::revocation(&id, now).map_err(HostError::Api)?;
    app.store
        .revoke_viewer_token(caller.tenant(), id, until, now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
