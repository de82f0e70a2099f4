//! How full a database is, against D1's cap of 10 GB per database: a write past it
//! fails, so the edge stops taking new activities well before — what it acknowledged is
//! already queued and must still fit. The size is what D1 reports after a write
//! (`meta.size_after`), recorded in the database itself (one row) so every isolate
//! sees it; ingest reads it (cached briefly) and answers 507 at [`INGEST_STOP_BYTES`].
//! crm-host does not use this: its database reports "full" itself (507).

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement};

/// D1's published limit per database (paid plan): 10 GB.
pub const D1_MAX_BYTES: u64 = 10_000_000_000;
/// Where new ingest stops: 90 % of the cap leaves room for what is already queued (a
/// backlog of hours at full rate), rollups, the ledger and the bookkeeping of archiving
/// and retention — the way back under it.
pub const INGEST_STOP_BYTES: u64 = D1_MAX_BYTES / 10 * 9;
/// How often a writer records the size it measured: every write measures, a minute is
/// fresh enough against a margin of a gigabyte.
pub const RECORD_EVERY_MS: i64 = 60_000;

pub fn record(d: Dialect, size_bytes: u64, now: i64) -> Statement {
    d.stmt(
        "INSERT INTO database_size (id, size_bytes, measured_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET size_bytes = excluded.size_bytes,
             measured_at = excluded.measured_at",
        vec![crate::sql::seq(size_bytes), now.into()],
    )
}

pub fn read(d: Dialect) -> Statement {
    d.stmt(
        "SELECT size_bytes FROM database_size WHERE id = 1",
        Vec::new(),
    )
}

/// The recorded size, if a write has measured one.
pub fn decode(row: Option<&Row>) -> StoreResult<Option<u64>> {
    row.map(|r| r.uint(0)).transpose()
}

/// Whether new activities may be taken at `size` (unknown: yes — nothing was written
/// yet), against `stop_at` (normally [`INGEST_STOP_BYTES`]).
pub fn admits(size: Option<u64>, stop_at: u64) -> bool {
    size.is_none_or(|s| s < stop_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_stops_at_ninety_percent_and_an_unmeasured_database_admits() {
        assert_eq!(INGEST_STOP_BYTES, 9_000_000_000);
        assert!(admits(None, INGEST_STOP_BYTES));
        assert!(admits(Some(INGEST_STOP_BYTES - 1), INGEST_STOP_BYTES));
        assert!(!admits(Some(INGEST_STOP_BYTES), INGEST_STOP_BYTES));
    }
}
