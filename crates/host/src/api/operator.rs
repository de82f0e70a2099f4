//! `POST /v1/operator/tenants`: provisioning with the operator's secret
//! (`crm_api::provisioning`) — a tenant, its opening balance and its first admin key.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use crm_api::provisioning::{ProvisionRequest, Provisioned};
use crm_api::requests::KeyPlan;
use crm_core::TenantPolicy;
use crm_core::directory::DirectorySpec;
use crm_store::keys::KeyScope;

use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, admin, clock};

/// The operator, proven by the secret in `Authorization`.
pub struct Operator;

impl FromRequestParts<App> for Operator {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        crm_api::provisioning::check_operator(app.operator_secret.as_deref(), presented)
            .map_err(HostError::Api)?;
        Ok(Operator)
    }
}

/// crm-host keeps every tenant in its one database: shard 0.
const SHARDS: u32 = 1;

pub async fn provision(
    State(app): State<App>,
    _operator: Operator,
    body: Body,
) -> HostResult<(StatusCode, Json<Provisioned>)> {
    let plan = body
        .parse::<ProvisionRequest>()?
        .plan(SHARDS)
        .map_err(HostError::Api)?;
    let policy = TenantPolicy {
        timezone: Some(plan.timezone.clone()),
        ..TenantPolicy::default()
    };
    admin::create_tenant_in(
        &app.store,
        &plan.id,
        &plan.name,
        &policy,
        &DirectorySpec::default(),
        plan.balance,
    )
    .await
    .map_err(|e| match e.downcast::<HostError>() {
        Ok(h) => h,
        Err(other) => match other.downcast::<crm_core::CoreError>() {
            Ok(c) => HostError::Core(c),
            Err(other) => HostError::internal(other),
        },
    })?;
    let key = KeyPlan {
        scopes: vec![KeyScope::Admin],
        label: Some("first admin key".to_owned()),
        expires_at: None,
    };
    let (admin_key, _) = app
        .store
        .create_key(&plan.id, key, clock::now().millis(), None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Provisioned {
            tenant_id: plan.id,
            shard: plan.shard,
            balance: plan.balance,
            admin_key,
        }),
    ))
}
