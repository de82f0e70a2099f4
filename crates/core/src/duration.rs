//! `since` windows such as `90m`, `24h`, `30d`, `12w`. One parser for every query so a
//! unit always means the same thing (defect 7 parsed `30d` as 30 hours in one
//! place and `24h` as 24 days in another).

use crate::error::{CoreError, CoreResult};
use crate::limits::MAX_SINCE_MS;
use crate::time::{Timestamp, clip};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// A UTC day in milliseconds: the one definition every crate uses.
pub const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// A parsed `since` window, kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    pub millis: i64,
}

impl Since {
    /// Parses `<positive integer><unit>` with unit `m`, `h`, `d` or `w`. A bare number
    /// is rejected: the original sketch's implicit unit is exactly what caused defect 7.
    pub fn parse(text: &str) -> CoreResult<Since> {
        let bad = || {
            CoreError::invalid(
                "since",
                format!(
                    "`{}` is not a duration; use a positive number with a unit m, h, d or w, e.g. 90m, 24h, 30d, 12w",
                    clip(text)
                ),
            )
        };
        let text = text.trim();
        let unit = text.chars().last().ok_or_else(bad)?;
        let digits = &text[..text.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let amount: i64 = digits.parse().map_err(|_| bad())?;
        let unit_ms = match unit {
            'm' => MINUTE_MS,
            'h' => HOUR_MS,
            'd' => DAY_MS,
            'w' => WEEK_MS,
            _ => return Err(bad()),
        };
        if amount == 0 {
            return Err(bad());
        }
        let millis = amount
            .checked_mul(unit_ms)
            .filter(|ms| *ms <= MAX_SINCE_MS)
            .ok_or_else(|| CoreError::invalid("since", "duration is longer than ten years"))?;
        Ok(Since { millis })
    }

    /// Start of the window ending at `now`, clamped at the epoch.
    pub fn start(self, now: Timestamp) -> Timestamp {
        Timestamp(now.0.saturating_sub(self.millis).max(0))
    }
}

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl TimeRange {
    /// Resolves the query parameters every read endpoint shares: either `since`, or
    /// `from` and/or `to`; default is the last `default_since`.
    pub fn resolve(
        since: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        default_since: Since,
        now: Timestamp,
    ) -> CoreResult<TimeRange> {
        if since.is_some() && from.is_some() {
            return Err(CoreError::invalid(
                "since",
                "give either `since` or `from`, not both",
            ));
        }
        let to_ts = match to {
            Some(t) => Timestamp::parse(t).map_err(|e| e.at("to"))?,
            // `to` is exclusive: include activities stamped at exactly `now`.
            None => Timestamp(now.0.saturating_add(1)),
        };
        let from_ts = match (since, from) {
            (Some(s), _) => Since::parse(s)?.start(to_ts),
            (None, Some(f)) => Timestamp::parse(f).map_err(|e| e.at("from"))?,
            (None, None) => default_since.start(to_ts),
        };
        if from_ts > to_ts {
            return Err(CoreError::invalid("from", "`from` is after `to`"));
        }
        Ok(TimeRange {
            from: from_ts,
            to: to_ts,
        })
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}
