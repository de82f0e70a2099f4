//! The rollups' part of the audit (issue 26.6): rollups are not in the hash chain, and
//! reports answer from them, so the audit recounts them against the stored records.
//! Per (tier, period) the counts and credits of the rollup rows that partition every
//! activity — outcomes in the hour and day tiers, the periods themselves in the time
//! tiers — are compared with a recount of the activity rows of that period.
//!
//! Retention deletes records and archiving moves them to R2 while rollups keep their
//! totals, so a period's rollups may exceed what is left; they may never fall short of
//! it. When nothing was removed, moved or appended during the check, every period must
//! match exactly. Whatever was removed, the rollups of each tier must count every
//! record ever chained: between the head when the audit began and the head when the
//! check ends (records appended meanwhile are counted by rollups read after them).
//!
//! Run once the chain is walked (in the call that completes a verification), as a merge
//! of two ordered streams per tier, paged by period.

use crm_core::report::{Dimension, Tier};

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement};

/// Periods per read: three integers a row, far inside D1's answer limits.
pub const PERIODS_PER_READ: usize = 5_000;

/// The rollups checked: each partitions every activity of its period exactly once.
/// The quarter-hour tier's totals are not held to every record ever chained: migration
/// 0006 made it from the records at hand, after retention may have removed some.
const CHECKED: [(Tier, Dimension); 4] = [
    (Tier::Day, Dimension::Outcome),
    (Tier::Hour, Dimension::Outcome),
    (Tier::TimeHour, Dimension::Time),
    (Tier::TimeQuarter, Dimension::Time),
];

/// Where the rollups disagree with the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupBreak {
    pub tier: Tier,
    /// The period's start (ms); `None` for a tier's total.
    pub period_start: Option<i64>,
    pub reason: String,
}

/// (period start, count, credits units).
type Sums = (i64, i64, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Rollups,
    Records,
    Head,
    Done,
}

#[derive(Debug)]
pub struct RollupCheck {
    tenant_id: String,
    head_seq: u64,
    /// Records removed by retention before the check (so periods may exceed).
    anchored: bool,
    pass: usize,
    step: Step,
    /// The last period of the tier compared.
    after: Option<i64>,
    rollups: Vec<Sums>,
    /// The rollups of this tier are all read.
    rollups_done: bool,
    /// Per pass: rollup count, record count, first period whose rollups exceed.
    rollup_total: i64,
    record_total: i64,
    excess: Option<i64>,
    totals: Vec<(Tier, i64, i64, Option<i64>)>,
    periods: u64,
    head_at_end: Option<u64>,
    broken: Option<RollupBreak>,
}

impl RollupCheck {
    pub fn new(tenant_id: &str, head_seq: u64, anchor_seq: u64) -> RollupCheck {
        RollupCheck {
            tenant_id: tenant_id.to_owned(),
            head_seq,
            anchored: anchor_seq > 0,
            pass: 0,
            step: Step::Rollups,
            after: None,
            rollups: Vec::new(),
            rollups_done: false,
            rollup_total: 0,
            record_total: 0,
            excess: None,
            totals: Vec::new(),
            periods: 0,
            head_at_end: None,
            broken: None,
        }
    }

    /// Periods compared so far, over every tier checked.
    pub fn periods(&self) -> u64 {
        self.periods
    }

    pub fn broken(&self) -> Option<&RollupBreak> {
        self.broken.as_ref()
    }

    /// The tier being checked (the last one once every pass is done).
    fn tier(&self) -> (Tier, Dimension) {
        CHECKED[self.pass.min(CHECKED.len() - 1)]
    }

