//! Client-side aggregation of an activity export with the core's own aggregate.

use crm_core::report::ReportRow;
use crm_core::{Activity, CoreError};

/// One activity JSON per line (blank lines skipped) → report body JSON.
pub fn aggregate_ndjson(ndjson: &str, group_by: &str, timezone: &str) -> Result<String, CoreError> {
    let mut rows = Vec::new();
    for (i, line) in ndjson
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let a: Activity = serde_json::from_str(line)
            .map_err(|e| CoreError::from_json(&e).within(&format!("line {}", i + 1)))?;
        rows.push(ReportRow::from(&a));
    }
    let agg = crm_core::engine::aggregate(group_by, timezone, &rows)?;
    let body = crm_core::engine::finish(vec![agg])?;
    Ok(serde_json::to_string(&body).expect("report bodies serialize"))
}
