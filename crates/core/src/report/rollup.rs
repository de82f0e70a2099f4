//! Per-dimension rollups: what a report needs of many activities, kept per dimension
//! instead of per combination of dimensions.
//!
//! Every breakdown of a report is a sum over one dimension (operation, entity type,
//! outcome, user, location, auth method), a set over one (client IPs), or a sum over
//! time buckets. So a rollup row carries one dimension's value for one department and
//! one period, and the rows of a day compress to the distinct values of that day — a
//! row per activity in the limit of the former all-dimension key, where a user's IP
//! made almost every row unique.
//!
//! Tiers: the time dimension is kept per quarter hour (every zone offset in use is a
//! multiple of 15 minutes, so a quarter never straddles a bucket) and per hour (fewer
//! rows for whole-hour zones); every other dimension per UTC hour and per UTC day.
//! A day row can serve a report in any zone: only the time buckets depend on the
//! zone, and those come from the time tiers.

use serde::{Deserialize, Serialize};

use crate::activity::Activity;
use crate::credits::Credits;
use crate::report::ReportRow;
use crate::time::Timestamp;

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// The periods rollups are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The time dimension per quarter hour: exact buckets in any zone in use.
    TimeQuarter,
    /// The time dimension per UTC hour: exact buckets in whole-hour zones.
    TimeHour,
    /// Every other dimension per UTC hour: the edges of a window, between its raw
    /// partial hours and its whole days.
    Hour,
    /// Every other dimension per UTC day: the bulk of a long window.
    Day,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::TimeQuarter, Tier::TimeHour, Tier::Hour, Tier::Day];

    /// Length of a period, in milliseconds.
    pub fn period_ms(self) -> i64 {
        match self {
            Tier::TimeQuarter => 15 * MINUTE_MS,
            Tier::TimeHour | Tier::Hour => 60 * MINUTE_MS,
            Tier::Day => 24 * 60 * MINUTE_MS,
        }
    }

    /// Start of the period holding `t`.
    pub fn start(self, t: i64) -> i64 {
        t.div_euclid(self.period_ms()) * self.period_ms()
    }

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::TimeQuarter => "tq",
            Tier::TimeHour => "th",
            Tier::Hour => "h",
            Tier::Day => "d",
        }
    }

    /// The dimensions this tier keeps.
    pub fn dimensions(self) -> &'static [Dimension] {
        match self {
            Tier::TimeQuarter | Tier::TimeHour => &[Dimension::Time],
            Tier::Hour | Tier::Day => &Dimension::BREAKDOWNS,
        }
    }
}

/// What a rollup row counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    /// The period itself (no value): the temporal breakdown.
    Time,
    Operation,
    EntityType,
    /// Every activity has exactly one outcome, so these rows also give the totals and
    /// the department breakdown.
    Outcome,
    User,
    Location,
    AuthMethod,
    IpAddress,
}

impl Dimension {
    /// The dimensions of the breakdowns (all but time).
    pub const BREAKDOWNS: [Dimension; 7] = [
        Dimension::Operation,
        Dimension::EntityType,
        Dimension::Outcome,
        Dimension::User,
        Dimension::Location,
        Dimension::AuthMethod,
        Dimension::IpAddress,
    ];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Time => "time",
            Dimension::Operation => "operation",
            Dimension::EntityType => "entity",
            Dimension::Outcome => "outcome",
            Dimension::User => "user",
            Dimension::Location => "location",
            Dimension::AuthMethod => "auth",
            Dimension::IpAddress => "ip",
        }
    }

    pub fn parse(code: &str) -> Option<Dimension> {
        [Dimension::Time]
            .into_iter()
            .chain(Dimension::BREAKDOWNS)
            .find(|d| d.as_str() == code)
    }

    /// This dimension's value in `a` (`None`: absent, or the time dimension).
    pub fn value_of(self, a: &Activity) -> Option<&str> {
        match self {
            Dimension::Time => None,
            Dimension::Operation => Some(&a.operation),
            Dimension::EntityType => a.entity_type.as_deref(),
            Dimension::Outcome => Some(a.outcome.as_str()),
            Dimension::User => Some(&a.user_id),
            Dimension::Location => a.compliance.location.as_deref(),
            Dimension::AuthMethod => a.compliance.authentication_method.as_deref(),
            Dimension::IpAddress => a.compliance.ip_address.as_deref(),
        }
    }
}

impl Dimension {
    /// This dimension's value in a raw report row, as a rollup row stores it (an
    /// empty value is stored as absent).
    pub fn value_of_row(self, r: &ReportRow) -> Option<&str> {
        match self {
            Dimension::Time => None,
            Dimension::Operation => Some(r.operation.as_str()),
            Dimension::EntityType => r.entity_type.as_deref(),
            Dimension::Outcome => Some(r.outcome.as_str()),
            Dimension::User => Some(r.user_id.as_str()),
            Dimension::Location => r.location.as_deref(),
            Dimension::AuthMethod => r.authentication_method.as_deref(),
            Dimension::IpAddress => r.ip_address.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }
}

/// One stored rollup row as a report reads it: the activities of one department in
/// one period with one value of one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollupRow {
    pub period_start: Timestamp,
    pub department_id: String,
    pub dimension: Dimension,
    pub value: Option<String>,
    pub count: u64,
    /// Total credits of the row's activities.
    pub credits: Credits,
    /// Newest activity of the row.
    pub latest: Timestamp,
}

/// What a report aggregates: raw activities at the edges of its window, rollup rows
/// for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportInput {
    Activity(ReportRow),
    Rollup(RollupRow),
}
