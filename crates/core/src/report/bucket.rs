//! Time buckets in UTC or an IANA timezone. Labels are zero-padded so that string order
//! is time order (defect 13 built `2024-1-9` in server-local time with Sunday weeks):
//! hour `2024-01-01T10`, day `2024-01-01`, ISO week `2024-W01` (Monday start), month `2024-01`.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::rollup::Tier;
use crate::error::{CoreError, CoreResult};
use crate::time::{Timestamp, clip};

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

/// Timezone for report buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportTz {
    #[default]
    Utc,
    Iana(Tz),
}

impl ReportTz {
    pub fn parse(name: &str) -> CoreResult<ReportTz> {
        if name == "UTC" || name == "Etc/UTC" || name == "Z" {
            return Ok(ReportTz::Utc);
        }
        name.parse::<Tz>().map(ReportTz::Iana).map_err(|_| {
            CoreError::invalid(
                "timezone",
                format!(
                    "`{}` is not an IANA timezone (e.g. Europe/Berlin)",
                    clip(name)
                ),
            )
        })
    }

    pub fn name(&self) -> &str {
        match self {
            ReportTz::Utc => "UTC",
            ReportTz::Iana(tz) => tz.name(),
        }
    }

    /// Bucket label of instant `t`.
    pub fn bucket(&self, t: Timestamp, group_by: GroupBy) -> String {
        let utc = t.to_datetime();
        match self {
            ReportTz::Utc => label(&utc, group_by),
            ReportTz::Iana(tz) => label(&tz.from_utc_datetime(&utc.naive_utc()), group_by),
        }
    }

    /// The coarsest time tier that buckets exactly in this zone between `from`
    /// and `to`: whole hours when the offset stays a whole number of hours, quarter
    /// hours when it stays a multiple of 15 minutes (e.g. Asia/Kolkata, Asia/Kathmandu),
    /// none otherwise (historic local mean times): such a report reads raw rows.
    pub fn time_tier(&self, from: Timestamp, to: Timestamp) -> Option<Tier> {
        let ReportTz::Iana(tz) = self else {
            return Some(Tier::TimeHour);
        };
        // Sample each day; zone offsets never change more often than that.
        use crate::duration::DAY_MS;
        let mut whole_hours = true;
        let mut t = from.millis();
        loop {
            let dt: DateTime<Utc> = Timestamp(t).to_datetime();
            let local = tz.from_utc_datetime(&dt.naive_utc());
            let offset_secs = local.naive_local().and_utc().timestamp() - dt.timestamp();
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