    /// The next read, or `None` when the check has its answer.
    pub fn next(&self, d: Dialect) -> Option<Statement> {
        if self.broken.is_some() {
            return None;
        }
        let (tier, dimension) = self.tier();
        let credits = |sum: &str| match d {
            // D1 answers big integers as text (JavaScript numbers would round them).
            Dialect::D1 => format!("CAST({sum} AS TEXT)"),
            Dialect::Sqlite | Dialect::Postgres => format!("CAST({sum} AS BIGINT)"),
        };
        match self.step {
            Step::Rollups => Some(d.stmt(
                &format!(
                    "SELECT period_start, CAST(SUM(count) AS BIGINT), {}
                     FROM report_rollups
                     WHERE tenant_id = ?1 AND tier = ?2 AND dimension = ?3 AND period_start > ?4
                     GROUP BY period_start ORDER BY period_start LIMIT {PERIODS_PER_READ}",
                    credits("SUM(credits_units)")
                ),
                vec![
                    self.tenant_id.as_str().into(),
                    tier.as_str().into(),
                    dimension.as_str().into(),
                    self.after.unwrap_or(i64::MIN).into(),
                ],
            )),
            Step::Records => {
                let period = tier.period_ms();
                let from = self.after.map_or(i64::MIN, |p| p.saturating_add(period));
                let to = match (self.rollups_done, self.rollups.last()) {
                    (false, Some(&(p, _, _))) => p.saturating_add(period),
                    _ => i64::MAX,
                };
                // The floor of occurred_at to its period, for instants before 1970 too.
                Some(d.stmt(
                    &format!(
                        "SELECT p, CAST(COUNT(*) AS BIGINT), {}
                         FROM (SELECT occurred_at - (((occurred_at % {period}) + {period}) % {period}) AS p,
                                      credits_units
                               FROM activities
                               WHERE tenant_id = ?1 AND seq <= ?2
                                 AND occurred_at >= ?3 AND occurred_at < ?4) periods
                         GROUP BY p ORDER BY p LIMIT {}",
                        credits("SUM(credits_units)"),
                        PERIODS_PER_READ + 1
                    ),
                    vec![
                        self.tenant_id.as_str().into(),
                        (self.head_seq as i64).into(),
                        from.into(),
                        to.into(),
                    ],
                ))
            }
            Step::Head => Some(d.stmt(
                "SELECT head_seq FROM tenants WHERE id = ?1",
                vec![self.tenant_id.as_str().into()],
            )),
            Step::Done => None,
        }
    }

