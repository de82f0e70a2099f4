//! Leads of the engine's own small CRM (`/v1/leads`): stored as JSON with an owner, a
//! version for optimistic updates, and timestamps.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement, seq};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    pub id: String,
    pub owner_id: String,
    /// The lead's fields (JSON object).
    pub data: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, owner_id, data, version, created_at, updated_at";

pub fn get(d: Dialect, tenant_id: &str, id: &str) -> Statement {
    d.stmt(
        &format!("SELECT {COLUMNS} FROM leads WHERE tenant_id = ?1 AND id = ?2"),
        vec![tenant_id.into(), id.into()],
    )
}

pub fn decode(row: &Row) -> StoreResult<LeadRow> {
    Ok(LeadRow {
        id: row.string(0)?,
        owner_id: row.string(1)?,
        data: row.string(2)?,
        version: row.uint(3)?,
        created_at: row.int(4)?,
        updated_at: row.int(5)?,
    })
}

pub fn insert(d: Dialect, tenant_id: &str, lead: &LeadRow) -> Statement {
    d.stmt(
        "INSERT INTO leads (tenant_id, id, owner_id, data, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vec![
            tenant_id.into(),
            lead.id.as_str().into(),
            lead.owner_id.as_str().into(),
            lead.data.as_str().into(),
            seq(lead.version),
            lead.created_at.into(),
            lead.updated_at.into(),
        ],
    )
}

/// Replaces the data if the stored version is still `expected` (0 rows otherwise).
pub fn update(
    d: Dialect,
    tenant_id: &str,
    id: &str,
    expected: u64,
    data: &str,
    now: i64,
) -> Statement {
    d.stmt(
        "UPDATE leads SET data = ?4, version = version + 1, updated_at = ?5
         WHERE tenant_id = ?1 AND id = ?2 AND version = ?3",
        vec![
            tenant_id.into(),
            id.into(),
            seq(expected),
            data.into(),
            now.into(),
        ],
    )
}

/// Leads by last update, newest first, after a `(updated_at, id)` position.
pub fn page(d: Dialect, tenant_id: &str, after: Option<(i64, &str)>, limit: usize) -> Statement {
    let (cond, mut params) = match after {
        Some((t, id)) => (
            " AND (updated_at < ?2 OR (updated_at = ?2 AND id < ?3))",
            vec![t.into(), id.into()],
        ),
        None => ("", Vec::new()),
    };
    params.insert(0, tenant_id.into());
    d.stmt(
        &format!(
            "SELECT {COLUMNS} FROM leads WHERE tenant_id = ?1{cond} ORDER BY updated_at DESC, id DESC LIMIT {}",
            limit + 1
        ),
        params,
    )
}
