//! Viewer tokens revoked one by one, and the one read that checks a token: the tenant's
//! signing secret and whether the token's id is revoked, together.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement};

/// What a viewer token is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerSecret {
    /// The tenant's signing secret, hex (empty: no token was ever issued).
    pub secret: String,
    pub version: u64,
    /// The token's id is revoked.
    pub revoked: bool,
}

/// The secret and version of `tenant_id`, and whether `token_id` is revoked (a token
/// without an id is never revoked alone).
pub fn check(d: Dialect, tenant_id: &str, token_id: Option<&str>) -> Statement {
    d.stmt(
        "SELECT secret, version,
                (SELECT COUNT(*) FROM viewer_token_revocations r
                 WHERE r.tenant_id = ?1 AND r.token_id = ?2)
         FROM tenants WHERE id = ?1",
        vec![tenant_id.into(), token_id.unwrap_or_default().into()],
    )
}

pub fn decode_check(row: &Row) -> StoreResult<ViewerSecret> {
    Ok(ViewerSecret {
        secret: row.string(0)?,
        version: row.uint(1)?,
        revoked: row.int(2)? > 0,
    })
}

/// Revokes `token_id` until `expires_at` (when the token would be refused anyway);
/// revoking twice is one revocation.
pub fn revoke(d: Dialect, tenant_id: &str, token_id: &str, expires_at: i64, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO viewer_token_revocations (tenant_id, token_id, expires_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, token_id) DO NOTHING",
        vec![
            tenant_id.into(),
            token_id.into(),
            expires_at.into(),
            now.into(),
        ],
    )
}

/// Forgets revocations of tokens that have expired by `now`.
pub fn prune(d: Dialect, now: i64) -> Statement {
    d.stmt(
        "DELETE FROM viewer_token_revocations WHERE expires_at < ?1",
        vec![now.into()],
    )
}
