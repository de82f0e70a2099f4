//! The fan-out's view of the activity log. There is no separate outbox table: the
//! activities of a tenant, ordered by `seq`, *are* the committed outbox, and each sink
//! keeps how far it has delivered each tenant (`sink_cursors`). So the pending work of a
//! sink is the range (cursor, head] — bounded by construction, written in the same
//! transaction as the activities (they are the activities), and read in order.

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement, seq};

/// A tenant with activities a sink has not delivered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub tenant_id: String,
    pub head_seq: u64,
    pub delivered_seq: u64,
}

impl Pending {
    pub fn backlog(&self) -> u64 {
        self.head_seq.saturating_sub(self.delivered_seq)
    }
}

/// Every tenant whose head is past what `sink` has delivered.
pub fn pending(d: Dialect, sink: &str) -> Statement {
    d.stmt(
        "SELECT t.id, t.head_seq, COALESCE(c.delivered_seq, 0) FROM tenants t
         LEFT JOIN sink_cursors c ON c.tenant_id = t.id AND c.sink = ?1
         WHERE t.head_seq > COALESCE(c.delivered_seq, 0)
         ORDER BY t.id",
        vec![sink.into()],
    )
}

pub fn decode_pending(row: &Row) -> StoreResult<Pending> {
    Ok(Pending {
        tenant_id: row.string(0)?,
        head_seq: row.uint(1)?,
        delivered_seq: row.uint(2)?,
    })
}

/// One activity to deliver: its record as stored (and hashed), personal fields opened
/// with the subject's key or erased — a sink never receives what an erasure destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: u64,
    pub id: String,
    pub received_at: i64,
    pub body: String,
}

/// The next activities of `tenant` after `after_seq`, in order.
pub fn after(d: Dialect, tenant_id: &str, after_seq: u64, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT seq, id, received_at, body, {} FROM activities
             WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}",
            crate::subject_keys::KEY_MATERIAL
        ),
        vec![tenant_id.into(), seq(after_seq)],
    )
}

pub fn decode_outgoing(row: &Row) -> StoreResult<Outgoing> {
    Ok(Outgoing {
        seq: row.uint(0)?,
        id: row.string(1)?,
        received_at: row.int(2)?,
        body: crate::subject_keys::open_body(row.string(3)?, row.opt_text(4)?)?,
    })
}

/// How far `sink` has delivered `tenant` (no row: nothing yet): `SELECT delivered_seq`.
pub fn cursor(d: Dialect, tenant_id: &str, sink: &str) -> Statement {
    d.stmt(
        "SELECT delivered_seq FROM sink_cursors WHERE tenant_id = ?1 AND sink = ?2",
        vec![tenant_id.into(), sink.into()],
    )
}

/// Moves the sink's cursor forward to `delivered_seq` (never back: a slower,
/// concurrent relay of another host cannot undo a newer position).
pub fn advance(d: Dialect, tenant_id: &str, sink: &str, delivered_seq: u64, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO sink_cursors (tenant_id, sink, delivered_seq, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant_id, sink) DO UPDATE SET delivered_seq = excluded.delivered_seq,
             updated_at = excluded.updated_at
         WHERE sink_cursors.delivered_seq < excluded.delivered_seq",
        vec![tenant_id.into(), sink.into(), seq(delivered_seq), now.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_is_the_distance_from_cursor_to_head() {
        let p = Pending {
            tenant_id: "t".into(),
            head_seq: 10,
            delivered_seq: 4,
        };
        assert_eq!(p.backlog(), 6);
    }

    #[test]
    fn the_cursor_only_moves_forward() {
        let st = advance(Dialect::Postgres, "t", "redis", 9, 1);
        assert!(
            st.sql
                .contains("WHERE sink_cursors.delivered_seq < excluded.delivered_seq")
        );
        assert!(st.sql.contains("$3"));
    }
}
