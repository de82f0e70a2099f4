//! A report's reads: per-dimension rollups for the whole hours of the window (day rows
//! for its whole UTC days), and for the partial hours at its edges raw rows or the
//! hour's rollups less the rest of the hour (`crm_core::query::plan`). The core merges
//! them; the result equals aggregating every raw row.

use crm_core::Timestamp;
use crm_core::query::{TrimmedHour, plan};
use crm_core::report::{ReportInput, Tier};

use crate::activities::{self, Clause, Filter};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::rollups;
use crate::sql::{Row, Statement};

/// Which rows a part reads, and so how they decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Rollups,
    Raw,
    /// The hour's rollups (its hour rows and `time_tier` rows) and the raw rows of the
    /// rest of the hour, in one statement so that both come from one snapshot
    /// (`crm_core::report::TrimFold` subtracts them).
    Trimmed {
        piece: TrimmedHour,
        time_tier: Tier,
    },
}

/// One read of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub kind: PartKind,
    pub statement: Statement,
}

/// Marks a trimmed read's rollup rows (the others are raw rows of the rest).
const ROLLUP_ROW: &str = "r";
/// Rollup columns in a trimmed read, after the marker.
const ROLLUP_WIDTH: usize = 7;

impl Part {
    pub fn decode(&self, row: &Row) -> StoreResult<ReportInput> {
        Ok(match self.kind {
            PartKind::Rollups => ReportInput::Rollup(rollups::decode_report_row(row)?),
            PartKind::Raw => ReportInput::Activity(activities::decode_report_row(row)?),
            PartKind::Trimmed { .. } => {
                let cut =
                    |from: usize, to: usize| Row(row.0.get(from..to).unwrap_or_default().to_vec());
                if row.text(0)? == ROLLUP_ROW {
                    ReportInput::Rollup(rollups::decode_report_row(&cut(1, 1 + ROLLUP_WIDTH))?)
                } else {
                    ReportInput::Activity(activities::decode_report_row(&cut(
                        1 + ROLLUP_WIDTH,
                        row.0.len(),
                    ))?)
                }
            }
        })
    }
}

/// The reads of a report over `f` (its subject already resolved), at `now`.
/// `time_tier` is the time tier that buckets exactly in the report's zone
/// (`ReportTz::time_tier`); without one everything is read raw.
pub fn parts(
    d: Dialect,
    tenant_id: &str,
    f: &Filter,
    time_tier: Option<Tier>,
    now: Timestamp,
) -> Vec<Part> {
    let time_tier = time_tier.filter(|_| rollups::serve(f));
    let p = plan(f.from, f.to, time_tier, now.millis());
    let rollup_parts = p.rollups.into_iter().map(|(tier, from, to)| Part {
        kind: PartKind::Rollups,
        statement: rollups::report_rows(d, tenant_id, f, tier, from, to),
    });
    let trimmed_parts = time_tier.into_iter().flat_map(|tt| {
        p.trimmed
            .iter()
            .map(move |&piece| trimmed(d, tenant_id, f, piece, tt))
    });
    let raw_parts = p
        .raw
        .into_iter()
        .map(|(from, to)| raw(d, tenant_id, f, from, to));
    rollup_parts.chain(trimmed_parts).chain(raw_parts).collect()
}

/// The raw rows of `f` in `[from, to)` (a trimmed piece that did not add up reads
/// this instead).
pub fn raw(d: Dialect, tenant_id: &str, f: &Filter, from: i64, to: i64) -> Part {
    Part {
        kind: PartKind::Raw,
        statement: activities::report_rows(
            d,
            tenant_id,
            &Filter {
                from,
                to,
                ..f.clone()
            },
        ),
    }
}

