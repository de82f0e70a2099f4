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

/// Which reads a report window `[from, to)` is made of: the time tier for the temporal
/// breakdown of its whole hours, day rows for its whole UTC days and hour rows around
/// them for the other breakdowns, and for each partial hour at an edge either its raw
/// rows or — when the rest of that hour holds less time — the hour's rollups less the
/// raw rows of the rest ([`TrimmedHour`]). Without a time tier (a zone no tier buckets
/// exactly) everything is raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPlan {
    pub raw: Vec<(i64, i64)>,
    /// `(tier, from, to)` reads of rollups.
    pub rollups: Vec<(Tier, i64, i64)>,
    pub trimmed: Vec<TrimmedHour>,
}

/// A partial hour `[from, to)` read as the rollups of its UTC hour less the raw rows
/// of the rest of that hour. A report ending now reads its open hour this way: the
/// rest of the hour lies in the future and holds (almost) nothing, so the report does
/// not grow with the open hour's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimmedHour {
    pub hour: i64,
    pub from: i64,
    pub to: i64,
}

impl TrimmedHour {
    /// The raw ranges subtracted: the hour outside `[from, to)`.
    pub fn rest(self) -> impl Iterator<Item = (i64, i64)> {
        let end = self.hour + Tier::Hour.period_ms();
        [(self.hour, self.from), (self.to, end)]
            .into_iter()
            .filter(|(a, b)| a < b)
    }
}

/// The plan of `[from, to)`, read at `now`. Time after `now` holds only activities
/// dated ahead of their recording (ingest accepts a few minutes), so it is costed as
/// empty: a report ending now subtracts its open hour's future.
pub fn plan(from: i64, to: i64, time_tier: Option<Tier>, now: i64) -> ReportPlan {
    let ceil = |t: i64, tier: Tier| tier.start(t + tier.period_ms() - 1);
    let Some(time_tier) = time_tier else {
        return ReportPlan {
            raw: vec![(from, to)],
            rollups: Vec::new(),
            trimmed: Vec::new(),
        };
    };
    let (first, last) = (ceil(from, Tier::Hour), Tier::Hour.start(to));
    let pieces = if first <= last {
        vec![(from, first), (last, to)]
    } else {
        vec![(from, to)]
    };
    let mut out = ReportPlan {
        raw: Vec::new(),
        rollups: Vec::new(),
        trimmed: Vec::new(),
    };
    for (a, b) in pieces.into_iter().filter(|(a, b)| a < b) {
        let piece = TrimmedHour {
            hour: Tier::Hour.start(a),
            from: a,
            to: b,
        };
        let rest: i64 = piece
            .rest()
            .map(|(x, y)| y.min(now).saturating_sub(x).max(0))
            .sum();
        if rest < b - a {
            out.trimmed.push(piece);
        } else {
            out.raw.push((a, b));
        }
    }
    if first >= last {
        return out;
    }
    out.rollups.push((time_tier, first, last));
    let (day_first, day_last) = (ceil(first, Tier::Day), Tier::Day.start(last));
    if day_first < day_last {
        out.rollups.extend(
            [
                (Tier::Hour, first, day_first),
                (Tier::Day, day_first, day_last),
                (Tier::Hour, day_last, last),
            ]
            .into_iter()
            .filter(|(_, a, b)| a < b),
        );
    } else {
        out.rollups.push((Tier::Hour, first, last));
    }
    out
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
        // Long after the window: each edge reads its smaller side raw.
        let later = 100 * d;
        assert_eq!(
            plan(h + 5, 4 * h + 7, q, later),
            ReportPlan {
                raw: vec![(4 * h, 4 * h + 7)],
                rollups: vec![(Tier::TimeHour, 2 * h, 4 * h), (Tier::Hour, 2 * h, 4 * h)],
                trimmed: vec![TrimmedHour {
                    hour: h,
                    from: h + 5,
                    to: 2 * h
                }],
            }
        );
        assert_eq!(
            plan(d - h - 1, 3 * d + 2 * h, Some(Tier::TimeQuarter), later),
            ReportPlan {
                raw: vec![(d - h - 1, d - h)],
                rollups: vec![
                    (Tier::TimeQuarter, d - h, 3 * d + 2 * h),
                    (Tier::Hour, d - h, d),
                    (Tier::Day, d, 3 * d),
                    (Tier::Hour, 3 * d, 3 * d + 2 * h),
                ],
                trimmed: vec![],
            }
        );
        assert_eq!(
            plan(d, 2 * d, q, later).rollups,
            vec![(Tier::TimeHour, d, 2 * d), (Tier::Day, d, 2 * d)]
        );
        // Inside one hour: the smaller side, raw or trimmed.
        assert_eq!(plan(h + 5, h + 9, q, later).raw, vec![(h + 5, h + 9)]);
        assert_eq!(
            plan(h + 5, 2 * h - 9, q, later).trimmed,
            vec![TrimmedHour {
                hour: h,
                from: h + 5,
                to: 2 * h - 9
            }]
        );
        let all_raw = |from, to| ReportPlan {
            raw: vec![(from, to)],
            rollups: vec![],
            trimmed: vec![],
        };
        assert_eq!(plan(h, 3 * h, None, later), all_raw(h, 3 * h));
    }

    #[test]
    fn a_window_ending_now_trims_its_open_hour_whatever_it_holds() {
        let h = Tier::Hour.period_ms();
        let q = Some(Tier::TimeQuarter);
        // One minute into the hour, ending now: the rest of the hour is the future.
        let now = 5 * h + 60_000;
        let p = plan(2 * h, now + 1, q, now);
        assert!(p.raw.is_empty(), "{p:?}");
        let open = TrimmedHour {
            hour: 5 * h,
            from: 5 * h,
            to: now + 1,
        };
        assert_eq!(p.trimmed, vec![open]);
        assert_eq!(open.rest().collect::<Vec<_>>(), vec![(now + 1, 6 * h)]);
        // The same window read an hour later: its last minute is cheaper raw.
        assert_eq!(plan(2 * h, now + 1, q, 7 * h).raw, vec![(5 * h, now + 1)]);
    }
}
