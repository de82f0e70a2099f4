//! Webhook endpoints for admins (`/v1/webhooks…`, `crm_api::webhooks`); what is sent
//! and when is `fanout::webhooks`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::webhooks::{
    DeliveryPage, NewWebhookAnswer, NewWebhookRequest, WebhookDelivery, WebhookList,
};

use super::auth::Caller;
use super::error::{Body, Query};
use super::flows::run;
use crate::error::HostResult;
use crate::service::App;
use crate::store::Build;
use crm_api::flow::webhooks::{
    CreateWebhook, ListWebhooks, RemoveWebhook, ResendDelivery, WebhookDeliveries,
};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<WebhookList>> {
    let build: Build<WebhookList> = Box::new(|cx| Box::new(ListWebhooks::new(cx)));
    Ok(Json(run(&app, &caller, build).await?))
}

/// `POST /v1/webhooks`: 201 with the secret, the only time it is shown.
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<(StatusCode, Json<NewWebhookAnswer>)> {
    let request: NewWebhookRequest = body.parse()?;
    let targets = app.fanout.webhook_targets().clone();
    let random = rand::random();
    let build: Build<NewWebhookAnswer> =
        Box::new(move |cx| Box::new(CreateWebhook::new(cx, request, targets, random)));
    Ok((StatusCode::CREATED, Json(run(&app, &caller, build).await?)))
}

pub async fn remove(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    let build: Build<()> = Box::new(move |cx| Box::new(RemoveWebhook::new(cx, id)));
    run(&app, &caller, build).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn deliveries(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<DeliveryPage>> {
    let build: Build<DeliveryPage> =
        Box::new(move |cx| Box::new(WebhookDeliveries::new(cx, id, params.0)));
    Ok(Json(run(&app, &caller, build).await?))
}

/// `POST /v1/webhooks/{id}/deliveries/{deliveryId}/resend`: 202, due at once; the
/// sender is woken to take it.
pub async fn resend(
    State(app): State<App>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
) -> HostResult<(StatusCode, Json<WebhookDelivery>)> {
    let build: Build<WebhookDelivery> =
        Box::new(move |cx| Box::new(ResendDelivery::new(cx, id, delivery)));
    let resent = run(&app, &caller, build).await?;
    app.fanout.notify();
    Ok((StatusCode::ACCEPTED, Json(resent)))
}
