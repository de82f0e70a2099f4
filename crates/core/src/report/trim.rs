//! A partial hour read as its UTC hour's rollups less the raw rows of the rest of the
//! hour ([`TrimmedHour`]). Every rollup row is a count and a credit sum per value, so
//! subtracting the rest's activities value by value leaves exactly the piece's rows.
//! One thing does not subtract: an operation row's newest instant. When the rest holds
//! that operation's newest activity, the instant is read again ([`Trimmed::stale`]).
//!
//! The store reads the rollups and the rest in one statement, so both come from one
//! snapshot of the database. Anything that does not add up — a value of the rest that
//! no rollup row counts (an erased subject's scrubbed values, a compacted hour), a
//! count that would go negative — answers `None`, and the piece is read raw instead.

use std::collections::BTreeMap;

use super::rollup::{Dimension, ReportInput, RollupRow, Tier};
use super::row::ReportRow;
use crate::credits::Credits;
use crate::error::CoreResult;
use crate::query::TrimmedHour;
use crate::time::Timestamp;

/// A rollup row's identity as a report reads it (rows of one department under two
/// paths, after a move, count together).
type RowKey = (i64, String, Dimension, Option<String>);

/// What a trimmed piece's read folds to while its rows arrive.
#[derive(Debug)]
pub struct TrimFold {
    piece: TrimmedHour,
    time_tier: Tier,
    rows: BTreeMap<RowKey, RollupRow>,
    rest: Vec<ReportRow>,
}

/// The piece's rollup rows once the rest is subtracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    rows: Vec<RollupRow>,
    /// Indexes of operation rows whose newest instant lies after the piece.
    stale: Vec<usize>,
}

impl TrimFold {
    /// `time_tier` is the tier whose time rows the read holds.
    pub fn new(piece: TrimmedHour, time_tier: Tier) -> TrimFold {
        TrimFold {
            piece,
            time_tier,
            rows: BTreeMap::new(),
            rest: Vec::new(),
        }
    }

    pub fn add(&mut self, input: ReportInput) -> CoreResult<()> {
        match input {
            ReportInput::Rollup(row) => {
                let key = (
                    row.period_start.millis(),
                    row.department_id.clone(),
                    row.dimension,
                    row.value.clone(),
                );
                match self.rows.get_mut(&key) {
                    Some(seen) => {
                        seen.count = seen.count.saturating_add(row.count);
                        seen.credits = seen.credits.checked_add(row.credits)?;
                        seen.latest = seen.latest.max(row.latest);
                    }
                    None => {
                        self.rows.insert(key, row);
                    }
                }
            }
            ReportInput::Activity(row) => self.rest.push(row),
        }
        Ok(())
    }

    /// The piece's rows, or `None` when the rest does not add up against the rollups
    /// (read the piece raw).
    pub fn finish(mut self) -> Option<Trimmed> {
        let hour = self.piece.hour;
        for a in std::mem::take(&mut self.rest) {
            let t = a.occurred_at.millis();
            if !self.piece.rest().any(|(x, y)| x <= t && t < y) {
                return None;
            }
            let department = a.department_id.clone()?;
            let time = (self.time_tier.start(t), Dimension::Time, None);
            let breakdowns = Dimension::BREAKDOWNS
                .iter()
                .map(|&d| (hour, d, d.value_of_row(&a).map(str::to_owned)));
            for (period, dimension, value) in std::iter::once(time).chain(breakdowns) {
                let row = self
                    .rows
                    .get_mut(&(period, department.clone(), dimension, value))?;
                row.count = row.count.checked_sub(a.count)?;
                row.credits =
                    Credits::from_units(row.credits.units().checked_sub(a.credits.units())?)
                        .ok()?;
            }
        }
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut stale = Vec::new();
        for row in self.rows.into_values().filter(|r| r.count > 0) {
            // A counted activity of the piece is at least as new as its start.
            if row.dimension == Dimension::Operation && row.latest.millis() < self.piece.from {
                return None;
            }
            if row.dimension == Dimension::Operation && row.latest.millis() >= self.piece.to {
                stale.push(rows.len());
            }
            rows.push(row);
        }
        Some(Trimmed { rows, stale })
    }
}

