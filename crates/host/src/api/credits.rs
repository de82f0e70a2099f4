//! Prices, balance and grants.

use axum::Json;
use axum::extract::State;
use crm_core::pricing::PriceTable;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::{Body, Query};
use super::flows::run;
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::queries::Params;
use crate::service::{App, clock};
use crate::store::Build;
use crm_api::flow::Idempotency;
use crm_api::flow::credits::{AlertsQuery, BalanceQuery, CreditQuery, CreditRead};
use crm_api::flow::tenant_documents::{self, FromSnapshot};
use crm_api::flow::tenant_update::ReplacePrices;
use crm_api::flow::wallet_change::WalletChange;
use crm_api::versioned::PriceList;
use crm_api::wallet::{AdjustmentRequest, GrantRequest};
use crm_store::grants::WalletOp;
use crm_store::keys::KeyScope as Scope;

pub async fn prices(State(app): State<App>, caller: Caller) -> HostResult<Json<PriceTable>> {
    let build: Build<PriceTable> =
        Box::new(|cx| Box::new(FromSnapshot::new(tenant_documents::prices(cx))));
    Ok(Json(run(&app, &caller, build).await?))
}

pub async fn put_prices(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<PriceList>> {
    let change = ReplacePrices(body.parse()?);
    let tenant = caller.snapshot(&app).await?;
    let principal = caller.principal.clone();
    Ok(Json(app.tenants.change(tenant, principal, change).await?))
}

/// `GET /v1/credits/balance`: the balance now, by grant (`crm_api::flow::credits`).
pub async fn balance(
    State(app): State<App>,
    caller: Caller,
) -> HostResult<Json<crm_api::wallet::Balance>> {
    credit_read::<BalanceQuery>(&app, &caller, Params::default()).await
}

/// A tenant-wide credit read (`crm_api::flow::credits`).
async fn credit_read<Q: CreditQuery + 'static>(
    app: &App,
    caller: &Caller,
    params: Params,
) -> HostResult<Json<Q::Answer>>
where
    Q::Answer: Send + 'static,
{
    let build: Build<Q::Answer> = Box::new(move |cx| Box::new(CreditRead::<Q>::new(cx, params.0)));
    Ok(Json(run(app, caller, build).await?))
}

/// Runs a wallet change (`crm_api::flow::wallet_change`), idempotent by
/// `Idempotency-Key` within the endpoint named by `operation_id`.
async fn change(
    app: &App,
    caller: &Caller,
    operation_id: &str,
    key: IdempotencyKey,
    request: &Value,
    op: WalletOp,
) -> HostResult<Json<Box<RawValue>>> {
    let idempotency = key.0.map(|k| Idempotency::of(operation_id, &k, request));
    let build: Build<Box<RawValue>> =
        Box::new(move |cx| Box::new(WalletChange::new(cx, op, idempotency)));
    // In one transaction: the change reads the balance every charge moves.
    let tenant = caller.snapshot(app).await?;
    let principal = caller.principal.clone();
    Ok(Json(
        app.store
            .flow_in_transaction(tenant, principal, clock::now(), build)
            .await?,
    ))
}

/// `POST /v1/credits/grants`.
pub async fn grant(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<Json<Box<RawValue>>> {
    caller.require(Scope::Admin)?;
    let request = body.0.clone();
    let now = clock::now();
    let op = body
        .parse::<GrantRequest>()?
        .op(app.ids.next(now), now.millis())
        .map_err(HostError::Api)?;
    change(&app, &caller, "grantCredits", key, &request, op).await
}

/// `POST /v1/credits/adjustments`.
pub async fn adjust(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<Json<Box<RawValue>>> {
    caller.require(Scope::Admin)?;
    let request = body.0.clone();
    let op = body
        .parse::<AdjustmentRequest>()?
        .op()
        .map_err(HostError::Api)?;
    change(&app, &caller, "adjustCredits", key, &request, op).await
}

/// `POST /v1/credits/grants/{id}/void`.
pub async fn void(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> HostResult<Json<Box<RawValue>>> {
    caller.require(Scope::Admin)?;
    let op = crm_api::wallet::void(&id).map_err(HostError::Api)?;
    change(
        &app,
        &caller,
        "voidCreditGrant",
        key,
        &json!({ "id": id }),
        op,
    )
    .await
}

/// `GET /v1/credits/grants`: the tenant's grants with their remainders, newest first.
pub async fn grants(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<crm_api::wallet::GrantsPage>> {
    credit_read::<crm_api::wallet::GrantsQuery>(&app, &caller, params).await
}

/// `GET /v1/credits/alerts`: the crossings of the tenant's alert rules, newest first.
pub async fn alerts(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<crm_api::wallet::AlertsPage>> {
    credit_read::<AlertsQuery>(&app, &caller, params).await
}

/// `GET /v1/credits/ledger`: every balance change, newest first.
pub async fn ledger(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<crm_api::credits::LedgerPage>> {
    credit_read::<crm_store::ledger::LedgerQuery>(&app, &caller, params).await
}

/// `GET /v1/credits/prices/{operation}`: what one operation would cost.
pub async fn price(
    State(app): State<App>,
    caller: Caller,
    axum::extract::Path(operation): axum::extract::Path<String>,
) -> HostResult<Json<crm_api::credits::Price>> {
    let build: Build<crm_api::credits::Price> =
        Box::new(move |cx| Box::new(FromSnapshot::new(tenant_documents::price(cx, &operation))));
    Ok(Json(run(&app, &caller, build).await?))
}