    /// The rows of the read [`RollupCheck::next`] asked for.
    pub fn feed(&mut self, rows: &[Row]) -> StoreResult<()> {
        let sums = || -> StoreResult<Vec<Sums>> {
            rows.iter()
                .map(|r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)))
                .collect()
        };
        match self.step {
            Step::Rollups => {
                self.rollups = sums()?;
                self.rollups_done = self.rollups.len() < PERIODS_PER_READ;
                self.step = Step::Records;
            }
            Step::Records => {
                let records = sums()?;
                self.compare(&records);
                self.after = self.rollups.last().map(|&(p, _, _)| p).or(self.after);
                if self.rollups_done {
                    self.end_pass();
                } else {
                    self.step = Step::Rollups;
                }
            }
            Step::Head => {
                self.head_at_end = rows.first().map(|r| r.uint(0)).transpose()?;
                self.step = Step::Done;
                self.judge();
            }
            Step::Done => {}
        }
        Ok(())
    }

    /// Merges one page of rollup periods with the records' periods of the same range.
    fn compare(&mut self, records: &[Sums]) {
        let tier = self.tier().0;
        let (mut i, mut j) = (0, 0);
        while i < self.rollups.len() || j < records.len() {
            let r = self.rollups.get(i).copied();
            let w = records.get(j).copied();
            let (period, rolled, recorded) = match (r, w) {
                (Some(r), Some(w)) if r.0 == w.0 => {
                    i += 1;
                    j += 1;
                    (r.0, r, w)
                }
                (Some(r), Some(w)) if r.0 < w.0 => {
                    i += 1;
                    (r.0, r, (r.0, 0, 0))
                }
                (Some(r), None) => {
                    i += 1;
                    (r.0, r, (r.0, 0, 0))
                }
                (_, Some(w)) => {
                    j += 1;
                    (w.0, (w.0, 0, 0), w)
                }
                (None, None) => break,
            };
            self.periods += 1;
            self.rollup_total += rolled.1;
            self.record_total += recorded.1;
            if rolled.1 < recorded.1 || rolled.2 < recorded.2 {
                self.broken = Some(RollupBreak {
                    tier,
                    period_start: Some(period),
                    reason: format!(
                        "the rollups count {} records and {} credit units where the records of the period are {} and {}",
                        rolled.1, rolled.2, recorded.1, recorded.2
                    ),
                });
                return;
            }
            if rolled != recorded && self.excess.is_none() {
                self.excess = Some(period);
            }
        }
    }

    fn end_pass(&mut self) {
        self.totals.push((
            self.tier().0,
            self.rollup_total,
            self.record_total,
            self.excess,
        ));
        self.pass += 1;
        (self.after, self.rollups_done) = (None, false);
        (self.rollup_total, self.record_total, self.excess) = (0, 0, None);
        self.step = if self.pass < CHECKED.len() {
            Step::Rollups
        } else {
            Step::Head
        };
    }

    /// The totals, once the head at the end is known.
    fn judge(&mut self) {
        let head_at_end = self.head_at_end.unwrap_or(self.head_seq) as i64;
        let head = self.head_seq as i64;
        for &(tier, rolled, recorded, excess) in &self.totals {
            let whole = tier != Tier::TimeQuarter;
            let bad = if whole && (rolled < head || rolled > head_at_end) {
                Some((
                    None,
                    format!(
                        "the rollups count {rolled} records in all, the chain holds {head}{}",
                        if head_at_end > head {
                            format!(" to {head_at_end}")
                        } else {
                            String::new()
                        }
                    ),
                ))
            } else if let Some(p) = excess
                && !self.anchored
                && recorded == head
                && head_at_end == head
            {
                // Nothing removed, moved or appended: every period must match.
                Some((
                    Some(p),
                    "the rollups count more than the records of the period".to_owned(),
                ))
            } else {
                None
            };
            if let Some((period_start, reason)) = bad {
                self.broken = Some(RollupBreak {
                    tier,
                    period_start,
                    reason,
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Value;

    fn rows(sums: &[Sums]) -> Vec<Row> {
        sums.iter()
            .map(|&(p, n, c)| {
                Row(vec![
                    Value::Int(Some(p)),
                    Value::Int(Some(n)),
                    Value::Int(Some(c)),
                ])
            })
            .collect()
    }

    /// Runs a check where every tier's rollups and records are the given sums.
    fn run(
        head: u64,
        anchor: u64,
        rollups: &[Sums],
        records: &[Sums],
        head_at_end: u64,
    ) -> RollupCheck {
        let mut check = RollupCheck::new("t", head, anchor);
        let mut reads = 0;
        while let Some(st) = check.next(Dialect::Sqlite) {
            reads += 1;
            assert!(reads < 100, "the check ends");
            let answer = match check.step {
                Step::Rollups => rows(rollups),
                Step::Records => rows(records),
                _ => vec![Row(vec![Value::Int(Some(head_at_end as i64))])],
            };
            assert!(!st.sql.is_empty());
            check.feed(&answer).expect("fed");
        }
        check
    }

    #[test]
    fn matching_rollups_pass_and_any_shortfall_is_named() {
        let sums = [(0, 2, 10), (3_600_000, 1, 5)];
        let ok = run(3, 0, &sums, &sums, 3);
        assert!(ok.broken().is_none(), "{:?}", ok.broken());
        assert_eq!(ok.periods(), 8, "two periods in each of four tiers");
        let short = run(3, 0, &[(0, 1, 10), (3_600_000, 2, 5)], &sums, 3);
        assert_eq!(short.broken().map(|b| b.period_start), Some(Some(0)));
        let missing = run(3, 0, &[(3_600_000, 3, 15)], &sums, 3);
        assert_eq!(missing.broken().map(|b| b.period_start), Some(Some(0)));
    }

    #[test]
    fn rollups_may_exceed_removed_records_but_must_count_every_record_ever_chained() {
        let rolled = [(0, 2, 10), (3_600_000, 1, 5)];
        let left = [(3_600_000, 1, 5)];
        assert!(
            run(3, 2, &rolled, &left, 3).broken().is_none(),
            "retention removed two"
        );
        let moved = run(3, 2, &[(0, 1, 10), (3_600_000, 1, 5)], &left, 3);
        assert_eq!(
            moved.broken().map(|b| b.period_start),
            Some(None),
            "one record lost from the totals"
        );
        let inflated = run(
            3,
            0,
            &[(0, 3, 10), (3_600_000, 0, 5)],
            &[(0, 2, 10), (3_600_000, 1, 5)],
            3,
        );
        assert!(inflated.broken().is_some());
        let shifted = run(
            3,
            0,
            &[(0, 2, 11), (3_600_000, 1, 4)],
            &[(0, 2, 10), (3_600_000, 1, 5)],
            3,
        );
        assert!(shifted.broken().is_some(), "credits moved between periods");
        let appended = run(
            3,
            0,
            &[(0, 2, 10), (3_600_000, 2, 7)],
            &[(0, 2, 10), (3_600_000, 1, 5)],
            4,
        );
        assert!(
            appended.broken().is_none(),
            "a record appended during the check"
        );
    }
}
