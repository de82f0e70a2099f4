//! Prices, balance and grants.

use axum::Json;
use axum::extract::State;
use crm_core::Credits;
use crm_core::pricing::PriceTable;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};
use crm_api::requests::GrantRequest;
use crm_store::keys::KeyScope as Scope;
use sha2::{Digest, Sha256};

pub async fn prices(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require_tenant_wide()?;
    let t = caller.snapshot(&app).await?;
    Ok(Json(
        serde_json::to_value(&t.snapshot.policy.prices).map_err(HostError::internal)?,
    ))
}

pub async fn put_prices(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let table: PriceTable = body.parse()?;
    let t = app
        .tenants
        .update(caller.tenant(), move |_, policy| {
            policy.prices = table.clone();
            Ok(())
        })
        .await?;
    let mut answer =
        serde_json::to_value(&t.snapshot.policy.prices).map_err(HostError::internal)?;
    answer["version"] = json!(t.version());
    Ok(Json(answer))
}

pub async fn balance(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require_tenant_wide()?;
    let row = app.store.tenant(caller.tenant()).await?;
    Ok(Json(
        json!({ "balance": Credits::from_units(row.balance_units)? }),
    ))
}

pub async fn grant(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> HostResult<Json<Value>> {
    caller.require(Scope::Admin)?;
    let request_hash = hex::encode(Sha256::digest(
        crm_core::chain::canonical_json(&body.0).as_bytes(),
    ));
    let (units, reason) = body.parse::<GrantRequest>()?.plan()?;
    let now = clock::now().millis();
    let balance = app
        .store
        .adjust_balance(
            caller.tenant(),
            units,
            now,
            crm_store::ledger::KIND_GRANT,
            reason,
            key.0.map(|k| (format!("grant:{k}"), request_hash)),
        )
        .await?;
    Ok(Json(json!({ "balance": Credits::from_units(balance)? })))
}

/// `GET /v1/credits/ledger`: every balance change, newest first (`crm_api::credits`).
pub async fn ledger(
    State(app): State<App>,
    caller: Caller,
    super::error::Query(params): super::error::Query,
) -> HostResult<Json<crm_api::credits::LedgerPage>> {
    caller.require_tenant_wide()?;
    let q = crm_api::credits::ledger_query(&params.0, clock::now()).map_err(HostError::Api)?;
    let (d, tenant, read) = (app.store.dialect(), caller.tenant().to_owned(), q.clone());
    let entries = app
        .store
        .read(move |c| {
            c.query(&crm_store::ledger::page(d, &tenant, &read))?
                .iter()
                .map(|row| Ok(crm_store::ledger::decode(row)?))
                .collect::<HostResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(crm_api::credits::LedgerPage::new(entries, &q)))
}

/// `GET /v1/credits/prices/{operation}`: what one operation would cost (`crm_api::credits`).
pub async fn price(
    State(app): State<App>,
    caller: Caller,
    axum::extract::Path(operation): axum::extract::Path<String>,
) -> HostResult<Json<crm_api::credits::Price>> {
    caller.require_tenant_wide()?;
    let t = caller.snapshot(&app).await?;
    Ok(Json(
        crm_api::credits::price(&t.snapshot.policy.prices, &operation).map_err(HostError::Api)?,
    ))
}
