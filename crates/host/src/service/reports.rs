//! Reports: per-dimension rollups for the whole hours of the window, raw rows for the
//! partial hours at its edges, merged by the core — equal to aggregating every raw row.

use crm_core::duration::TimeRange;
use crm_core::report::{GroupBy, ReportTz};
use crm_store::listing::Subject;
use serde_json::{Value, json};

use super::App;
use super::queries::{Params, narrow, subject_filter};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crm_api::access::Principal;

/// The subject's report over the request's window (query names were checked against
/// the endpoint's list by the `Query` extractor), counting only what `principal` may
/// read: a department's viewer sees a user's records from within its subtree only.
pub async fn report(
    app: &App,
    tenant: &Tenant,
    subject: Subject,
    params: &Params,
    principal: &Principal,
) -> HostResult<Value> {
    let range = params.report_range()?;
    let group_by =
        GroupBy::parse(params.get("groupBy").unwrap_or("day")).map_err(|e| e.at("groupBy"))?;
    let tz = match params.get("tz") {
        Some(name) => ReportTz::parse(name).map_err(|e| e.at("tz"))?,
        None => tenant.snapshot.policy.report_tz()?,
    };
    let mut filter = subject_filter(&subject, tenant, range)?;
    narrow(&mut filter, tenant, principal)?;
    let time_tier = tz.time_tier(range.from, range.to);
    // Folded natively while the rows are read, on the store's read thread (off the
    // async runtime): plain arithmetic over stored rows, and a million rows through the
    // component would outlast its call deadline.
    let partials = app
        .store
        .report_partials(tenant.id(), filter, time_tier, group_by, tz)
        .await?;
    let body =
        serde_json::to_value(crm_core::engine::finish(partials)?).map_err(HostError::internal)?;
    Ok(with_subject(body, &subject, range))
}

fn with_subject(mut body: Value, subject: &Subject, range: TimeRange) -> Value {
    if let Some(obj) = body.as_object_mut() {
        match subject {
            Subject::User(id) => obj.insert("userId".to_owned(), json!(id)),
            Subject::Department(id) => obj.insert("departmentId".to_owned(), json!(id)),
            Subject::Tenant => None,
        };
        obj.insert(
            "period".to_owned(),
            json!({ "from": range.from, "to": range.to }),
        );
    }
    body
}
