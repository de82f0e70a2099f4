//! Viewer tokens: short-lived, read-only credentials for dashboards, signed with the
//! tenant's secret (HMAC-SHA256). Text form `vt1.<hex claims>.<hex mac>`: URL-safe, so
//! an admin can hand a manager a dashboard link. A token never names more than one
//! tenant, and a forged, altered or expired token is refused.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{CoreError, CoreResult};

const PREFIX: &str = "vt1";
/// Domain separation: a MAC made for something else never verifies as a token.
const CONTEXT: &[u8] = b"crm-viewer-token-v1.";
/// Longest lifetime a token may be issued for: dashboards re-issue, leaks expire.
pub const MAX_TTL_MS: i64 = 24 * 3_600_000;
/// Longest token text accepted before any work is done.
const MAX_TOKEN_LEN: usize = 2_048;

/// What a token may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum TokenScope {
    /// The whole tenant.
    Tenant,
    /// One user's activities, reports and dashboard.
    User(String),
    /// A department subtree.
    Department(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Claims {
    pub tenant: String,
    pub scope: TokenScope,
    /// Unix ms after which the token is refused.
    pub expires_at: i64,
    /// The token's id, by which it can be revoked alone (tokens issued before ids
    /// existed have none: only rotating the secret revokes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn mac(secret: &[u8], claims_hex: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(CONTEXT);
    m.update(claims_hex.as_bytes());
    m
}

/// The token text for `claims`, signed with `secret`.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let body = hex::encode(serde_json::to_vec(claims).expect("claims always serialize"));
    let tag = hex::encode(mac(secret, &body).finalize().into_bytes());
    format!("{PREFIX}.{body}.{tag}")
}

/// The tenant a token claims to belong to, read before verifying (to find the secret
/// to verify with). Nothing else in an unverified token is trusted.
pub fn claimed_tenant(token: &str) -> CoreResult<String> {
    Ok(parse(token)?.0.tenant)
}

/// The tenant and id a token claims, unverified (to fetch the secret and the token's
/// revocation in one read); [`verify`] then decides.
pub fn claimed(token: &str) -> CoreResult<(String, Option<String>)> {
    let (claims, _, _) = parse(token)?;
    Ok((claims.tenant, claims.id))
}

fn bad() -> CoreError {
    CoreError::invalid("token", "not a valid viewer token")
}

fn parse(token: &str) -> CoreResult<(Claims, &str, &str)> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad());
    }
    let mut parts = token.split('.');
    let (Some(PREFIX), Some(body), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let bytes = hex::decode(body).map_err(|_| bad())?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((claims, body, tag))
}

/// The claims of a token signed with `secret` and not expired at `now`.
pub fn verify(token: &str, secret: &[u8], now: i64) -> CoreResult<Claims> {
    let (claims, body, tag) = parse(token)?;
    let tag = hex::decode(tag).map_err(|_| bad())?;
    // Constant-time comparison.
    mac(secret, body).verify_slice(&tag).map_err(|_| bad())?;
    if claims.expires_at <= now {
        return Err(CoreError::invalid("token", "the viewer token has expired"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            tenant: "acme".into(),
            scope: TokenScope::User("user-1".into()),
            expires_at: 2_000,
            id: Some("vt_1".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = sign(&claims(), b"secret");
        assert_eq!(verify(&t, b"secret", 1_999).expect("valid"), claims());
        assert!(verify(&t, b"secret", 2_000).is_err());
        assert_eq!(claimed_tenant(&t).expect("readable"), "acme");
        assert_eq!(
            claimed(&t).expect("readable"),
            ("acme".to_owned(), Some("vt_1".to_owned()))
        );
    }

    #[test]
    fn another_secret_an_altered_claim_or_garbage_is_refused() {
        let t = sign(&claims(), b"secret");
        assert!(verify(&t, b"other", 0).is_err());
        let mut forged = claims();
        forged.scope = TokenScope::Tenant;
        let forged_body = hex::encode(serde_json::to_vec(&forged).expect("json"));
        let tag = t.rsplit('.').next().expect("tag");
        assert!(verify(&format!("vt1.{forged_body}.{tag}"), b"secret", 0).is_err());
        for junk in ["", "vt1", "vt1..", "vt2.00.00", "vt1.zz.zz", "vt1.7b7d.00"] {
            assert!(verify(junk, b"secret", 0).is_err(), "{junk}");
        }
    }
}
