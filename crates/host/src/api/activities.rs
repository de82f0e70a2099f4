//! Activity ingest and listings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::ingest::{IngestAnswer, Submission};
use crm_api::listing::ActivityPage;
use serde_json::Value;

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

fn page_json(page: Page) -> Json<ActivityPage> {
    Json(ActivityPage::from(page))
}

async fn listing(
    app: &App,
    caller: &Caller,
    subject: Subject,
    params: &Params,
) -> HostResult<Json<ActivityPage>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(app).await?;
    let page = queries::list(app, &tenant, subject, params, &caller.principal).await?;
    Ok(page_json(page))
}

pub async fn list(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::Tenant, &params).await
}

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::User(id), &params).await
}

pub async fn department(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<ActivityPage>> {
    listing(&app, &caller, Subject::Department(id), &params).await
}

/// `GET /v1/activities/{id}`: one record as stored and hashed; 404 when it does not
/// exist or lies outside a limited viewer token's user or subtree (the same answer, so
/// its existence is not revealed).
pub async fn one(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(_params): Query,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    let d = app.store.dialect();
    let (tenant_id, wanted) = (caller.tenant().to_owned(), id.clone());
    let row = app
        .store
        .read(move |c| Ok(c.query_opt(&crm_store::activities::by_id(d, &tenant_id, &wanted))?))
        .await?;
    let missing = || HostError::NotFound(format!("no activity `{}`", crm_core::time::clip(&id)));
    let (body, user, path) = crm_store::activities::decode_by_id(&row.ok_or_else(missing)?)?;
    let visible = caller
        .principal
        .may_read_record(&user, &path, &tenant.snapshot.directory);
    if !visible {
        return Err(missing());
    }
    let record: Value = serde_json::from_str(&body).map_err(HostError::internal)?;
    Ok(Json(record))
}

/// `GET /v1/entities/{type}/{id}/activities`: an entity's history, newest first; a
/// limited viewer token sees the touches of its own user or subtree.
pub async fn entity(
    State(app): State<App>,
    caller: Caller,
    Path((entity_type, entity_id)): Path<(String, String)>,
    Query(mut params): Query,
) -> HostResult<Json<ActivityPage>> {
    caller.require(Scope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    params.0.insert("entityType".to_owned(), entity_type);
    params.0.insert("entityId".to_owned(), entity_id);
    let mut filter = queries::filter(&tenant, Subject::Tenant, &params, params.range()?, |s| {
        if *s == Subject::Tenant {
            Ok(())
        } else {
            caller.may_read(s, &tenant)
        }
    })?;
    queries::narrow(&mut filter, &tenant, &caller.principal)?;
    Ok(page_json(
        queries::page(&app, &tenant, filter, &params).await?,
    ))
}
