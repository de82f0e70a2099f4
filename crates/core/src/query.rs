//! Pieces of listing and report queries that every storage runtime (SQLite host, D1
//! worker) shares: the pagination cursor and the rollup/raw split of a report window.

use crate::error::{CoreError, CoreResult};
use crate::time::clip;

/// Rollups are hourly.
pub const HOUR_MS: i64 = 3_600_000;

/// Start of the UTC hour holding `t` (ms).
pub fn hour_start(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

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

/// A report window `[from, to)` split into whole hours (read from rollups) and the raw
/// edges around them. Without hour alignment (a zone with a non-whole-hour offset) or
/// without a whole hour inside, everything is raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourSplit {
    pub whole: Option<(i64, i64)>,
    pub raw: Vec<(i64, i64)>,
}

pub fn split_hours(from: i64, to: i64, aligned: bool) -> HourSplit {
    let first = hour_start(from)
        + if from.rem_euclid(HOUR_MS) == 0 {
            0
        } else {
            HOUR_MS
        };
    let last = hour_start(to);
    if !aligned || first >= last {
        return HourSplit {
            whole: None,
            raw: vec![(from, to)],
        };
    }
    let raw = [(from, first), (last, to)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    HourSplit {
        whole: Some((first, last)),
        raw,
    }
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
    fn windows_split_into_whole_hours_and_raw_edges() {
        let h = HOUR_MS;
        assert_eq!(
            split_hours(h + 5, 4 * h + 7, true),
            HourSplit {
                whole: Some((2 * h, 4 * h)),
                raw: vec![(h + 5, 2 * h), (4 * h, 4 * h + 7)]
            }
        );
        assert_eq!(
            split_hours(h, 3 * h, true),
            HourSplit {
                whole: Some((h, 3 * h)),
                raw: vec![]
            }
        );
        assert_eq!(
            split_hours(h + 5, 2 * h + 3, true),
            HourSplit {
                whole: None,
                raw: vec![(h + 5, 2 * h + 3)]
            }
        );
        assert_eq!(
            split_hours(h, 3 * h, false),
            HourSplit {
                whole: None,
                raw: vec![(h, 3 * h)]
            }
        );
    }
}
