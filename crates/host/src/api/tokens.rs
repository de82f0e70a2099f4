//! `POST /v1/viewer-tokens` (admin): a short-lived, read-only token for a dashboard,
//! for the whole tenant or limited to one user or one department subtree;
//! `DELETE /v1/viewer-tokens/{id}` revokes one, `POST /v1/viewer-tokens/rotate` all.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::flow::Idempotency;
use crm_api::flow::viewer_token::IssueViewerToken;
use crm_api::requests::ViewerTokenRequest;
use crm_api::viewer_tokens::IssuedViewerToken;

use super::auth::Caller;
use super::error::Body;
use super::flows::run;
use super::idempotency::IdempotencyKey;
use crate::error::HostResult;
use crate::service::{App, clock};
use crate::store::Build;
use crm_api::flow::credentials::{AdminWrite, RevokeViewerToken, RotateViewerSecret};

/// `POST /v1/viewer-tokens` (`crm_api::flow::viewer_token`).
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<Json<IssuedViewerToken>> {
    let idempotency = key
        .0
        .map(|k| Idempotency::of("createViewerToken", &k, &body.0));
    let request: ViewerTokenRequest = body.parse()?;
    let fresh_id = app.ids.next(clock::now());
    let fresh_secret = crate::store::random_secret();
    let build: Build<IssuedViewerToken> = Box::new(move |cx| {
        Box::new(IssueViewerToken::new(
            cx,
            request,
            idempotency,
            fresh_id,
            fresh_secret,
        ))
    });
    Ok(Json(run(&app, &caller, build).await?))
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret; every earlier token is
/// refused from the next request on (tokens are checked against the stored secret on
/// every request).
pub async fn rotate(State(app): State<App>, caller: Caller) -> HostResult<StatusCode> {
    let fresh = crate::store::random_secret();
    let build: Build<()> =
        Box::new(move |cx| Box::new(AdminWrite::new(cx, RotateViewerSecret(fresh))));
    run(&app, &caller, build).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/viewer-tokens/{id}`: that token is refused from the next request on.
pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    let build: Build<()> = Box::new(move |cx| Box::new(AdminWrite::new(cx, RevokeViewerToken(id))));
    run(&app, &caller, build).await?;
    Ok(StatusCode::NO_CONTENT)
}
