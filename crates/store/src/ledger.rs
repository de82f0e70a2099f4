//! Reading the credit ledger (`credit_ledger`: one entry per balance change — the
//! opening balance, each grant, each batch's usage), newest first, a page at a time.

use crm_core::{Credits, Timestamp};
use serde::Serialize;

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};

/// A grant (the opening balance included).
pub const KIND_GRANT: &str = "grant";
/// What a batch of recorded activities cost.
pub const KIND_USAGE: &str = "usage";
/// Every kind, as `GET /v1/credits/ledger?kind=` accepts them: besides grants and
/// usage, what the wallet records (`crm_core::wallet::ChangeKind`): a grant's
/// remainder forfeited at its expiry or when voided, an operator's deduction.
pub const KINDS: &[&str] = &[KIND_GRANT, KIND_USAGE, "expiry", "void", "adjustment"];

const USAGE_PREFIX: &str = "activities seq ";

/// A usage entry's detail: the records it charged for. The audit reads it back with
/// [`usage_range`] to recount the charge against the chain.
pub fn usage_detail(first_seq: u64, last_seq: u64) -> String {
    format!("{USAGE_PREFIX}{first_seq}..={last_seq}")
}

/// The records a usage entry's detail names.
pub fn usage_range(detail: &str) -> Option<(u64, u64)> {
    let (first, last) = detail.strip_prefix(USAGE_PREFIX)?.split_once("..=")?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// One balance change, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The entry's number, from 1 per tenant, in the order the changes were made.
    pub entry: u64,
    pub at: Timestamp,
    /// The change (negative for usage).
    pub delta: Credits,
    /// The balance after it.
    pub balance: Credits,
    /// `grant` (the opening balance included), `usage`, `expiry`, `void` or
    /// `adjustment`.
    pub kind: String,
    /// The grant's reason, or the sequence numbers a usage entry charged for.
    pub detail: String,
}

/// What a page selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Entries made in `[from, to)` (ms).
    pub from: i64,
    pub to: i64,
    pub kind: Option<String>,
    /// Entries numbered below this (the previous page's last), or from the newest.
    pub before: Option<u64>,
    pub limit: usize,
}

/// A page of entries, newest first; one more than `limit` is read to tell whether
/// another page follows.
pub fn page(d: Dialect, tenant_id: &str, q: &LedgerQuery) -> Statement {
    let mut sql = format!(
        "SELECT entry, at, {}, {}, kind, detail FROM credit_ledger
         WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3",
        d.money("delta_units"),
        d.money("balance_units")
    );
    let mut params: Vec<Value> = vec![tenant_id.into(), q.from.into(), q.to.into()];
    if let Some(kind) = &q.kind {
        params.push(kind.as_str().into());
        sql.push_str(&format!(" AND kind = ?{}", params.len()));
    }
    if let Some(before) = q.before {
        params.push(crate::sql::seq(before));
        sql.push_str(&format!(" AND entry < ?{}", params.len()));
    }
    sql.push_str(&format!(" ORDER BY entry DESC LIMIT {}", q.limit + 1));
    d.stmt(&sql, params)
}

pub fn decode(row: &Row) -> StoreResult<LedgerEntry> {
    let credits =
        |units: i64| Credits::from_units(units).map_err(|e| StoreError::decode(e.to_string()));
    Ok(LedgerEntry {
        entry: row.uint(0)?,
        at: Timestamp::from_millis(row.int(1)?).map_err(|e| StoreError::decode(e.to_string()))?,
        delta: credits(row.int(2)?)?,
        balance: credits(row.int(3)?)?,
        kind: row.string(4)?,
        detail: row.string(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_filters_by_window_kind_and_cursor_newest_first() {
        let q = LedgerQuery {
            from: 10,
            to: 20,
            kind: Some("grant".to_owned()),
            before: Some(7),
            limit: 50,
        };
        let st = page(Dialect::Sqlite, "t", &q);
        assert!(
            st.sql.contains("kind = ?4") && st.sql.contains("entry < ?5"),
            "{}",
            st.sql
        );
        assert!(
            st.sql.ends_with("ORDER BY entry DESC LIMIT 51"),
            "{}",
            st.sql
        );
        assert_eq!(st.params.len(), 5);
        let plain = page(
            Dialect::Postgres,
            "t",
            &LedgerQuery {
                kind: None,
                before: None,
                ..q
            },
        );
        assert!(!plain.sql.contains("kind =") && !plain.sql.contains("entry <"));
    }
}
