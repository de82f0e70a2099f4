//! Reports: per-dimension rollups for the whole hours of the window, raw rows for the
//! partial hours at its edges, merged by the core — equal to aggregating every raw row.

use crm_api::access::Principal;
use crm_api::reports::{self, Report, ReportRequest};
use crm_store::listing::Subject;

use super::queries::{Params, narrow, subject_filter};
use super::{App, clock};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};

/// The subject's report over the request's window (query names were checked against
/// the endpoint's list by the `Query` extractor), counting only what `principal` may
/// read: a department's viewer sees a user's records from within its subtree only.
pub async fn report(
    app: &App,
    tenant: &Tenant,
    subject: Subject,
    params: &Params,
    principal: &Principal,
) -> HostResult<Report> {
    let req = ReportRequest::parse(&params.0, clock::now(), &tenant.snapshot.policy)
        .map_err(HostError::Api)?;
    let mut filter = subject_filter(&subject, tenant, req.range)?;
    narrow(&mut filter, tenant, principal)?;
    let time_tier = req.tz.time_tier(req.range.from, req.range.to);
    // Folded natively while the rows are read, on the store's read thread (off the
    // async runtime): plain arithmetic over stored rows, and a million rows through the
    // component would outlast its call deadline.
    let details = req.include_user_details.then(|| filter.clone());
    let partials = app
        .store
        .report_partials(tenant.id(), filter, time_tier, req.group_by, req.tz)
        .await?;
    let dir = &tenant.snapshot.directory;
    let mut report = Report::new(partials, &subject, req.range, dir)?;
    if let Some(filter) = details {
        let page = app
            .store
            .page(tenant.id(), filter, None, reports::USER_DETAIL_PAGE)
            .await?;
        report.user_details = Some(reports::user_details(&page, dir)?);
    }
    Ok(report)
}
