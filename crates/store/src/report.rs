//! A report's reads: per-dimension rollups for the whole hours of the window (day rows
//! for its whole UTC days), raw rows for the partial hours at its edges
//! (`crm_core::query::plan`). The core merges them; the result equals aggregating
//! every raw row.

use crm_core::query::plan;
use crm_core::report::{ReportInput, Tier};

use crate::activities::{self, Filter};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::rollups;
use crate::sql::{Row, Statement};

/// Which table a part reads, and so how its rows decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Rollups,
    Raw,
}

/// One read of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub kind: PartKind,
    pub statement: Statement,
}

impl Part {
    pub fn decode(&self, row: &Row) -> StoreResult<ReportInput> {
        Ok(match self.kind {
            PartKind::Rollups => ReportInput::Rollup(rollups::decode_report_row(row)?),
            PartKind::Raw => ReportInput::Activity(activities::decode_report_row(row)?),
        })
    }
}

/// The reads of a report over `f` (its subject already resolved). `time_tier` is the
/// time tier that buckets exactly in the report's zone (`ReportTz::time_tier`); without
/// one everything is read raw.
pub fn parts(d: Dialect, tenant_id: &str, f: &Filter, time_tier: Option<Tier>) -> Vec<Part> {
    let time_tier = time_tier.filter(|_| rollups::serve(f));
    let p = plan(f.from, f.to, time_tier);
    let rollup_parts = p.rollups.into_iter().map(|(tier, from, to)| Part {
        kind: PartKind::Rollups,
        statement: rollups::report_rows(d, tenant_id, f, tier, from, to),
    });
    let raw_parts = p.raw.into_iter().map(|(from, to)| Part {
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
    });
    rollup_parts.chain(raw_parts).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn whole_hours_from_rollups_and_edges_raw() {
        let f = Filter {
            from: H / 2,
            to: 3 * H + 5,
            department_path: Some("/d/".to_owned()),
            ..Filter::default()
        };
        let p = parts(Dialect::Sqlite, "t", &f, Some(Tier::TimeHour));
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
        let p = parts(Dialect::Sqlite, "t", &f, None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PartKind::Raw);
        let user = Filter {
            user_id: Some("u".to_owned()),
            ..f
        };
        let p = parts(Dialect::Sqlite, "t", &user, Some(Tier::TimeHour));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PartKind::Raw);
    }
}
