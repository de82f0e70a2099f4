//! Tenant rows: policy and directory (versioned), credit balance and ledger, chain head.

use crm_core::Credits;

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value, seq};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The whole tenant row. `lock` takes the row lock where the dialect needs one.
pub fn get(d: Dialect, id: &str, lock: bool) -> Statement {
    let sql = format!(
        "SELECT id, name, version, policy, directory, {}, head_seq, head_hash
         FROM tenants WHERE id = ?1{}",
        d.money("balance_units"),
        if lock { d.for_update() } else { "" }
    );
    d.stmt(&sql, vec![id.into()])
}

pub fn decode(row: &Row) -> StoreResult<TenantRow> {
    Ok(TenantRow {
        id: row.string(0)?,
        name: row.string(1)?,
        version: row.uint(2)?,
        policy: row.string(3)?,
        directory: row.string(4)?,
        balance_units: row.int(5)?,
        head_seq: row.uint(6)?,
        head_hash: row.string(7)?,
    })
}

/// Takes the tenant's row lock for the rest of the transaction (PostgreSQL; the
/// other dialects serialise writers already and get a plain read).
pub fn lock(d: Dialect, id: &str) -> Statement {
    let sql = format!("SELECT 1 FROM tenants WHERE id = ?1{}", d.for_update());
    d.stmt(&sql, vec![id.into()])
}

/// Where a tenant's chain and balance stand, as read before appending to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub balance: Credits,
}

/// The head of a tenant (and the policy its alert rules are in), locked for the
/// transaction where the dialect needs it.
pub fn head(d: Dialect, id: &str) -> Statement {
    let sql = format!(
        "SELECT head_seq, head_hash, {}, policy FROM tenants WHERE id = ?1{}",
        d.money("balance_units"),
        d.for_update()
    );
    d.stmt(&sql, vec![id.into()])
}

/// The alert rules of the policy a [`head`] row carries.
pub fn decode_alert_rules(row: &Row) -> StoreResult<Vec<crm_core::alerts::AlertRule>> {
    crate::alerts::rules_of_policy(row.text(3)?)
}

/// The metadata keys marked personal in the policy a [`head`] row carries: what a
/// write seals besides the user's and the connection's details.
pub fn decode_personal_keys(row: &Row) -> StoreResult<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Personal {
        #[serde(default)]
        personal_keys: Vec<String>,
    }
    serde_json::from_str::<Personal>(row.text(3)?)
        .map(|p| p.personal_keys)
        .map_err(|e| StoreError::decode(format!("stored policy: {e}")))
}

pub fn decode_head(row: &Row) -> StoreResult<Head> {
    Ok(Head {
        seq: row.uint(0)?,
        hash: row.string(1)?,
        balance: Credits::from_units(row.int(2)?)?,
    })
}

/// Moves the head from `before` to (`seq`, `hash`) with the new balance — only if head
/// and balance are still what was read (a grant between the read and the write would
/// otherwise be overwritten). Otherwise `head_seq` becomes NULL, which the NOT NULL
/// constraint refuses, so the whole transaction (or D1 batch) rolls back instead of
/// forking the chain. Under a row lock the guard never fires; it is the safety net.
pub fn move_head(
    d: Dialect,
    id: &str,
    before: &Head,
    seq_after: u64,
    hash: &str,
    balance: Credits,
) -> Statement {
    d.stmt(
        "UPDATE tenants SET
             head_seq = CASE WHEN head_seq = ?2 AND balance_units = ?6 THEN CAST(?3 AS BIGINT) ELSE NULL END,
             head_hash = ?4, balance_units = ?5 WHERE id = ?1",
        vec![
            id.into(),
            seq(before.seq),
            seq(seq_after),
            hash.into(),
            balance.units().into(),
            before.balance.units().into(),
        ],
    )
}

/// Appends a ledger entry (numbered per tenant) explaining a balance change.
pub fn ledger_entry(
    d: Dialect,
    id: &str,
    at: i64,
    delta_units: i64,
    balance_units: i64,
    kind: &str,
    detail: &str,
) -> Statement {
    d.stmt(
        "INSERT INTO credit_ledger (tenant_id, entry, at, delta_units, balance_units, kind, detail)
         VALUES (?1, (SELECT COALESCE(MAX(entry), 0) + 1 FROM credit_ledger WHERE tenant_id = ?1), ?2, ?3, ?4, ?5, ?6)",
        vec![
            id.into(),
            at.into(),
            delta_units.into(),
            balance_units.into(),
            kind.into(),
            detail.into(),
        ],
    )
}

