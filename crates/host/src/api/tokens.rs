//! `POST /v1/viewer-tokens` (admin): a short-lived, read-only token for a dashboard,
//! for the whole tenant or limited to one user or one department subtree.

use axum::Json;
use axum::extract::State;
use crm_core::viewer_token::{MAX_TTL_MS, TokenScope};
use crm_core::{CoreError, Timestamp};
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Body;
use crate::error::{HostError, HostResult};
use crate::service::{App, tokens};

/// Lifetime when the request names none: a working session.
const DEFAULT_TTL_SECONDS: i64 = 3_600;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Request {
    /// `{"tenant": null}`-free form: absent means the whole tenant.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    department_id: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

pub async fn create(State(app): State<App>, caller: Caller, body: Body) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Admin)?;
    let req: Request = body.parse()?;
    let tenant = caller.snapshot(&app).await?;
    let dir = &tenant.snapshot.directory;
    let scope = match (req.user_id, req.department_id) {
        (Some(_), Some(_)) => {
            return Err(HostError::BadRequest(
                "give `userId` or `departmentId`, not both".to_owned(),
            ));
        }
        (Some(u), None) => {
            dir.user(&u).ok_or_else(|| {
                HostError::NotFound(format!("no user `{}`", crm_core::time::clip(&u)))
            })?;
            TokenScope::User(u)
        }
        (None, Some(d)) => {
            dir.department(&d).ok_or_else(|| {
                HostError::NotFound(format!("no department `{}`", crm_core::time::clip(&d)))
            })?;
            TokenScope::Department(d)
        }
        (None, None) => TokenScope::Tenant,
    };
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if ttl <= 0 || ttl.saturating_mul(1_000) > MAX_TTL_MS {
        return Err(CoreError::invalid(
            "ttlSeconds",
            format!("`ttlSeconds` must be 1..={}", MAX_TTL_MS / 1_000),
        )
        .into());
    }
    let (token, expires_at) =
        tokens::issue(&app, caller.tenant(), scope.clone(), ttl * 1_000).await?;
    Ok(Json(json!({
        "token": token,
        "expiresAt": Timestamp::from_millis(expires_at)?,
        "scope": scope,
        "dashboardPath": format!("/#token={token}"),
    })))
}
