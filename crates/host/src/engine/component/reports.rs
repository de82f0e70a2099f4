//! Host side of the `reports` interface.

use crm_core::report::ReportRow;
use serde_json::Value;

use super::{ComponentEngine, EngineResult, json_fault};

impl ComponentEngine {
    pub(super) fn guest_report(
        &self,
        group_by: &str,
        timezone: &str,
        parts: &[&[ReportRow]],
    ) -> EngineResult<Value> {
        let mut partials = Vec::with_capacity(parts.len());
        for rows in parts {
            let rows_json = serde_json::to_string(rows).map_err(json_fault)?;
            partials.push(self.with_instance(|i| {
                i.world.crm_engine_reports().call_aggregate(
                    &mut i.store,
                    group_by,
                    timezone,
                    &rows_json,
                )
            })?);
        }
        let body = self.with_instance(|i| {
            i.world
                .crm_engine_reports()
                .call_finish(&mut i.store, &partials)
        })?;
        serde_json::from_str(&body).map_err(json_fault)
    }
}
