//! API keys for admins: `GET /v1/keys`, `POST /v1/keys`, `DELETE /v1/keys/{id}`.
//! Revocation takes effect on the next request everywhere (keys are looked up per
//! request, never cached).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_core::{CoreError, Timestamp};
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};

pub async fn list(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Admin)?;
    let keys = app.store.list_keys(caller.tenant()).await?;
    Ok(Json(json!({ "keys": keys })))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewKey {
    scopes: Vec<String>,
    #[serde(default)]
    label: Option<String>,
    /// Lifetime; absent means no expiry.
    #[serde(default)]
    expires_in_seconds: Option<i64>,
}

/// Longest lifetime an expiring key may be given: ten years.
const MAX_KEY_TTL_SECONDS: i64 = 10 * 366 * 86_400;

pub async fn create(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> HostResult<(StatusCode, Json<Value>)> {
    caller.require(KeyScope::Admin)?;
    let req: NewKey = body.parse()?;
    let scopes = req
        .scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            KeyScope::parse(s).ok_or_else(|| {
                CoreError::invalid(format!("scopes[{i}]"), "a scope is admin, ingest or read")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(CoreError::invalid("scopes", "a key needs at least one scope").into());
    }
    if let Some(l) = &req.label {
        crm_core::names::validate_label("label", l)?;
    }
    let now = clock::now().millis();
    let expires_at = match req.expires_in_seconds {
        None => None,
        Some(s) if (1..=MAX_KEY_TTL_SECONDS).contains(&s) => Some(now + s * 1_000),
        Some(_) => {
            return Err(CoreError::invalid(
                "expiresInSeconds",
                format!("`expiresInSeconds` must be 1..={MAX_KEY_TTL_SECONDS}"),
            )
            .into());
        }
    };
    let (id, key) = app
        .store
        .create_key(
            caller.tenant(),
            scopes.clone(),
            req.label.clone(),
            expires_at,
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id, "key": key, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "label": req.label, "expiresAt": expires_at.map(Timestamp::from_millis).transpose()?,
        })),
    ))
}

pub async fn revoke(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> HostResult<StatusCode> {
    caller.require(KeyScope::Admin)?;
    if app
        .store
        .revoke_key(caller.tenant(), &id, clock::now().millis())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(HostError::NotFound(format!(
            "no key `{}`",
            crm_core::time::clip(&id)
        )))
    }
}