impl Trimmed {
    /// `(department, operation)` of each row whose newest instant must be read again:
    /// the newest activity before the piece's end.
    pub fn stale(&self) -> Vec<(String, String)> {
        self.stale
            .iter()
            .filter_map(|&i| self.rows.get(i))
            .map(|r| (r.department_id.clone(), r.value.clone().unwrap_or_default()))
            .collect()
    }

    /// Sets the newest instant of `(department, operation)` within the piece.
    pub fn settle(&mut self, department: &str, operation: &str, latest: Timestamp) {
        let rows = &mut self.rows;
        self.stale.retain(|&i| match rows.get_mut(i) {
            Some(r) if r.department_id == department && r.value.as_deref() == Some(operation) => {
                r.latest = latest;
                false
            }
            _ => true,
        });
    }

    /// The rows, once nothing is stale (`None` otherwise: read the piece raw).
    pub fn into_rows(self) -> Option<Vec<RollupRow>> {
        self.stale.is_empty().then_some(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Aggregate, GroupBy, ReportTz};
    use proptest::prelude::*;

    const H: i64 = 3_600_000;

    fn raw(at: i64, user: &str, op: &str, ip: Option<&str>, credits: i64) -> ReportRow {
        ReportRow {
            occurred_at: Timestamp::from_millis(at).expect("in range"),
            latest: None,
            count: 1,
            user_id: user.to_owned(),
            department_id: Some(if user.ends_with('1') { "d1" } else { "d2" }.to_owned()),
            operation: op.to_owned(),
            outcome: crate::activity::Outcome::Success,
            entity_type: (op == "a").then(|| "lead".to_owned()),
            credits: Credits::from_units(credits).expect("in range"),
            location: ip.map(|_| "Berlin".to_owned()),
            authentication_method: None,
            ip_address: ip.map(str::to_owned),
        }
    }

    /// What the store folds and stores for `rows` (`crm_store::rollups::fold`).
    fn rollups(rows: &[ReportRow], tier: Tier) -> Vec<RollupRow> {
        let mut out: BTreeMap<RowKey, RollupRow> = BTreeMap::new();
        for a in rows {
            let t = a.occurred_at.millis();
            let dept = a.department_id.clone().expect("department");
            let time = (tier.start(t), Dimension::Time, None);
            let rest = Dimension::BREAKDOWNS
                .iter()
                .map(|&d| (Tier::Hour.start(t), d, d.value_of_row(a).map(str::to_owned)));
            for (period, dimension, value) in std::iter::once(time).chain(rest) {
                let r = out
                    .entry((period, dept.clone(), dimension, value.clone()))
                    .or_insert(RollupRow {
                        period_start: Timestamp::from_millis(period).expect("in range"),
                        department_id: dept.clone(),
                        dimension,
                        value,
                        count: 0,
                        credits: Credits::ZERO,
                        latest: Timestamp::from_millis(0).expect("in range"),
                    });
                r.count += 1;
                r.credits = r.credits.checked_add(a.credits).expect("in range");
                r.latest = r.latest.max(a.occurred_at);
            }
        }
        out.into_values().collect()
    }

    fn report(inputs: &[ReportInput]) -> Aggregate {
        let tz = ReportTz::parse("Asia/Kathmandu").expect("zone");
        let mut agg = Aggregate::new(GroupBy::Hour, tz);
        agg.add_inputs(inputs).expect("adds");
        agg
    }

    proptest! {
        /// The piece's rows, trimmed and settled, report exactly what its raw rows do.
        #[test]
        fn trimmed_hours_report_exactly_their_raw_rows(
            rows in prop::collection::vec(
                (0..H, 0usize..3, 0usize..3, 0usize..3, 0i64..5_000),
                0..40,
            ),
            cut in (0..=H, 0..=H),
        ) {
            let hour = 7 * H;
            let (a, b) = (cut.0.min(cut.1), cut.0.max(cut.1));
            let piece = TrimmedHour { hour, from: hour + a, to: hour + b };
            let users = ["u1", "u2", "u3"];
            let ops = ["a", "b", "c"];
            let ips = [None, Some("10.0.0.1"), Some("10.0.0.2")];
            let all: Vec<ReportRow> = rows
                .iter()
                .map(|&(t, u, o, i, c)| raw(hour + t, users[u], ops[o], ips[i], c))
                .collect();
            let inside = |r: &ReportRow| (piece.from..piece.to).contains(&r.occurred_at.millis());
            let mut fold = TrimFold::new(piece, Tier::TimeQuarter);
            for r in rollups(&all, Tier::TimeQuarter) {
                fold.add(ReportInput::Rollup(r)).expect("adds");
            }
            for r in all.iter().filter(|r| !inside(r)) {
                fold.add(ReportInput::Activity(r.clone())).expect("adds");
            }
            let mut trimmed = fold.finish().expect("adds up");
            for (dept, op) in trimmed.stale() {
                let newest = all
                    .iter()
                    .filter(|r| inside(r) && r.department_id.as_deref() == Some(&dept) && r.operation == op)
                    .map(|r| r.occurred_at)
                    .max()
                    .expect("a counted row has an activity");
                trimmed.settle(&dept, &op, newest);
            }
            let rows = trimmed.into_rows().expect("settled");
            let via_rollups: Vec<ReportInput> = rows.into_iter().map(ReportInput::Rollup).collect();
            let via_raw: Vec<ReportInput> =
                all.iter().filter(|r| inside(r)).cloned().map(ReportInput::Activity).collect();
            prop_assert_eq!(report(&via_rollups), report(&via_raw));
        }
    }

    /// The first minute of hour 7 folded from the hour rollups of `counted` and the
    /// raw rows `rest`.
    fn first_minute(counted: &[ReportRow], rest: &[ReportRow]) -> Option<Trimmed> {
        let hour = 7 * H;
        let piece = TrimmedHour {
            hour,
            from: hour,
            to: hour + 60_000,
        };
        let mut fold = TrimFold::new(piece, Tier::TimeHour);
        for r in rollups(counted, Tier::TimeHour) {
            fold.add(ReportInput::Rollup(r)).expect("adds");
        }
        for r in rest {
            fold.add(ReportInput::Activity(r.clone())).expect("adds");
        }
        fold.finish()
    }

    #[test]
    fn a_rest_no_rollup_counts_reads_the_piece_raw() {
        let hour = 7 * H;
        // An erased subject's scrubbed IP, counted under its old value.
        let scrubbed = raw(hour + 120_000, "u1", "a", Some("10.9.9.9"), 1);
        assert_eq!(
            first_minute(&[raw(hour + 10, "u1", "a", None, 1)], &[scrubbed]),
            None
        );
        // A rest row inside the piece is no rest.
        assert_eq!(
            first_minute(&[], &[raw(hour + 10, "u1", "a", None, 1)]),
            None
        );
    }

    #[test]
    fn an_unsettled_newest_instant_reads_the_piece_raw() {
        let hour = 7 * H;
        let rows = [
            raw(hour + 10, "u1", "a", None, 1),
            raw(hour + 90_000, "u1", "a", None, 1),
        ];
        let trimmed = first_minute(&rows, &rows[1..]).expect("adds up");
        assert_eq!(trimmed.stale(), vec![("d1".to_owned(), "a".to_owned())]);
        assert_eq!(trimmed.into_rows(), None);
    }
}
