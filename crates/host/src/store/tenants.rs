//! Tenant rows: policy, directory (versioned), balance and chain head.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{HostError, HostResult};

#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub version: u64,
    pub policy: String,
    pub directory: String,
    pub balance_units: i64,
    pub head_seq: u64,
    pub head_hash: String,
}

pub fn get(conn: &Connection, id: &str) -> HostResult<Option<TenantRow>> {
    Ok(conn
        .query_row(
            "SELECT id, name, version, policy, directory, balance_units, head_seq, head_hash
             FROM tenants WHERE id = ?1",
            [id],
            |r| {
                Ok(TenantRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get(2)?,
                    policy: r.get(3)?,
                    directory: r.get(4)?,
                    balance_units: r.get(5)?,
                    head_seq: r.get(6)?,
                    head_hash: r.get(7)?,
                })
            },
        )
        .optional()?)
}

pub fn require(conn: &Connection, id: &str) -> HostResult<TenantRow> {
    get(conn, id)?.ok_or_else(|| HostError::NotFound(format!("tenant `{id}` does not exist")))
}

pub fn create(
    conn: &Connection,
    id: &str,
    name: &str,
    policy: &str,
    directory: &str,
    now: i64,
) -> HostResult<()> {
    if get(conn, id)?.is_some() {
        return Err(HostError::Conflict {
            message: format!("tenant `{id}` already exists"),
            details: serde_json::json!({ "tenantId": id }),
        });
    }
    conn.execute(
        "INSERT INTO tenants (id, name, version, policy, directory, head_hash, created_at)
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)",
        params![id, name, policy, directory, crm_core::chain::GENESIS, now],
    )?;
    record_version(conn, id, 1, policy, directory, now)
}

/// Replaces directory and/or policy and bumps the version. Returns the new version.
pub fn update_snapshot(
    conn: &Connection,
    id: &str,
    policy: &str,
    directory: &str,
    now: i64,
) -> HostResult<u64> {
    let version: u64 = conn.query_row(
        "UPDATE tenants SET version = version + 1, policy = ?2, directory = ?3 WHERE id = ?1 RETURNING version",
        params![id, policy, directory],
        |r| r.get(0),
    )?;
    record_version(conn, id, version, policy, directory, now)?;
    Ok(version)
}

fn record_version(
    conn: &Connection,
    id: &str,
    version: u64,
    policy: &str,
    directory: &str,
    now: i64,
) -> HostResult<()> {
    conn.execute(
        "INSERT INTO tenant_versions (tenant_id, version, policy, directory, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, version, policy, directory, now],
    )?;
    Ok(())
}

/// Adds `delta` (may be negative) to the balance with a ledger entry. Returns the new balance.
pub fn adjust_balance(
    conn: &Connection,
    id: &str,
    delta_units: i64,
    now: i64,
    kind: &str,
    detail: &str,
) -> HostResult<i64> {
    let current: i64 = conn.query_row(
        "SELECT balance_units FROM tenants WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let next = current
        .checked_add(delta_units)
        .filter(|b| *b >= 0 && *b <= crm_core::limits::MAX_CREDITS_UNITS)
        .ok_or_else(|| {
            HostError::Core(crm_core::CoreError::new(
                crm_core::ErrorCode::Overflow,
                "the balance would leave the allowed range",
            ))
        })?;
    conn.execute(
        "UPDATE tenants SET balance_units = ?2 WHERE id = ?1",
        params![id, next],
    )?;
    ledger_entry(conn, id, now, delta_units, next, kind, detail)?;
    Ok(next)
}

pub fn ledger_entry(
    conn: &Connection,
    id: &str,
    now: i64,
    delta_units: i64,
    balance_units: i64,
    kind: &str,
    detail: &str,
) -> HostResult<()> {
    conn.execute(
        "INSERT INTO credit_ledger (tenant_id, entry, at, delta_units, balance_units, kind, detail)
         VALUES (?1, (SELECT COALESCE(MAX(entry), 0) + 1 FROM credit_ledger WHERE tenant_id = ?1), ?2, ?3, ?4, ?5, ?6)",
        params![id, now, delta_units, balance_units, kind, detail],
    )?;
    Ok(())
}
