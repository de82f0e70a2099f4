//! Activity listings with filters, time windows and cursor pagination.

use std::collections::BTreeMap;

use crm_core::duration::TimeRange;

use super::clock;
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crm_store::activities::Filter;
use crm_store::listing::Subject;

/// Query parameters, already checked against the endpoint's list (`crm_api::request`).
#[derive(Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The window of an export: everything unless `since`, `from` or `to` narrow it.
    pub fn export_range(&self) -> HostResult<TimeRange> {
        crm_api::listing::export_range(&self.0, clock::now()).map_err(HostError::Api)
    }

    pub fn range(&self) -> HostResult<TimeRange> {
        crm_api::listing::range(&self.0, clock::now()).map_err(HostError::Api)
    }

    /// The window of a report (at most ten years).
    pub fn report_range(&self) -> HostResult<TimeRange> {
        crm_api::listing::report_range(&self.0, clock::now()).map_err(HostError::Api)
    }
}

/// The filter of a listing or export (`crm_api::listing`, as the edge builds it):
/// `userId`/`departmentId` may narrow a tenant-wide request; `authorize` sees the final
/// subject before anything is read. `range` is the request's time window.
pub fn filter(
    tenant: &Tenant,
    subject: Subject,
    params: &Params,
    range: TimeRange,
    authorize: impl FnOnce(&Subject) -> HostResult<()>,
) -> HostResult<Filter> {
    crm_api::listing::filter(&tenant.snapshot.directory, subject, &params.0, range, |s| {
        authorize(s).map_err(|e| e.to_api())
    })
    .map_err(HostError::Api)
}

/// Narrows `filter` to what `principal` may read (`Principal::narrow_to_view`).
pub fn narrow(
    filter: &mut Filter,
    tenant: &Tenant,
    principal: &crm_api::access::Principal,
) -> HostResult<()> {
    principal
        .narrow_to_view(filter, &tenant.snapshot.directory)
        .map_err(|crm_api::access::Denied(m)| HostError::Forbidden(m))
}
