//! Webhook endpoints for admins (`/v1/webhooks…`, `crm_api::webhooks`); what is sent
//! and when is `fanout::webhooks`'s.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::webhooks::{
    DeliveryPage, NewWebhookAnswer, NewWebhookRequest, WebhookDelivery, WebhookList,
};
use crm_store::keys::KeyScope;
use crm_store::webhooks;

use super::auth::Caller;
use super::error::{Body, Query};
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<WebhookList>> {
    caller.require(KeyScope::Admin)?;
    let (d, tenant) = (app.store.dialect(), caller.tenant().to_owned());
    let endpoints = app.store.read(move |c| endpoints(c, d, &tenant)).await?;
    Ok(Json(WebhookList::of(&endpoints)?))
}

fn endpoints(
    c: &mut dyn crate::store::Conn,
    d: crm_store::Dialect,
    tenant: &str,
) -> HostResult<Vec<webhooks::StoredEndpoint>> {
    c.query(&webhooks::list(d, tenant))?
        .iter()
        .map(|r| Ok(webhooks::decode_endpoint(r)?))
        .collect()
}

/// `POST /v1/webhooks`: 201 with the secret, the only time it is shown.
pub async fn create(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<(StatusCode, Json<NewWebhookAnswer>)> {
    caller.require(KeyScope::Admin)?;
    let req: NewWebhookRequest = body.parse()?;
    let (id, secret) = webhooks::from_random(&rand::random())?;
    let endpoint = req.plan(
        app.fanout.webhook_targets(),
        id,
        secret.text(),
        clock::now().millis(),
    )?;
    let answer = NewWebhookAnswer::of(&endpoint)?;
    let (d, tenant) = (app.store.dialect(), caller.tenant().to_owned());
    app.store
        .write(None, move |c| {
            if c.execute(&webhooks::insert(d, &tenant, &endpoint)?)? == 0 {
                return Err(crm_api::webhooks::too_many_endpoints().into());
            }
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn remove(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    caller.require(KeyScope::Admin)?;
    let (d, tenant, now) = (
        app.store.dialect(),
        caller.tenant().to_owned(),
        clock::now().millis(),
    );
    let removed = app
        .store
        .write(None, move |c| {
            let [endpoint, deliveries] = <[_; 2]>::try_from(webhooks::remove(d, &tenant, &id, now))
                .map_err(|_| HostError::internal(anyhow::anyhow!("remove plan")))?;
            if c.execute(&endpoint)? == 0 {
                return Err(crm_api::webhooks::no_webhook(&id).into());
            }
            c.execute(&deliveries)?;
            Ok(())
        })
        .await;
    removed.map(|()| StatusCode::NO_CONTENT)
}

pub async fn deliveries(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<DeliveryPage>> {
    caller.require(KeyScope::Admin)?;
    let (before, limit) = crm_api::webhooks::deliveries_query(&params.0)?;
    let (d, tenant) = (app.store.dialect(), caller.tenant().to_owned());
    let rows = app
        .store
        .read(move |c| {
            if c.query_opt(&webhooks::get(d, &tenant, &id))?.is_none() {
                return Err(crm_api::webhooks::no_webhook(&id).into());
            }
            c.query(&webhooks::page(d, &tenant, &id, before, limit))?
                .iter()
                .map(|r| Ok(webhooks::decode_delivery(r)?))
                .collect::<HostResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(DeliveryPage::new(&rows, limit)?))
}

/// `POST /v1/webhooks/{id}/deliveries/{deliveryId}/resend`: 202, due at once.
pub async fn resend(
    State(app): State<App>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
) -> HostResult<(StatusCode, Json<WebhookDelivery>)> {
    caller.require(KeyScope::Admin)?;
    let seq = crm_api::webhooks::delivery_seq(&delivery)?;
    let (d, tenant, now) = (
        app.store.dialect(),
        caller.tenant().to_owned(),
        clock::now().millis(),
    );
    let row = app
        .store
        .write(None, move |c| {
            if c.query_opt(&webhooks::get(d, &tenant, &id))?.is_none() {
                return Err(crm_api::webhooks::no_webhook(&id).into());
            }
            c.query_opt(&webhooks::resend(d, &tenant, &id, seq, now))?
                .map(|r| webhooks::decode_delivery(&r))
                .transpose()?
                .ok_or_else(|| crm_api::webhooks::no_delivery(&delivery).into())
        })
        .await?;
    app.fanout.notify();
    Ok((StatusCode::ACCEPTED, Json(WebhookDelivery::of(&row)?)))
}
