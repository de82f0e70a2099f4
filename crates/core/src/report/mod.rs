//! Reports: the original sketch's shapes (operation / time / entity / compliance breakdowns,
//! per-user breakdown, most active user, recent summary), made correct.
//!
//! Aggregation is a commutative monoid over `ReportRow`s: a raw activity is a row with
//! `count = 1`, an hourly rollup is a row with its group's count. Partial aggregates
//! from rollups, raw edges or shards `merge` into exactly what one pass over all raw
//! rows gives, with no cap on the number of activities (defect 9 stopped at 1000).

mod aggregate;
mod bucket;
mod row;

pub use aggregate::{
    Aggregate, CountCredits, MostActiveUser, OperationStat, RecentSummary, ReportBody,
    recent_summary,
};
pub use bucket::{GroupBy, ReportTz};
pub use row::ReportRow;
