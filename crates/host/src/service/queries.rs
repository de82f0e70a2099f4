//! Activity listings with filters, time windows and cursor pagination.

use std::collections::BTreeMap;

use crm_core::Outcome;
use crm_core::duration::{Since, TimeRange};

use super::{App, clock};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crate::store::activities::{self, ActivityFilter, ActivityPage, Cursor};

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

/// Where a listing or report looks: one user, or a department subtree.
#[derive(Debug, Clone)]
pub enum Scope {
    Tenant,
    User(String),
    Department(String),
}

impl Scope {
    /// Checks the user/department exists in the tenant's directory (so another
    /// tenant's ids answer 404 like any unknown id) and builds the filter.
    pub fn filter(&self, tenant: &Tenant, range: TimeRange) -> HostResult<ActivityFilter> {
        let dir = &tenant.snapshot.directory;
        let mut f = ActivityFilter {
            from: range.from.millis(),
            to: range.to.millis(),
            ..ActivityFilter::default()
        };
        match self {
            Scope::Tenant => {}
            Scope::User(id) => {
                dir.user(id).ok_or_else(|| {
                    HostError::NotFound(format!("no user `{}`", crm_core::time::clip(id)))
                })?;
                f.user_id = Some(id.clone());
            }
            Scope::Department(id) => {
                let dept = dir.department(id).ok_or_else(|| {
                    HostError::NotFound(format!("no department `{}`", crm_core::time::clip(id)))
                })?;
                f.department_path = Some(dir.department_path(dept));
            }
        }
        Ok(f)
    }
}

const LIST_PARAMS: &[&str] = &[
    "userId",
    "departmentId",
    "operation",
    "outcome",
    "since",
    "from",
    "to",
    "limit",
    "cursor",
];

pub async fn list(
    app: &App,
    tenant_id: &str,
    scope: Scope,
    params: &Params,
) -> HostResult<ActivityPage> {
    params.only(LIST_PARAMS)?;
    let tenant = app.tenants.get(tenant_id).await?;
    let scope = match (scope, params.get("userId"), params.get("departmentId")) {
        (Scope::Tenant, Some(_), Some(_)) => {
            return Err(HostError::BadRequest(
                "give `userId` or `departmentId`, not both".to_owned(),
            ));
        }
        (Scope::Tenant, Some(u), None) => Scope::User(u.to_owned()),
        (Scope::Tenant, None, Some(d)) => Scope::Department(d.to_owned()),
        (scope, None, None) => scope,
        _ => {
            return Err(HostError::BadRequest(
                "the path already names the user or department".to_owned(),
            ));
        }
    };
    let mut filter = scope.filter(&tenant, params.range()?)?;
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
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| HostError::BadRequest(format!("`limit` must be 1..={MAX_LIMIT}")))?,
    };
    let cursor = params.get("cursor").map(Cursor::decode).transpose()?;
    let id = tenant_id.to_owned();
    app.store
        .read(move |c| activities::page(c, &id, &filter, cursor, limit))
        .await
}