/// Sets the balance from `expected_units` to `balance_units` (the caller computed it and
/// writes the ledger). Guarded like the head: if the balance moved since it was read,
/// the NOT NULL constraint refuses the write and the transaction rolls back — the
/// safety net where no row lock is held (D1).
pub fn set_balance(d: Dialect, id: &str, expected_units: i64, balance_units: i64) -> Statement {
    d.stmt(
        "UPDATE tenants SET balance_units = CASE WHEN balance_units = ?3 THEN CAST(?2 AS BIGINT) ELSE NULL END
         WHERE id = ?1",
        vec![id.into(), balance_units.into(), expected_units.into()],
    )
}

/// The balance after adding `delta_units`, refused when it would leave the allowed
/// range (negative, or past the core's maximum).
pub fn adjusted(current_units: i64, delta_units: i64) -> StoreResult<i64> {
    current_units
        .checked_add(delta_units)
        .filter(|b| (0..=crm_core::limits::MAX_CREDITS_UNITS).contains(b))
        .ok_or_else(|| {
            StoreError::Core(crm_core::CoreError::new(
                crm_core::ErrorCode::Overflow,
                "the balance would leave the allowed range",
            ))
        })
}

/// A new tenant at version 1 with an empty chain.
pub fn create(
    d: Dialect,
    id: &str,
    name: &str,
    policy: &str,
    directory: &str,
    now: i64,
) -> Vec<Statement> {
    vec![
        d.stmt(
            "INSERT INTO tenants (id, name, version, policy, directory, head_hash, created_at)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)",
            vec![
                id.into(),
                name.into(),
                policy.into(),
                directory.into(),
                crm_core::chain::GENESIS.into(),
                now.into(),
            ],
        ),
        record_version(d, id, 1, policy, directory, now),
    ]
}

/// Replaces policy and directory and moves the version from `expected` to
/// `expected + 1` — guarded like the head: if another change came first, the version
/// becomes NULL, the NOT NULL constraint refuses it and nothing is overwritten.
pub fn update_snapshot(
    d: Dialect,
    id: &str,
    expected: u64,
    policy: &str,
    directory: &str,
) -> Statement {
    d.stmt(
        "UPDATE tenants SET version = CASE WHEN version = ?4 THEN version + 1 ELSE NULL END,
             policy = ?2, directory = ?3 WHERE id = ?1",
        vec![id.into(), policy.into(), directory.into(), seq(expected)],
    )
}

/// Keeps every version ever active, for audit (which directory decided what).
pub fn record_version(
    d: Dialect,
    id: &str,
    version: u64,
    policy: &str,
    directory: &str,
    now: i64,
) -> Statement {
    d.stmt(
        "INSERT INTO tenant_versions (tenant_id, version, policy, directory, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            id.into(),
            seq(version),
            policy.into(),
            directory.into(),
            now.into(),
        ],
    )
}

/// The tenant's signing secret (hex; empty until first needed) and version.
pub fn secret(d: Dialect, id: &str) -> Statement {
    d.stmt(
        "SELECT secret, version FROM tenants WHERE id = ?1",
        vec![id.into()],
    )
}

/// Sets the secret if none is set yet (two hosts racing keep the first).
pub fn init_secret(d: Dialect, id: &str, secret: &str) -> Statement {
    d.stmt(
        "UPDATE tenants SET secret = ?2 WHERE id = ?1 AND secret = ''",
        vec![id.into(), secret.into()],
    )
}

/// Replaces the viewer-token signing secret: every token signed before is refused.
pub fn rotate_secret(d: Dialect, id: &str, secret: &str) -> Statement {
    d.stmt(
        "UPDATE tenants SET secret = ?2 WHERE id = ?1",
        vec![id.into(), secret.into()],
    )
}

/// The current version only: what a cached snapshot is checked against.
pub fn version(d: Dialect, id: &str) -> Statement {
    d.stmt(
        "SELECT version FROM tenants WHERE id = ?1",
        vec![Value::from(id)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjusting_never_goes_negative_or_overflows() {
        assert_eq!(adjusted(10, -10).expect("to zero"), 0);
        assert!(adjusted(10, -11).is_err());
        assert!(adjusted(i64::MAX, 1).is_err());
        assert!(adjusted(crm_core::limits::MAX_CREDITS_UNITS, 1).is_err());
    }

    #[test]
    fn the_head_move_is_guarded_by_the_head_read() {
        let before = Head {
            seq: 4,
            hash: "h4".into(),
            balance: Credits::ZERO,
        };
        let st = move_head(Dialect::Postgres, "t", &before, 9, "h9", Credits::ZERO);
        assert!(st.sql.contains(
            "CASE WHEN head_seq = $2 AND balance_units = $6 THEN CAST($3 AS BIGINT) ELSE NULL END"
        ));
        assert_eq!(st.params[1], Value::from(4));
        assert_eq!(st.params[2], Value::from(9));
        assert_eq!(
            st.params[5],
            Value::from(0),
            "guarded by the balance read too"
        );
    }
}
