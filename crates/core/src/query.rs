//! Pieces of listing and report queries that every storage runtime (SQLite host, D1
//! worker) shares: the pagination cursor and the rollup/raw plan of a report window.

use crate::error::{CoreError, CoreResult};
use crate::report::Tier;
use crate::time::clip;

/// Position in a newest-first listing: the last row returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: i64,
    pub seq: u64,
}

impl Cursor {
    /// Opaque to clients; stable across versions of this format only.
    pub fn encode(self) -> String {
        format!("c{}.{}", self.occurred_at, self.seq)
    }

    pub fn decode(text: &str) -> CoreResult<Cursor> {
        let bad = || {
            CoreError::invalid(
                "cursor",
                format!("`{}` is not a cursor from this API", clip(text)),
            )
        };
        let (t, s) = text
            .strip_prefix('c')
            .and_then(|r| r.split_once('.'))
            .ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(t) || !digits(s) {
            return Err(bad());
        }
        Ok(Cursor {
            occurred_at: t.parse().map_err(|_| bad())?,
            seq: s.parse().map_err(|_| bad())?,
        })
    }
}

/// Which reads a report window `[from, to)` is made of: raw rows for its partial hours
/// at the edges, the time tier for the temporal breakdown of its whole hours, and for
/// the other breakdowns day rows for its whole UTC days and hour rows around them.
/// Without a time tier (a zone no tier buckets exactly) or without a whole hour
/// inside, everything is raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPlan {
    pub raw: Vec<(i64, i64)>,
    /// `(tier, from, to)` reads of rollups.
    pub rollups: Vec<(Tier, i64, i64)>,
}

pub fn plan(from: i64, to: i64, time_tier: Option<Tier>) -> ReportPlan {
    let ceil = |t: i64, tier: Tier| tier.start(t + tier.period_ms() - 1);
    let (first, last) = (ceil(from, Tier::Hour), Tier::Hour.start(to));
    let Some(time_tier) = time_tier.filter(|_| first < last) else {
        return ReportPlan {
            raw: vec![(from, to)],
            rollups: Vec::new(),
        };
    };
    let raw = [(from, first), (last, to)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    let mut rollups = vec![(time_tier, first, last)];
    let (day_first, day_last) = (ceil(first, Tier::Day), Tier::Day.start(last));
    if day_first < day_last {
        rollups.extend(
            [
                (Tier::Hour, first, day_first),
                (Tier::Day, day_first, day_last),
                (Tier::Hour, day_last, last),
            ]
            .into_iter()
            .filter(|(_, a, b)| a < b),
        );
    } else {
        rollups.push((Tier::Hour, first, last));
    }
    ReportPlan { raw, rollups }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            occurred_at: 1_700_000_000_123,
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "c",
            "c1",
            "c1.",
            "c.1",
            "x1.2",
            "c1.2.3",
            "c-1.2",
            "c99999999999999999999.1",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_split_into_raw_edges_hours_and_days() {
        let (h, d) = (Tier::Hour.period_ms(), Tier::Day.period_ms());
        let q = Some(Tier::TimeHour);
        assert_eq!(
            plan(h + 5, 4 * h + 7, q),
            ReportPlan {
                raw: vec![(h + 5, 2 * h), (4 * h, 4 * h + 7)],
                rollups: vec![(Tier::TimeHour, 2 * h, 4 * h), (Tier::Hour, 2 * h, 4 * h)],
            }
        );
        assert_eq!(
            plan(d - h - 1, 3 * d + 2 * h, Some(Tier::TimeQuarter)),
            ReportPlan {
                raw: vec![(d - h - 1, d - h)],
                rollups: vec![
                    (Tier::TimeQuarter, d - h, 3 * d + 2 * h),
                    (Tier::Hour, d - h, d),
                    (Tier::Day, d, 3 * d),
                    (Tier::Hour, 3 * d, 3 * d + 2 * h),
                ],
            }
        );
        assert_eq!(
            plan(d, 2 * d, q).rollups,
            vec![(Tier::TimeHour, d, 2 * d), (Tier::Day, d, 2 * d)]
        );
        let all_raw = |from, to| ReportPlan {
            raw: vec![(from, to)],
            rollups: vec![],
        };
        assert_eq!(plan(h + 5, 2 * h + 3, q), all_raw(h + 5, 2 * h + 3));
        assert_eq!(plan(h, 3 * h, None), all_raw(h, 3 * h));
    }
}
