//! Viewer tokens as both runtimes issue, check and revoke them: the answer of
//! `POST /v1/viewer-tokens`, the check of a presented token against what the store
//! holds (`crm_store::viewer_tokens::check`), and the id rules of
//! `DELETE /v1/viewer-tokens/{id}`.

use crm_core::Timestamp;
use crm_core::viewer_token::{self, Claims, MAX_TTL_MS, TokenScope};
use crm_store::viewer_tokens::ViewerSecret;
use serde::Serialize;

use crate::ApiError;

/// Longest token id accepted on revocation (ids are ULIDs; room for other forms).
const MAX_ID_LEN: usize = 64;

/// The answer of `POST /v1/viewer-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedViewerToken {
    /// Revoke this token alone with `DELETE /v1/viewer-tokens/{id}`.
    pub id: String,
    pub token: String,
    pub expires_at: Timestamp,
    pub scope: TokenScope,
    /// Where the dashboard opens with this token.
    pub dashboard_path: String,
}

/// Signs a token for `scope` of `tenant` with id `id` (the runtime's fresh ULID),
/// valid until `expires_at` (ms).
pub fn issue(
    tenant: &str,
    scope: TokenScope,
    id: String,
    expires_at: i64,
    secret: &[u8],
) -> Result<IssuedViewerToken, ApiError> {
    let claims = Claims {
        tenant: tenant.to_owned(),
        scope: scope.clone(),
        expires_at,
        id: Some(id.clone()),
    };
    let token = viewer_token::sign(&claims, secret);
    Ok(IssuedViewerToken {
        id,
        dashboard_path: format!("/#token={token}"),
        token,
        expires_at: Timestamp::from_millis(expires_at)?,
        scope,
    })
}

/// What a retry of `POST /v1/viewer-tokens` under the same `Idempotency-Key` signs
/// again: the token's id, expiry and scope. The token itself is never stored; signing
/// is deterministic, so the retry answers the same token (while the secret is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remembered {
    pub id: String,
    pub expires_at: i64,
    pub scope: TokenScope,
}

impl Remembered {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Remembered, ApiError> {
        serde_json::from_str(text).map_err(|_| ApiError::internal())
    }

    pub fn issue(self, tenant: &str, secret: &[u8]) -> Result<IssuedViewerToken, ApiError> {
        issue(tenant, self.scope, self.id, self.expires_at, secret)
    }
}

fn refused() -> ApiError {
    ApiError::unauthorized("invalid, expired or revoked viewer token")
}

/// The tenant and id a token claims (unverified): what to read the check with.
pub fn claimed(token: &str) -> Result<(String, Option<String>), ApiError> {
    viewer_token::claimed(token).map_err(|_| refused())
}

/// The token's claims and the tenant's version, if `stored` (the read of
/// [`crm_store::viewer_tokens::check`] for the claimed tenant and id) lets it in: the
/// tenant exists and has issued tokens, the signature is its secret's, the token has
/// not expired and its id is not revoked. Every refusal is the same 401.
pub fn verify(
    token: &str,
    stored: Option<ViewerSecret>,
    now: i64,
) -> Result<(Claims, u64), ApiError> {
    let stored = stored.ok_or_else(refused)?;
    let secret = hex::decode(&stored.secret).map_err(|_| refused())?;
    if secret.is_empty() || stored.revoked {
        // No token was ever signed for this tenant (an empty key must not verify), or
        // this one was revoked.
        return Err(refused());
    }
    let claims = viewer_token::verify(token, &secret, now).map_err(|_| refused())?;
    Ok((claims, stored.version))
}

/// The id of `DELETE /v1/viewer-tokens/{id}`, and how long its revocation is kept: as
/// long as any token can live.
pub fn revocation(id: &str, now: i64) -> Result<(String, i64), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(format!(
            "a viewer token id is 1-{MAX_ID_LEN} letters and digits"
        )));
    }
    Ok((id.to_owned(), now.saturating_add(MAX_TTL_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(secret: &[u8], revoked: bool) -> Option<ViewerSecret> {
        Some(ViewerSecret {
            secret: hex::encode(secret),
            version: 7,
            revoked,
        })
    }

    #[test]
    fn issued_tokens_verify_until_revoked_or_expired() {
        let t =
            issue("acme", TokenScope::Tenant, "01J0ID".to_owned(), 5_000, b"s").expect("issued");
        assert_eq!(t.dashboard_path, format!("/#token={}", t.token));
        assert_eq!(
            claimed(&t.token).expect("claims"),
            ("acme".to_owned(), Some("01J0ID".to_owned()))
        );
        let (claims, version) = verify(&t.token, stored(b"s", false), 4_999).expect("valid");
        assert_eq!((claims.id.as_deref(), version), (Some("01J0ID"), 7));
        for (stored, now) in [
            (stored(b"s", true), 0),
            (stored(b"s", false), 5_000),
            (stored(b"other", false), 0),
            (stored(b"", false), 0),
            (None, 0),
        ] {
            let e = verify(&t.token, stored, now).expect_err("refused");
            assert_eq!(e.code, crate::ApiCode::Unauthorized);
        }
    }

    #[test]
    fn revocation_ids_are_checked() {
        assert_eq!(
            revocation("01J0ID", 10).expect("ok"),
            ("01J0ID".to_owned(), 10 + MAX_TTL_MS)
        );
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(revocation(bad, 0).is_err(), "{bad}");
        }
    }
}
