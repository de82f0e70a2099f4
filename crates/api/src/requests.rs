//! Administrative request bodies (new key, credit grant, viewer token) and their rules,
//! decided once for both runtimes: each checks its input and returns exactly what the
//! store writes or the token carries, or the API error to answer.

use crate::error::{ApiCode, ApiError};
use crm_core::CoreError;
use crm_core::directory::CompiledDirectory;
use crm_core::viewer_token::{MAX_TTL_MS, TokenScope};

use crm_store::keys::KeyScope;

/// Longest lifetime an expiring key may be given: ten years.
pub const MAX_KEY_TTL_SECONDS: i64 = 10 * 366 * 86_400;

/// Viewer token lifetime when the request names none: a working session.
pub const DEFAULT_VIEWER_TTL_SECONDS: i64 = 3_600;

/// `POST /v1/keys`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKeyRequest {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// Lifetime; absent means no expiry.
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

/// `GET /v1/keys`: the tenant's keys (never their text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct KeyList {
    pub keys: Vec<crm_store::keys::KeyInfo>,
}

/// The answer of `POST /v1/keys`. The key's text is in the answer that made it and
/// never again: a retry under the same `Idempotency-Key` answers 200 with the same
/// key's id (to use or revoke) and no text — the text is never stored.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct NewKeyAnswer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub expires_at: Option<crm_core::Timestamp>,
}

impl NewKeyAnswer {
    pub fn new(id: String, key: String, plan: &KeyPlan) -> Result<NewKeyAnswer, CoreError> {
        Ok(NewKeyAnswer {
            id,
            key: Some(key),
            scopes: plan.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            label: plan.label.clone(),
            expires_at: plan
                .expires_at
                .map(crm_core::Timestamp::from_millis)
                .transpose()?,
        })
    }

    /// What is kept for a retry: everything but the text.
    pub fn remembered(&self) -> String {
        let kept = NewKeyAnswer {
            key: None,
            ..self.clone()
        };
        serde_json::to_string(&kept).unwrap_or_default()
    }

    /// The answer of a retry, from what [`NewKeyAnswer::remembered`] kept.
    pub fn replayed(kept: &str) -> Result<NewKeyAnswer, crate::ApiError> {
        serde_json::from_str(kept).map_err(|_| crate::ApiError::internal())
    }
}

/// A checked key request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    pub scopes: Vec<KeyScope>,
    pub label: Option<String>,
    pub expires_at: Option<i64>,
}

impl NewKeyRequest {
    pub fn plan(self, now: i64) -> Result<KeyPlan, CoreError> {
        let scopes = self
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
            return Err(CoreError::invalid(
                "scopes",
                "a key needs at least one scope",
            ));
        }
        if let Some(l) = &self.label {
            crm_core::names::validate_label("label", l)?;
        }
        let expires_at = match self.expires_in_seconds {
            None => None,
            Some(s) if (1..=MAX_KEY_TTL_SECONDS).contains(&s) => Some(now + s * 1_000),
            Some(_) => {
                return Err(CoreError::invalid(
                    "expiresInSeconds",
                    format!("`expiresInSeconds` must be 1..={MAX_KEY_TTL_SECONDS}"),
                ));
            }
        };
        Ok(KeyPlan {
            scopes,
            label: self.label,
            expires_at,
        })
    }
}

/// `POST /v1/viewer-tokens`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewerTokenRequest {
    /// Absent (with `departmentId` absent too) means the whole tenant.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub department_id: Option<String>,
    /// Lifetime (default an hour, at most a day).
    #[serde(default)]
    #[schemars(range(min = 1, max = 86_400))]
    pub ttl_seconds: Option<i64>,
}

impl ViewerTokenRequest {
    /// The token's scope (checked against the directory) and lifetime in ms.
    pub fn plan(self, dir: &CompiledDirectory) -> Result<(TokenScope, i64), ApiError> {
        let clip = crm_core::time::clip;
        let scope = match (self.user_id, self.department_id) {
            (Some(_), Some(_)) => {
                return Err(CoreError::invalid(
                    "userId",
                    "give `userId` or `departmentId`, not both",
                )
                .into());
            }
            (Some(u), None) => {
                if dir.user(&u).is_none() {
                    return Err(ApiError::new(
                        ApiCode::NotFound,
                        format!("no user `{}`", clip(&u)),
                    ));
                }
                TokenScope::User(u)
            }
            (None, Some(d)) => {
                if dir.department(&d).is_none() {
                    return Err(ApiError::new(
                        ApiCode::NotFound,
                        format!("no department `{}`", clip(&d)),
                    ));
                }
                TokenScope::Department(d)
            }
            (None, None) => TokenScope::Tenant,
        };
        let ttl = self.ttl_seconds.unwrap_or(DEFAULT_VIEWER_TTL_SECONDS);
        if ttl <= 0 || ttl.saturating_mul(1_000) > MAX_TTL_MS {
            return Err(CoreError::invalid(
                "ttlSeconds",
                format!("`ttlSeconds` must be 1..={}", MAX_TTL_MS / 1_000),
            )
            .into());
        }
        Ok((scope, ttl * 1_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_requests_need_known_scopes_and_a_bounded_lifetime() {
        let req = |scopes: &[&str], ttl| NewKeyRequest {
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            label: None,
            expires_in_seconds: ttl,
        };
        let plan = req(&["read"], Some(60)).plan(1_000).expect("valid");
        assert_eq!(plan.scopes, vec![KeyScope::Read]);
        assert_eq!(plan.expires_at, Some(61_000));
        assert!(req(&[], None).plan(0).is_err());
        assert!(req(&["root"], None).plan(0).is_err());
        assert!(req(&["read"], Some(0)).plan(0).is_err());
        assert!(
            req(&["read"], Some(MAX_KEY_TTL_SECONDS + 1))
                .plan(0)
                .is_err()
        );
    }
}
