//! `GET /v1/reports/…` and the report inside a dashboard: the request's window, bucket
//! and zone parsed once, and the answer both runtimes give (the core's report body with
//! its subject and period).

use std::collections::BTreeMap;

use crm_core::Timestamp;
use crm_core::directory::{CompiledDirectory, DepartmentHierarchy};
use crm_core::duration::TimeRange;
use crm_core::error::CoreResult;
use crm_core::report::{GroupBy, ReportBody, ReportTz};
use crm_core::tenant::TenantPolicy;
use crm_store::listing::Subject;
use serde::Serialize;

use crate::error::ApiError;

/// A report request: the window, the bucket size and the zone the buckets are cut in.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub range: TimeRange,
    pub group_by: GroupBy,
    pub tz: ReportTz,
}

impl ReportRequest {
    /// From the query (`since` or `from`/`to`, `groupBy`, `tz`); the zone defaults to
    /// the tenant's, the bucket to a day.
    pub fn parse(
        params: &BTreeMap<String, String>,
        now: Timestamp,
        policy: &TenantPolicy,
    ) -> Result<ReportRequest, ApiError> {
        let range = crate::listing::report_range(params, now)?;
        let group_by = GroupBy::parse(params.get("groupBy").map_or("day", String::as_str))
            .map_err(|e| e.at("groupBy"))?;
        let tz = match params.get("tz") {
            Some(name) => ReportTz::parse(name).map_err(|e| e.at("tz"))?,
            None => policy.report_tz()?,
        };
        Ok(ReportRequest {
            range,
            group_by,
            tz,
        })
    }
}

/// The window a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Period {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// A report's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(flatten)]
    pub body: ReportBody,
    /// The user reported on (user reports and dashboards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The department reported on, its subtree included (department reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<String>,
    /// A department report's department in its organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hierarchy: Option<DepartmentHierarchy>,
    pub period: Period,
}

impl Report {
    /// The answer of `subject`'s report over `range`, from the core's merged partials;
    /// `dir` places a department in its organization.
    pub fn new(
        partials: Vec<crm_core::report::Aggregate>,
        subject: &Subject,
        range: TimeRange,
        dir: &CompiledDirectory,
    ) -> CoreResult<Report> {
        let (user_id, department_id) = match subject {
            Subject::User(id) => (Some(id.clone()), None),
            Subject::Department(id) => (None, Some(id.clone())),
            Subject::Tenant => (None, None),
        };
        let hierarchy = department_id
            .as_deref()
            .and_then(|id| dir.department(id))
            .map(|d| dir.department_hierarchy(d));
        Ok(Report {
            body: crm_core::engine::finish(partials)?,
            user_id,
            department_id,
            hierarchy,
            period: Period {
                from: range.from,
                to: range.to,
            },
        })
    }
}
