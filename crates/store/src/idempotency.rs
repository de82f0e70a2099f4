//! Stored first answers of requests sent with an `Idempotency-Key` (for effects that
//! have no natural id to collide on, such as credit grants). Written in the same
//! transaction as the effect, so an answer exists exactly when the effect does.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement};

/// Longest `Idempotency-Key` accepted: room for a UUID or a client's own composite key.
pub const MAX_KEY_LEN: usize = 200;

/// The `Idempotency-Key` header value, trimmed, if it is 1–[`MAX_KEY_LEN`] visible
/// ASCII characters.
pub fn check_key(text: &str) -> Result<&str, crm_core::CoreError> {
    Some(text.trim())
        .filter(|t| {
            !t.is_empty() && t.len() <= MAX_KEY_LEN && t.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            crm_core::CoreError::invalid(
                "Idempotency-Key",
                format!("`Idempotency-Key` must be 1-{MAX_KEY_LEN} visible ASCII characters"),
            )
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub request_hash: String,
    pub status: u16,
    pub response: String,
}

pub fn get(d: Dialect, tenant_id: &str, key: &str) -> Statement {
    d.stmt(
        "SELECT request_hash, status, response FROM idempotency WHERE tenant_id = ?1 AND key = ?2",
        vec![tenant_id.into(), key.into()],
    )
}

pub fn decode(row: &Row) -> StoreResult<Recorded> {
    Ok(Recorded {
        request_hash: row.string(0)?,
        status: u16::try_from(row.int(1)?).unwrap_or(200),
        response: row.string(2)?,
    })
}

pub fn insert(d: Dialect, tenant_id: &str, key: &str, r: &Recorded, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO idempotency (tenant_id, key, request_hash, status, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        vec![
            tenant_id.into(),
            key.into(),
            r.request_hash.as_str().into(),
            i64::from(r.status).into(),
            r.response.as_str().into(),
            now.into(),
        ],
    )
}

/// How long a key stays bound to its first request: retries come within minutes; a
/// day leaves room for a client that retries after an outage. Activities and lead
/// operations also stay idempotent by their (derived) ids for as long as they are kept.
pub const WINDOW_MS: i64 = crm_core::duration::DAY_MS;

/// The stored key of a request to `endpoint` (its operationId): one record per
/// (tenant, endpoint, key). A header value never holds a newline, so no two endpoints'
/// keys meet.
pub fn scoped_key(endpoint: &str, key: &str) -> String {
    format!("{endpoint}\n{key}")
}

/// Binds `key` to `request_hash` unless a request holds it already (then nothing
/// changes; [`get`] tells which request that was). A binding has no stored answer:
/// the endpoint's own idempotency (ids) answers the retry.
pub fn claim(d: Dialect, tenant_id: &str, key: &str, request_hash: &str, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO idempotency (tenant_id, key, request_hash, status, response, created_at)
         VALUES (?1, ?2, ?3, 0, '', ?4)
         ON CONFLICT (tenant_id, key) DO NOTHING",
        vec![
            tenant_id.into(),
            key.into(),
            request_hash.into(),
            now.into(),
        ],
    )
}

/// Keeps `r` for `key` unless a request holds it already (then nothing changes): read
/// it back with [`get`] in the same transaction to answer from whichever came first.
pub fn remember(d: Dialect, tenant_id: &str, key: &str, r: &Recorded, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO idempotency (tenant_id, key, request_hash, status, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant_id, key) DO NOTHING",
        vec![
            tenant_id.into(),
            key.into(),
            r.request_hash.as_str().into(),
            i64::from(r.status).into(),
            r.response.as_str().into(),
            now.into(),
        ],
    )
}

/// Forgets answers older than `before` (retries come within minutes, not days).
pub fn prune(d: Dialect, before: i64) -> Statement {
    d.stmt(
        "DELETE FROM idempotency WHERE created_at < ?1",
        vec![before.into()],
    )
}
