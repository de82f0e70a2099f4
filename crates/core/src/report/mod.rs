//! Reports: the original sketch's shapes (operation / time / entity / compliance breakdowns,
//! per-user breakdown, most active user, recent summary), made correct.
//!
//! Aggregation is a commutative monoid over `ReportInput`s: a raw activity (a
//! `ReportRow` with `count = 1`) adds to every breakdown, a per-dimension rollup row
//! (`rollup.rs`) to the breakdown of its dimension. Partial aggregates from rollups,
//! raw edges or shards `merge` into exactly what one pass over all raw rows gives, with
//! no cap on the number of activities (defect 9 stopped at 1000).

mod aggregate;
mod bucket;
mod rollup;
mod row;
mod trim;

pub use aggregate::{
    Aggregate, CountCredits, MostActiveUser, OperationStat, RecentSummary, ReportBody, ReportFold,
    recent_summary,
};
pub use bucket::{GroupBy, ReportTz};
pub use rollup::{Dimension, ReportInput, RollupRow, Tier};
pub use row::ReportRow;
pub use trim::{TrimFold, Trimmed};
