//! `GET /v1/dashboards/users/{id}`: the answer both runtimes give — a typed struct, so
//! neither can add or drop a field the other has.

use crm_core::Timestamp;
use crm_core::activity::UserContext;
use crm_core::report::RecentSummary;
use crm_store::listing::Page;

use crate::reports::Report;
use serde::Serialize;
use serde_json::value::RawValue;

/// Activities a dashboard shows as recent.
pub const RECENT: usize = 20;

/// A user's dashboard.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub user_id: String,
    /// Profile, department, hierarchy and entity path, from the current directory.
    pub context: UserContext,
    /// The user's report for the window (the report endpoint's answer).
    pub report: Report,
    /// The newest activities of the window, as stored.
    #[schemars(with = "Vec<crm_core::Activity>")]
    pub recent: Vec<Box<RawValue>>,
    pub recent_summary: RecentSummary,
    /// When this answer was made (the sketch's `lastUpdated`): how fresh the view is.
    pub last_updated: Timestamp,
}

impl Dashboard {
    /// The answer from its parts; `now` is the runtime's clock.
    pub fn new(
        user_id: String,
        context: UserContext,
        report: Report,
        recent: Page,
        now: Timestamp,
    ) -> Result<Dashboard, crm_store::StoreError> {
        let recent_summary = crm_store::listing::recent_summary(&recent)?;
        Ok(Dashboard {
            user_id,
            context,
            report,
            recent: recent.activities,
            recent_summary,
            last_updated: now,
        })
    }
}
