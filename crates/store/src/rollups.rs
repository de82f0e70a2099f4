//! Per-dimension rollups (`crm_core::report::Tier` and `Dimension` say which): per
//! department, period and value of one dimension, a count, a credit sum and the newest
//! instant. Written in the transaction of the activities they count; a batch is folded
//! first so each rollup row is touched once.

use std::collections::HashMap;

use crm_core::personal::Searchable;
use crm_core::report::{Dimension, RollupRow, Tier};
use crm_core::{Activity, Credits, Timestamp};

use crate::activities::{Clause, Filter};
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};

/// Stands for "absent" in the value column (key columns must be NOT NULL for the
/// upsert's conflict target to match).
const ABSENT: &str = "";

/// The key of one rollup row, borrowed from the activities folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key<'a> {
    pub tier: Tier,
    pub period_start: i64,
    pub department_path: &'a str,
    pub department_id: &'a str,
    pub dimension: Dimension,
    pub value: &'a str,
}

/// What a batch adds to one rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub count: i64,
    pub credits_units: i64,
    pub latest: i64,
}

/// Folds activities into per-key sums, in key order (a stable statement order); the IP
/// address and location of `activities[i]` are `searchable[i]`'s (sealed records hold
/// them encrypted).
pub fn fold<'a>(activities: &'a [Activity], searchable: &'a [Searchable]) -> Vec<(Key<'a>, Sums)> {
    let mut groups: HashMap<Key<'_>, Sums> = HashMap::new();
    for (a, clear) in activities.iter().zip(searchable) {
        let t = a.occurred_at.millis();
        let h = &a.user_context.hierarchy;
        for tier in Tier::ALL {
            for &dimension in tier.dimensions() {
                let key = Key {
                    tier,
                    period_start: tier.start(t),
                    department_path: &h.department_path,
                    department_id: &h.department_id,
                    dimension,
                    value: match dimension {
                        Dimension::IpAddress => clear.ip_address.as_deref(),
                        Dimension::Location => clear.location.as_deref(),
                        _ => dimension.value_of(a),
                    }
                    .unwrap_or(ABSENT),
                };
                let s = groups.entry(key).or_default();
                s.count += 1;
                s.credits_units += a.credits.units();
                s.latest = s.latest.max(t);
            }
        }
    }
    let mut out: Vec<(Key<'_>, Sums)> = groups.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Values per rollup row in an upsert.
const ROLLUP_WIDTH: usize = 10;
/// Rollup rows per multi-row upsert at most.
const MAX_ROWS_PER_UPSERT: usize = 500;

/// The key columns of a rollup row, its conflict target.
pub(crate) const KEY_COLUMNS: &str =
    "tenant_id, tier, period_start, department_path, department_id, dimension, value";

/// What an upsert does to a row that exists: add the batch's sums.
pub(crate) fn merge_sums(d: Dialect) -> String {
    format!(
        "ON CONFLICT ({KEY_COLUMNS})
         DO UPDATE SET count = report_rollups.count + excluded.count,
                       credits_units = report_rollups.credits_units + excluded.credits_units,
                       latest = {}(report_rollups.latest, excluded.latest)",
        d.greatest()
    )
}

/// The upserts adding a folded batch to the stored rollups (the folded keys are
/// distinct, so no statement touches a row twice).
pub fn upserts(d: Dialect, tenant_id: &str, folded: &[(Key<'_>, Sums)]) -> Vec<Statement> {
    match d {
        _ if folded.is_empty() => Vec::new(),
        Dialect::Postgres => upsert_unnest(tenant_id, folded),
        Dialect::Sqlite | Dialect::D1 => upsert_values(d, tenant_id, folded),
    }
}

/// The values of one rollup row, in [`KEY_COLUMNS`] order then the sums.
fn row_values(tenant_id: &str, (k, s): &(Key<'_>, Sums)) -> Vec<Value> {
    vec![
        tenant_id.into(),
        k.tier.as_str().into(),
        k.period_start.into(),
        k.department_path.into(),
        k.department_id.into(),
        k.dimension.as_str().into(),
        k.value.into(),
        s.count.into(),
        s.credits_units.into(),
        s.latest.into(),
    ]
}

/// Multi-row `VALUES` upserts, for SQLite and D1 (which have no arrays).
fn upsert_values(d: Dialect, tenant_id: &str, folded: &[(Key<'_>, Sums)]) -> Vec<Statement> {
    let per = (d.max_params() / ROLLUP_WIDTH).clamp(1, MAX_ROWS_PER_UPSERT);
    d.row_chunks(folded, per)
        .into_iter()
        .map(|chunk| {
            let sql = format!(
                "INSERT INTO report_rollups ({KEY_COLUMNS}, count, credits_units, latest)
                 VALUES {} {}",
                crate::activities::tuples(chunk.len(), ROLLUP_WIDTH),
                merge_sums(d)
            );
            let params = chunk
                .iter()
                .flat_map(|row| row_values(tenant_id, row))
                .collect();
            d.stmt(&sql, params)
        })
        .collect()
}

/// PostgreSQL's upsert of a whole folded batch (~1,300 rows for 500 activities) in one
/// statement over `unnest` (BENCHMARKS.md, the writer by part).
fn upsert_unnest(tenant_id: &str, folded: &[(Key<'_>, Sums)]) -> Vec<Statement> {
    let rows: Vec<Vec<Value>> = folded
        .iter()
        .map(|row| row_values(tenant_id, row))
        .collect();
    let Some((unnest, params)) = crate::sql::unnest(&rows) else {
        return Vec::new();
    };
    let d = Dialect::Postgres;
    let sql = format!(
        "INSERT INTO report_rollups ({KEY_COLUMNS}, count, credits_units, latest)
         SELECT * FROM {unnest} {}",
        merge_sums(d)
    );
    vec![d.stmt(&sql, params)]
}

/// Whether rollups can answer a report over `f`: they are kept per department, so a
/// filter on anything but the department subtree reads raw rows.
pub fn serve(f: &Filter) -> bool {
    f.user_id.is_none() && f.operation.is_none() && f.outcome.is_none()
}

/// The rollup rows of `tier` for periods starting in `[from, to)`, within `f`'s
/// department subtree.
pub fn report_rows(
    d: Dialect,
    tenant_id: &str,
    f: &Filter,
    tier: Tier,
    from: i64,
    to: i64,
) -> Statement {
    let mut c = Clause {
        sql: "tenant_id = ?1 AND tier = ?2 AND period_start >= ?3 AND period_start < ?4".to_owned(),
        params: vec![
            tenant_id.into(),
            tier.as_str().into(),
            from.into(),
            to.into(),
        ],
    };
    if let Some(p) = &f.department_path {
        c.subtree(p);
    }
    let sql = format!(
        "SELECT {} FROM report_rollups WHERE {}",
        report_columns(d),
        c.sql
    );
    d.stmt(&sql, c.params)
}

/// The columns [`decode_report_row`] reads, in its order.
pub fn report_columns(d: Dialect) -> String {
    format!(
        "period_start, department_id, dimension, value, count, {}, latest",
        d.money("credits_units")
    )
}

/// The typed nulls standing for [`report_columns`] in a union with other rows.
pub fn report_nulls(d: Dialect) -> String {
    let (int, text) = ("CAST(NULL AS BIGINT)", "CAST(NULL AS TEXT)");
    [int, text, text, text, int, &d.money(int), int].join(", ")
}

pub fn decode_report_row(row: &Row) -> StoreResult<RollupRow> {
    let code = row.text(2)?;
    let dimension = Dimension::parse(code)
        .ok_or_else(|| StoreError::decode(format!("stored rollup dimension `{code}`")))?;
    Ok(RollupRow {
        period_start: Timestamp::from_millis(row.int(0)?)?,
        department_id: row.string(1)?,
        dimension,
        value: Some(row.string(3)?).filter(|v| v != ABSENT),
        count: row.uint(4)?,
        credits: Credits::from_units(row.int(5)?)?,
        latest: Timestamp::from_millis(row.int(6)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_upserts_a_batch_in_one_statement_of_fixed_text() {
        let now = Timestamp::from_millis(1_700_000_000_000).expect("in range");
        let records = crate::testing::chain(90, now);
        let clear: Vec<_> = records
            .iter()
            .map(crate::activities::searchable_of)
            .collect();
        let folded = fold(&records, &clear);
        let one = upserts(Dialect::Postgres, "t", &folded);
        let fewer = upserts(Dialect::Postgres, "t", &folded[..3]);
        assert_eq!((one.len(), fewer.len()), (1, 1));
        assert_eq!(one[0].sql, fewer[0].sql);
        assert_eq!(one[0].params.len(), ROLLUP_WIDTH);
        assert!(upserts(Dialect::Postgres, "t", &[]).is_empty());
        // SQLite keeps bound rows: one placeholder per value.
        let sqlite = upserts(Dialect::Sqlite, "t", &folded);
        let params: usize = sqlite.iter().map(|st| st.params.len()).sum();
        assert_eq!(params, folded.len() * ROLLUP_WIDTH);
    }

    #[test]
    fn every_tier_and_dimension_counts_each_activity_once_and_compresses_repeats() {
        let now = Timestamp::from_millis(1_700_000_000_000).expect("in range");
        let records = crate::testing::chain(90, now);
        let credits: i64 = records.iter().map(|a| a.credits.units()).sum();
        let clear: Vec<_> = records
            .iter()
            .map(crate::activities::searchable_of)
            .collect();
        let folded = fold(&records, &clear);
        for tier in Tier::ALL {
            for &dim in tier.dimensions() {
                let rows: Vec<&Sums> = folded
                    .iter()
                    .filter(|(k, _)| k.tier == tier && k.dimension == dim)
                    .map(|(_, s)| s)
                    .collect();
                assert_eq!(
                    rows.iter().map(|s| s.count).sum::<i64>(),
                    90,
                    "{tier:?} {dim:?}"
                );
                assert_eq!(rows.iter().map(|s| s.credits_units).sum::<i64>(), credits);
                assert!(rows.iter().all(|s| s.latest == now.millis()));
            }
        }
        // Three users (in three departments), one instant: a row per user per
        // breakdown tier, not one per activity.
        let users = folded
            .iter()
            .filter(|(k, _)| k.dimension == Dimension::User)
            .count();
        assert_eq!(users, 2 * 3);
    }
}
