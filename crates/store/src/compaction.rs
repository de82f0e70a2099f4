//! Rollup compaction (issue 26.8): the values of a free-text dimension a client
//! chooses — operations, entity types, locations, authentication methods — are kept
//! per closed period up to [`MAX_VALUES_PER_PERIOD`]; the rest are folded into
//! `(other)`, so a report over a long window reads a bounded number of rollup rows
//! however many distinct values a tenant sends. Totals stay exact (a fold moves counts
//! and credits, it never drops them); a breakdown past the cap names the largest
//! values and sums the rest, as report answers do anyway (`crm_core::limits::OTHER`).
//! IP addresses are not folded: they come from the connection, not the client, and
//! the compliance summary counts them distinct.
//!
//! Writes stay as they are (one upsert per folded key); a pass compacts each UTC day
//! once after it closes (`rollup_compactions` remembers which), on every runtime.

use crm_core::duration::DAY_MS;
use crm_core::limits::OTHER;

use crate::dialect::Dialect;
use crate::rollups;
use crate::sql::{Row, Statement};

/// Values one (tier, period, department, dimension) keeps once its day is compacted:
/// ten times what a report lists, so the largest values of a window stay named.
pub const MAX_VALUES_PER_PERIOD: usize = 1_000;

/// Days back a pass looks for days not yet compacted (a pass that did not run for a
/// while catches up this far).
pub const CATCH_UP_DAYS: i64 = 7;

/// The dimensions folded (stored codes, `crm_core::report::Dimension::as_str`).
const FOLDED: &str = "'operation', 'entity', 'location', 'auth'";

/// The closed days (starts, ms) of the last [`CATCH_UP_DAYS`] before `now`'s day.
pub fn closed_days(now: i64) -> Vec<i64> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    (1..=CATCH_UP_DAYS).map(|n| today - n * DAY_MS).collect()
}

/// The days of `closed_days(now)` already compacted for a tenant.
pub fn done(d: Dialect, tenant_id: &str, now: i64) -> Statement {
    let from = closed_days(now).last().copied().unwrap_or(now);
    d.stmt(
        "SELECT day FROM rollup_compactions WHERE tenant_id = ?1 AND day >= ?2",
        vec![tenant_id.into(), from.into()],
    )
}

pub fn decode_done(row: &Row) -> crate::error::StoreResult<i64> {
    row.int(0)
}

/// Compacts the tenant's rollups of the day starting at `day` (its hour and day
/// periods), and remembers it: one transaction.
pub fn compact_day(d: Dialect, tenant_id: &str, day: i64) -> Vec<Statement> {
    let ranked = format!(
        "SELECT tier, period_start, department_path, department_id, dimension, value,
                count, credits_units, latest,
                ROW_NUMBER() OVER (
                    PARTITION BY tier, period_start, department_path, department_id, dimension
                    ORDER BY count DESC, value) AS rank
         FROM report_rollups
         WHERE tenant_id = ?1 AND period_start >= ?2 AND period_start < ?3
           AND dimension IN ({FOLDED}) AND value <> '{OTHER}'"
    );
    let fold = format!(
        "INSERT INTO report_rollups ({}, count, credits_units, latest)
         SELECT ?1, tier, period_start, department_path, department_id, dimension, '{OTHER}',
                SUM(count), SUM(credits_units), MAX(latest)
         FROM ({ranked}) ranked WHERE rank > {MAX_VALUES_PER_PERIOD}
         GROUP BY tier, period_start, department_path, department_id, dimension
         {}",
        rollups::KEY_COLUMNS,
        rollups::merge_sums(d)
    );
    let drop = format!(
        "DELETE FROM report_rollups
         WHERE tenant_id = ?1
           AND (tier, period_start, department_path, department_id, dimension, value) IN (
               SELECT tier, period_start, department_path, department_id, dimension, value
               FROM ({ranked}) ranked WHERE rank > {MAX_VALUES_PER_PERIOD})"
    );
    let params = || vec![tenant_id.into(), day.into(), (day + DAY_MS).into()];
    vec![
        d.stmt(&fold, params()),
        d.stmt(&drop, params()),
        d.stmt(
            "INSERT INTO rollup_compactions (tenant_id, day) VALUES (?1, ?2)
             ON CONFLICT (tenant_id, day) DO NOTHING",
            vec![tenant_id.into(), day.into()],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_week_of_closed_days_is_looked_at() {
        let now = 10 * DAY_MS + 5;
        assert_eq!(closed_days(now).first(), Some(&(9 * DAY_MS)));
        assert_eq!(closed_days(now).len(), CATCH_UP_DAYS as usize);
        let st = compact_day(Dialect::Postgres, "t", 9 * DAY_MS);
        assert_eq!(st.len(), 3);
        assert!(
            st[0].sql.contains("GREATEST") && st[0].sql.contains("$3"),
            "{}",
            st[0].sql
        );
    }
}
