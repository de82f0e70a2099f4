//! Reading the log in chain order, a chunk at a time: for exports (with the listing's
//! filters) and for the audit, which also checks that the indexed columns agree with
//! the hashed record (an edit of a column alone is tampering too).

use crm_core::Activity;

use crate::activities::{Filter, clause};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement, seq};

/// Records after `after_seq` that match `f`, in `seq` order.
pub fn chunk(d: Dialect, tenant_id: &str, f: &Filter, after_seq: u64, limit: usize) -> Statement {
    let mut c = clause(tenant_id, f, "occurred_at");
    c.push("seq >", seq(after_seq));
    d.stmt(
        &format!(
            "SELECT seq, body FROM activities WHERE {} ORDER BY seq LIMIT {limit}",
            c.sql
        ),
        c.params,
    )
}

/// Columns the audit compares with the record.
const AUDIT_COLUMNS: &str =
    "seq, body, id, user_id, operation, outcome, occurred_at, prev_hash, hash";

/// Every record after `after_seq`, in `seq` order, with the columns the audit checks.
pub fn audit_chunk(d: Dialect, tenant_id: &str, after_seq: u64, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT {AUDIT_COLUMNS}, {} FROM activities WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}",
            d.money("credits_units")
        ),
        vec![tenant_id.into(), seq(after_seq)],
    )
}

/// A record read for the audit: the record, or why its row is inconsistent.
pub fn decode_audited(row: &Row) -> StoreResult<(u64, Result<Activity, String>)> {
    let seq_col = row.uint(0)?;
    let Ok(a) = serde_json::from_str::<Activity>(row.text(1)?) else {
        return Ok((
            seq_col,
            Err("the stored record is not a valid activity".to_owned()),
        ));
    };
    let columns_agree = a.seq == seq_col
        && a.id == row.text(2)?
        && a.user_id == row.text(3)?
        && a.operation == row.text(4)?
        && a.outcome.as_str() == row.text(5)?
        && a.occurred_at.millis() == row.int(6)?
        && a.prev_hash == row.text(7)?
        && a.hash == row.text(8)?
        && a.credits.units() == row.int(9)?;
    if columns_agree {
        Ok((seq_col, Ok(a)))
    } else {
        Ok((
            seq_col,
            Err("the row's columns do not match its hashed record (altered)".to_owned()),
        ))
    }
}

/// Where a tenant's chain starts (the retention anchor) and ends (the head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub anchor_seq: u64,
    pub anchor_hash: String,
    pub head_seq: u64,
    pub head_hash: String,
}

pub fn bounds(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        "SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM tenants WHERE id = ?1",
        vec![tenant_id.into()],
    )
}

pub fn decode_bounds(row: &Row) -> StoreResult<Bounds> {
    Ok(Bounds {
        anchor_seq: row.uint(0)?,
        anchor_hash: row.string(1)?,
        head_seq: row.uint(2)?,
        head_hash: row.string(3)?,
    })
}

/// The seq and record of an exported row.
pub fn decode_chunk_row(row: &Row) -> StoreResult<(u64, String)> {
    Ok((row.uint(0)?, row.string(1)?))
}
