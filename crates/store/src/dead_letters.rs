//! Dead letters of the edge: what its consumer could not write, with the reason, kept
//! per tenant until an admin re-drives (re-queues) or drops them.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement, Value};

/// Dead letters listed per request unless `limit` says otherwise, and at most.
pub const DEFAULT_LIST: usize = 50;
pub const MAX_LIST: usize = 500;

/// A dead letter as an admin lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub reason: String,
    /// The queue message as it was (a packet of activities).
    pub body: serde_json::Value,
    pub at: i64,
}

pub fn insert(
    d: Dialect,
    tenant_id: &str,
    id: &str,
    reason: &str,
    body: &str,
    at: i64,
) -> Statement {
    d.stmt(
        "INSERT INTO dead_letters (tenant_id, id, reason, body, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant_id, id) DO NOTHING",
        vec![
            tenant_id.into(),
            id.into(),
            reason.into(),
            body.into(),
            at.into(),
        ],
    )
}

/// The tenant's oldest dead letters first.
pub fn list(d: Dialect, tenant_id: &str, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT id, reason, body, at FROM dead_letters WHERE tenant_id = ?1
             ORDER BY at, id LIMIT {limit}"
        ),
        vec![tenant_id.into()],
    )
}

pub fn get(d: Dialect, tenant_id: &str, id: &str) -> Statement {
    d.stmt(
        "SELECT id, reason, body, at FROM dead_letters WHERE tenant_id = ?1 AND id = ?2",
        vec![tenant_id.into(), Value::from(id)],
    )
}

pub fn decode(row: &Row) -> StoreResult<DeadLetter> {
    Ok(DeadLetter {
        id: row.string(0)?,
        reason: row.string(1)?,
        body: serde_json::from_str(row.text(2)?)
            .map_err(|e| crate::StoreError::decode(format!("dead letter body: {e}")))?,
        at: row.int(3)?,
    })
}

pub fn delete(d: Dialect, tenant_id: &str, id: &str) -> Statement {
    d.stmt(
        "DELETE FROM dead_letters WHERE tenant_id = ?1 AND id = ?2",
        vec![tenant_id.into(), Value::from(id)],
    )
}
