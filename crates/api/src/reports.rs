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

/// The newest activities of a department report's window read for its user details:
/// one page, so the details cost one bounded read on either runtime.
pub const USER_DETAIL_PAGE: usize = crate::listing::MAX_LIMIT;
/// Activities listed per user in the details.
pub const USER_DETAIL_ACTIVITIES: usize = 10;

/// A report request: the window, the bucket size and the zone the buckets are cut in.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub range: TimeRange,
    pub group_by: GroupBy,
    pub tz: ReportTz,
    /// A department report's per-user activity lists (`includeUserDetails=true`).
    pub include_user_details: bool,
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
        let include_user_details = match params.get("includeUserDetails").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "`includeUserDetails` must be true or false",
                ));
            }
        };
        Ok(ReportRequest {
            range,
            group_by,
            tz,
            include_user_details,
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
    /// With `includeUserDetails=true`: each user's newest activities in the window
    /// (the sketch's per-user lists), users in the order of their newest activity,
    /// taken from the window's newest [`USER_DETAIL_PAGE`] records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_details: Option<Vec<UserDetail>>,
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
            user_details: None,
            period: Period {
                from: range.from,
                to: range.to,
            },
        })
    }
}

/// One user's part of a department report's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDetail {
    pub user_id: String,
    /// From the current directory (absent for a user it no longer has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Newest first, at most [`USER_DETAIL_ACTIVITIES`].
    pub recent: Vec<RecentActivity>,
}

/// An activity as a report's details list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentActivity {
    pub id: String,
    pub operation: String,
    pub outcome: crm_core::Outcome,
    pub occurred_at: Timestamp,
    pub credits: crm_core::Credits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
}

/// The details from a page of the window's newest records (newest first).
pub fn user_details(
    page: &crm_store::listing::Page,
    dir: &CompiledDirectory,
) -> Result<Vec<UserDetail>, ApiError> {
    let mut out: Vec<UserDetail> = Vec::new();
    for raw in &page.activities {
        let a: crm_core::Activity =
            serde_json::from_str(raw.get()).map_err(|_| ApiError::internal())?;
        let at = match out.iter().position(|u| u.user_id == a.user_id) {
            Some(i) => i,
            None => {
                out.push(UserDetail {
                    name: dir.user(&a.user_id).map(|u| dir.user_context(u).user.name),
                    user_id: a.user_id.clone(),
                    recent: Vec::new(),
                });
                out.len() - 1
            }
        };
        let recent = &mut out[at].recent;
        if recent.len() < USER_DETAIL_ACTIVITIES {
            recent.push(RecentActivity {
                id: a.id,
                operation: a.operation,
                outcome: a.outcome,
                occurred_at: a.occurred_at,
                credits: a.credits,
                entity_type: a.entity_type,
                entity_id: a.entity_id,
            });
        }
    }
    Ok(out)
}
