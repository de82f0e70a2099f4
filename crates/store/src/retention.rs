//! Retention: the oldest activities of a tenant are deleted in chain order, and the
//! last deleted record becomes the anchor the remaining chain verifies from. Rollups
//! keep their totals (usage history outlives the detail), see ARCHITECTURE.md.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement, seq};

/// Tenants whose policy keeps activities for a limited time, with their anchor.
pub fn tenants(d: Dialect) -> Statement {
    d.stmt(
        "SELECT id, policy, anchor_seq, head_seq FROM tenants ORDER BY id",
        Vec::new(),
    )
}

/// The next records after the anchor (up to `limit`), oldest seq first, with what
/// retention needs to decide.
pub fn oldest(d: Dialect, tenant_id: &str, anchor_seq: u64, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT seq, hash, occurred_at FROM activities WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}"
        ),
        vec![tenant_id.into(), seq(anchor_seq)],
    )
}

pub fn decode_oldest(row: &Row) -> StoreResult<(u64, String, i64)> {
    Ok((row.uint(0)?, row.string(1)?, row.int(2)?))
}

/// The expired prefix: records after the anchor, in order, while they are older than
/// `cutoff` and not past `deliverable_to` (undelivered records stay for the fan-out).
pub fn expired_prefix(
    rows: &[(u64, String, i64)],
    cutoff: i64,
    deliverable_to: u64,
) -> Option<(u64, String)> {
    rows.iter()
        .take_while(|(s, _, at)| *at < cutoff && *s <= deliverable_to)
        .last()
        .map(|(s, h, _)| (*s, h.clone()))
}

/// Deletes the records after `anchor_seq` up to `last`, and moves the anchor there —
/// guarded, like the head: a concurrent pass that moved it first makes this fail.
pub fn delete_through(
    d: Dialect,
    tenant_id: &str,
    anchor_seq: u64,
    last: u64,
    last_hash: &str,
) -> Vec<Statement> {
    vec![
        d.stmt(
            "DELETE FROM activities WHERE tenant_id = ?1 AND seq > ?2 AND seq <= ?3",
            vec![tenant_id.into(), seq(anchor_seq), seq(last)],
        ),
        d.stmt(
            "UPDATE tenants SET anchor_seq = CASE WHEN anchor_seq = ?2 THEN CAST(?3 AS BIGINT) ELSE NULL END,
                 anchor_hash = ?4 WHERE id = ?1",
            vec![tenant_id.into(), seq(anchor_seq), seq(last), last_hash.into()],
        ),
    ]
}

/// The lowest position every configured sink has delivered for a tenant.
pub fn delivered(d: Dialect, tenant_id: &str, sink: &str) -> Statement {
    d.stmt(
        "SELECT delivered_seq FROM sink_cursors WHERE tenant_id = ?1 AND sink = ?2",
        vec![tenant_id.into(), sink.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_old_delivered_prefix_expires() {
        let rows = vec![
            (1, "h1".to_owned(), 10),
            (2, "h2".to_owned(), 20),
            (3, "h3".to_owned(), 5),
            (4, "h4".to_owned(), 50),
        ];
        assert_eq!(expired_prefix(&rows, 30, 10), Some((3, "h3".to_owned())));
        // Seq 3 is old but waits behind the younger seq 2: deletion keeps chain order.
        assert_eq!(expired_prefix(&rows, 15, 10), Some((1, "h1".to_owned())));
        assert_eq!(expired_prefix(&rows, 30, 1), Some((1, "h1".to_owned())));
        assert_eq!(expired_prefix(&rows, 5, 10), None);
    }
}
