//! A report's reads: hourly rollups for the whole hours of the window, raw rows for
//! the partial hours at its edges. The core merges them; the result equals aggregating
//! every raw row.

use crm_core::query::split_hours;
use crm_core::report::ReportRow;

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
    pub fn decode(&self, row: &Row) -> StoreResult<ReportRow> {
        match self.kind {
            PartKind::Rollups => rollups::decode_report_row(row),
            PartKind::Raw => activities::decode_report_row(row),
        }
    }
}

/// The reads of a report over `f` (its subject already resolved). `hour_aligned` is
/// false for zones whose offset is not whole hours: their buckets do not follow UTC
/// hours, so everything is read raw.
pub fn parts(d: Dialect, tenant_id: &str, f: &Filter, hour_aligned: bool) -> Vec<Part> {
    let split = split_hours(f.from, f.to, hour_aligned);
    let window = |(from, to): (i64, i64)| Filter {
        from,
        to,
        ..f.clone()
    };
    let mut out = Vec::with_capacity(3);
    if let Some(w) = split.whole {
        out.push(Part {
            kind: PartKind::Rollups,
            statement: rollups::report_rows(d, tenant_id, &window(w)),
        });
    }
    for edge in split.raw {
        out.push(Part {
            kind: PartKind::Raw,
            statement: activities::report_rows(d, tenant_id, &window(edge)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = crm_core::query::HOUR_MS;

    #[test]
    fn whole_hours_from_rollups_and_edges_raw() {
        let f = Filter {
            from: H / 2,
            to: 3 * H + 5,
            ..Filter::default()
        };
        let p = parts(Dialect::Sqlite, "t", &f, true);
        let kinds: Vec<PartKind> = p.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![PartKind::Rollups, PartKind::Raw, PartKind::Raw]);
        assert!(p[0].statement.sql.contains("FROM rollups_hourly"));
        assert_eq!(p[0].statement.params[1..3], [H.into(), (3 * H).into()]);
    }

    #[test]
    fn unaligned_zones_read_everything_raw() {
        let f = Filter {
            from: 0,
            to: 10 * H,
            ..Filter::default()
        };
        let p = parts(Dialect::Sqlite, "t", &f, false);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, PartKind::Raw);
    }
}
