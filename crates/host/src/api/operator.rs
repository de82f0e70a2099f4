//! `POST /v1/operator/tenants`: provisioning with the operator's secret
//! (`crm_api::provisioning`) — a tenant, its opening balance and its first admin key.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use crm_api::provisioning::{ProvisionRequest, Provisioned};

use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};

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
    let (id, lock) = (plan.id.clone(), plan.id.clone());
    let d = app.store.dialect();
    let new = plan.writes(d, clock::now().millis(), &rand::random())?;
    let answer = new.answer;
    let statements = new.statements;
    app.store
        .write(Some(&lock), move |c| {
            if c.query_opt(&crm_store::tenants::get(d, &id, false))?
                .is_some()
            {
                return Err(HostError::Api(crm_api::provisioning::exists(&id)));
            }
            c.execute_all(&statements)?;
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}
