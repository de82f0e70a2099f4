//! Retention: the oldest activities of a tenant are deleted in chain order, and the
//! last deleted record becomes the anchor the remaining chain verifies from. Rollups
//! keep their totals (usage history outlives the detail), see ARCHITECTURE.md.

use crate::archive::Segment;
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

/// The last of the archived segments (in order, after the anchor) that expire whole:
/// every record older than `cutoff` and delivered. A segment expiring only in part
/// stays until all of it has (at most one day of arrival longer than the records'
/// retention), and the database's rows wait behind it, so the chain's prefix order holds.
pub fn expired_segments(
    segments: &[Segment],
    cutoff: i64,
    deliverable_to: u64,
) -> Option<&Segment> {
    segments
        .iter()
        .take_while(|s| s.max_occurred_at < cutoff && s.last_seq <= deliverable_to)
        .last()
}

/// Drops the archived segments through `last` and moves the anchor to it. Their
/// objects are deleted afterwards (keys at or below the anchor, by
/// [`crate::archive::key_last_seq`]), so a failed object delete is retried by the next
/// pass rather than leaving a segment without its object.
pub fn drop_segments_through(
    d: Dialect,
    tenant_id: &str,
    anchor_seq: u64,
    last: &Segment,
) -> Vec<Statement> {
    let mut out = vec![d.stmt(
        "DELETE FROM archives WHERE tenant_id = ?1 AND last_seq <= ?2",
        vec![tenant_id.into(), seq(last.last_seq)],
    )];
    out.extend(delete_through(
        d,
        tenant_id,
        anchor_seq,
        last.last_seq,
        &last.last_hash,
    ));
    out
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

    #[test]
    fn archived_segments_expire_whole_and_in_order() {
        let segment = |first: u64, last: u64, max_occurred_at: i64| Segment {
            first_seq: first,
            last_seq: last,
            day: "2026-01-01".into(),
            records: last - first + 1,
            max_occurred_at,
            prev_hash: format!("p{first}"),
            last_hash: format!("h{last}"),
            object_key: crate::archive::object_key("t", first, last),
        };
        let segments = [
            segment(1, 10, 100),
            segment(11, 20, 300),
            segment(21, 30, 150),
        ];
        let last =
            |cutoff, delivered| expired_segments(&segments, cutoff, delivered).map(|s| s.last_seq);
        assert_eq!(last(400, 30), Some(30));
        // The third is old enough but waits behind the second.
        assert_eq!(last(200, 30), Some(10));
        assert_eq!(last(400, 15), Some(10), "undelivered records stay");
        assert_eq!(last(100, 30), None, "a segment expires only whole");
        let statements = drop_segments_through(Dialect::Sqlite, "t", 0, &segments[1]);
        assert!(statements[0].sql.starts_with("DELETE FROM archives"));
        assert_eq!(statements.len(), 3);
    }
}
