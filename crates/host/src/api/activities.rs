//! Activity ingest and listings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::ingest::Submission;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::{Body, Query};
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::queries::{self, Params};
use crate::service::{App, ingest};
use crm_store::keys::KeyScope as Scope;
use crm_store::listing::{Page, Subject};

/// `POST /v1/activities`: 201 when recorded, 200 when every item replays an earlier
/// request, 402 for a single activity the balance cannot cover (recorded as
/// `insufficient_credits`, charged nothing).
pub async fn ingest(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    Query(params): Query,
    body: Body,
) -> HostResult<(StatusCode, Json<Value>)> {
    // The host always answers after commit; `sync` is accepted for parity with the edge.
    crm_api::ingest::sync_param(params.get("sync")).map_err(HostError::Api)?;
    let submission = Submission::from_body(body.0).map_err(HostError::Api)?;
    let tenant = caller.snapshot(&app).await?;
    let stored = ingest::ingest(
        &app,
        &tenant,
        &submission,
        caller.ip_address.as_deref(),
        key.as_deref(),
    )
    .await?;
    let (status, answer) =
        crm_api::ingest::answer(submission.is_single(), stored).map_err(HostError::Api)?;
    Ok((
        StatusCode::from_u16(status).map_err(HostError::internal)?,
        Json(answer),
    ))
}

fn page_json(page: Page) -> Json<Value> {
    Json(
        json!({ "activities": page.activities, "nextCursor": page.next_cursor.map(|c| c.encode()) }),
    )
}

async fn listing(
    app: &App,
    caller: &Caller,
    subject: Subject,
    params: &Params,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(app).await?;
    let page = queries::list(app, &tenant, subject, params, |s| {
        caller.may_read(s, &tenant)
    })
    .await?;
    Ok(page_json(page))
}

pub async fn list(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    listing(&app, &caller, Subject::Tenant, &params).await
}

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    listing(&app, &caller, Subject::User(id), &params).await
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Value>> {
    listing(&app, &caller, Subject::Department(id), &params).await
}
