//! Activity listings with filters, time windows and cursor pagination.

use std::collections::BTreeMap;

use crm_core::duration::{Since, TimeRange};
use crm_core::{Outcome, Timestamp};

use super::{App, clock};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crm_core::query::Cursor;
use crm_store::activities::Filter;
use crm_store::listing::{AmbiguousSubject, Page, Subject, UnknownSubject};

/// Window when the client gives none.
const DEFAULT_WINDOW: &str = "30d";
/// Page size when the client gives none, and the most it may ask for.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Query parameters, checked strictly: an unknown parameter is an error, not ignored.
#[derive(Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn only(&self, allowed: &[&str]) -> HostResult<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(HostError::BadRequest(format!(
                "unknown query parameter `{}`; allowed: {}",
                crm_core::time::clip(k),
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The window of an export: everything unless `since`, `from` or `to` narrow it.
    pub fn export_range(&self) -> HostResult<TimeRange> {
        if ["since", "from", "to"]
            .iter()
            .any(|k| self.get(k).is_some())
        {
            return self.range();
        }
        Ok(TimeRange {
            from: Timestamp::from_millis(crm_core::time::MIN_TIMESTAMP_MS)?,
            to: Timestamp::from_millis(crm_core::time::MAX_TIMESTAMP_MS)?,
        })
    }

    pub fn range(&self) -> HostResult<TimeRange> {
        let default = Since::parse(DEFAULT_WINDOW).expect("the default window parses");
        Ok(TimeRange::resolve(
            self.get("since"),
            self.get("from"),
            self.get("to"),
            default,
            clock::now(),
        )?)
    }
}

/// The subject's filter over `range`, resolved once against the tenant's directory;
/// an id the directory lacks (another tenant's included) is 404.
pub fn subject_filter(subject: &Subject, tenant: &Tenant, range: TimeRange) -> HostResult<Filter> {
    subject
        .filter(&tenant.snapshot.directory, range)
        .map_err(|UnknownSubject(message)| HostError::NotFound(message))
}

/// The filter of a listing or export: `userId`/`departmentId` may narrow a
/// tenant-wide request; `authorize` sees the final subject before anything is read.
/// `range` is the request's time window.
pub fn filter(
    tenant: &Tenant,
    subject: Subject,
    params: &Params,
    range: TimeRange,
    authorize: impl FnOnce(&Subject) -> HostResult<()>,
) -> HostResult<Filter> {
    let subject = subject
        .narrowed(params.get("userId"), params.get("departmentId"))
        .map_err(|AmbiguousSubject(m)| HostError::BadRequest(m.to_owned()))?;
    authorize(&subject)?;
    let mut filter = subject_filter(&subject, tenant, range)?;
    if let Some(op) = params.get("operation") {
        crm_core::names::validate_operation("operation", op)?;
        filter.operation = Some(op.to_owned());
    }
    if let Some(o) = params.get("outcome") {
        filter.outcome = Some(Outcome::parse(o).ok_or_else(|| {
            HostError::BadRequest(
                "`outcome` must be success, denied, failed or insufficient_credits".to_owned(),
            )
        })?);
    }
    Ok(filter)
}

/// A page of `subject`'s activities (see [`filter`]).
pub async fn list(
    app: &App,
    tenant: &Tenant,
    subject: Subject,
    params: &Params,
    authorize: impl FnOnce(&Subject) -> HostResult<()>,
) -> HostResult<Page> {
    params.only(crm_api::endpoints::LIST_QUERY)?;
    let filter = filter(tenant, subject, params, params.range()?, authorize)?;
    let limit = crm_store::listing::limit(params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let cursor = params.get("cursor").map(Cursor::decode).transpose()?;
    app.store.page(tenant.id(), filter, cursor, limit).await
}