fn trimmed(d: Dialect, tenant_id: &str, f: &Filter, piece: TrimmedHour, time_tier: Tier) -> Part {
    let mut c = Clause {
        sql: "tenant_id = ?1".to_owned(),
        params: vec![tenant_id.into()],
    };
    if let Some(p) = &f.department_path {
        c.subtree(p);
    }
    let n = c.params.len();
    c.params.extend([
        Tier::Hour.as_str().into(),
        time_tier.as_str().into(),
        piece.hour.into(),
        (piece.hour + Tier::Hour.period_ms()).into(),
    ]);
    let rollup = |tier_and_period: String| {
        format!(
            "SELECT '{ROLLUP_ROW}', {}, {} FROM report_rollups WHERE {} AND {tier_and_period}",
            rollups::report_columns(d),
            activities::report_nulls(d),
            c.sql
        )
    };
    let mut branches = vec![
        rollup(format!("tier = ?{} AND period_start = ?{}", n + 1, n + 3)),
        rollup(format!(
            "tier = ?{} AND period_start >= ?{} AND period_start < ?{}",
            n + 2,
            n + 3,
            n + 4
        )),
    ];
    let mut params = c.params.clone();
    for (from, to) in piece.rest() {
        params.extend([from.into(), to.into()]);
        let rest = Filter {
            from,
            to,
            ..f.clone()
        };
        branches.push(format!(
            "SELECT 'a', {}, {} FROM {} WHERE {} AND occurred_at >= ?{} AND occurred_at < ?{}",
            rollups::report_nulls(d),
            activities::report_columns(d),
            activities::report_source(d, &rest),
            c.sql,
            params.len() - 1,
            params.len()
        ));
    }
    Part {
        kind: PartKind::Trimmed { piece, time_tier },
        statement: d.stmt(&branches.join(" UNION ALL "), params),
    }
}

/// `(department, operation)` pairs whose newest instant one read looks up at most:
/// three parameters each with the window's three stays under D1's 100 bound
/// parameters.
pub const NEWEST_PER_READ: usize = 32;

/// The newest instant in `[piece.from, piece.to)` of each `(department, operation)`
/// of `pairs` (at most [`NEWEST_PER_READ`]): one index seek per pair, down the
/// operation's time index from the piece's end.
pub fn newest(
    d: Dialect,
    tenant_id: &str,
    piece: TrimmedHour,
    pairs: &[(String, String)],
) -> Statement {
    let mut params = vec![tenant_id.into(), piece.from.into(), piece.to.into()];
    let index = match d {
        Dialect::Postgres => "",
        Dialect::Sqlite | Dialect::D1 => " INDEXED BY activities_by_operation",
    };
    let branches: Vec<String> = pairs
        .iter()
        .take(NEWEST_PER_READ)
        .enumerate()
        .map(|(i, (department, operation))| {
            params.extend([operation.as_str().into(), department.as_str().into()]);
            format!(
                "SELECT department_id, operation, occurred_at FROM (
                   SELECT department_id, operation, occurred_at FROM activities{index}
                   WHERE tenant_id = ?1 AND operation = ?{} AND occurred_at >= ?2
                     AND occurred_at < ?3 AND department_id = ?{}
                   ORDER BY occurred_at DESC LIMIT 1) AS newest{i}",
                params.len() - 1,
                params.len()
            )
        })
        .collect();
    d.stmt(&branches.join(" UNION ALL "), params)
}

/// One row of [`newest`]: `(department, operation, instant)`.
pub fn decode_newest(row: &Row) -> StoreResult<(String, String, Timestamp)> {
    Ok((
        row.string(0)?,
        row.string(1)?,
        Timestamp::from_millis(row.int(2)?)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    /// Read long after the windows below.
    const LATER: Timestamp = Timestamp(1_000 * H);

    #[test]
    fn whole_hours_from_rollups_and_edges_raw() {
        let f = Filter {
            from: H / 2,
            to: 3 * H + 5,
            department_path: Some("/d/".to_owned()),
            ..Filter::default()
        };
        let p = parts(Dialect::Sqlite, "t", &f, Some(Tier::TimeHour), LATER);
        let kinds: Vec<PartKind> = p.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                PartKind::Rollups,
                PartKind::Rollups,
                PartKind::Raw,
                PartKind::Raw
            ]
        );
        assert!(p[0].statement.sql.contains("FROM report_rollups"));
        assert_eq!(
            p[0].statement.params[1..4],
            ["th".into(), H.into(), (3 * H).into()]
        );
        assert_eq!(p[1].statement.params[1], "h".into());
        assert!(p[1].statement.sql.contains("department_path >= ?5"));
    }

    #[test]
    fn unaligned_zones_and_user_reports_read_everything_raw() {
        let f = Filter {
            from: 0,
            to: 10 * H,
            ..Filter::default()
        };
        let p = parts(Dialect::Sqlite, "t", &f, None, LATER);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PartKind::Raw);
        let user = Filter {
            user_id: Some("u".to_owned()),
            ..f
        };
        let p = parts(Dialect::Sqlite, "t", &user, Some(Tier::TimeHour), LATER);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PartKind::Raw);
    }
}
