//! Activity ingest and listings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::flow::activity::ActivityFlow;
use crm_api::flow::listing::ListingFlow;
use crm_api::ingest::{IngestAnswer, Submission};
use crm_api::listing::ActivityPage;
use serde_json::value::RawValue;

use super::auth::Caller;
use super::error::{Body, Query};
use super::flows::run;
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::queries::Params;
use crate::service::{App, ingest};
use crm_store::listing::Subject;

/// `POST /v1/activities`: 201 when recorded, 200 when every item replays an earlier
/// request, 402 for a single activity the balance cannot cover (recorded as
/// `insufficient_credits`, charged nothing).
pub async fn ingest(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    Query(params): Query,
    body: Body,
) -> HostResult<(StatusCode, Json<IngestAnswer>)> {
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

async fn listing(
    app: &App,
    caller: &Caller,
    subject: Subject,
    params: Params,
) -> HostResult<Json<ActivityPage>> {
    let build: crate::store::Build<ActivityPage> =
        Box::new(move |cx| Box::new(ListingFlow::subject(cx, subject, params.0)));
    Ok(Json(run(app, caller, build).await?))
}

pub async fn list(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::Tenant, params).await
}

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::User(id), params).await
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::Department(id), params).await
}

/// `GET /v1/activities/{id}`: one record as stored and hashed (`crm_api::flow::activity`).
pub async fn one(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(_params): Query,
) -> HostResult<Json<Box<RawValue>>> {
    let build: crate::store::Build<Box<RawValue>> =
        Box::new(move |cx| Box::new(ActivityFlow::new(cx, id)));
    Ok(Json(run(&app, &caller, build).await?))
}

/// `GET /v1/entities/{type}/{id}/activities`: an entity's history, newest first.
pub async fn entity(
    State(app): State<App>,
    caller: Caller,
    Path((entity_type, entity_id)): Path<(String, String)>,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    let build: crate::store::Build<ActivityPage> =
        Box::new(move |cx| Box::new(ListingFlow::entity(cx, entity_type, entity_id, params.0)));
    Ok(Json(run(&app, &caller, build).await?))
}
