//! Listings: the subject a listing or report is about, newest-first pages with a
//! cursor, and the raw bodies they return.

use crm_core::directory::CompiledDirectory;
use crm_core::duration::TimeRange;
use crm_core::query::Cursor;
use serde_json::value::RawValue;

use crate::activities::{Filter, listing_clause};
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, seq};

/// What a listing or a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The whole tenant.
    Tenant,
    /// One user.
    User(String),
    /// A department and every department below it.
    Department(String),
}

/// The `limit` query parameter: `default` when absent, else 1..=`max`.
pub fn limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, crm_core::CoreError> {
    match text {
        None => Ok(default),
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                crm_core::CoreError::invalid("limit", format!("`limit` must be 1..={max}"))
            }),
    }
}

/// The summary of a page of activities (a dashboard's "recent" section).
pub fn recent_summary(page: &Page) -> StoreResult<crm_core::report::RecentSummary> {
    let rows = page
        .activities
        .iter()
        .map(|raw| {
            serde_json::from_str::<crm_core::Activity>(raw.get())
                .map(|a| crm_core::report::ReportRow::from(&a))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::corrupt)?;
    Ok(crm_core::report::recent_summary(&rows)?)
}

/// A request that names its subject twice or in two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousSubject(pub &'static str);

impl Subject {
    /// A tenant-wide request narrowed by its `userId` or `departmentId` parameter.
    pub fn narrowed(
        self,
        user_id: Option<&str>,
        department_id: Option<&str>,
    ) -> Result<Subject, AmbiguousSubject> {
        match (self, user_id, department_id) {
            (Subject::Tenant, Some(_), Some(_)) => Err(AmbiguousSubject(
                "give `userId` or `departmentId`, not both",
            )),
            (Subject::Tenant, Some(u), None) => Ok(Subject::User(u.to_owned())),
            (Subject::Tenant, None, Some(d)) => Ok(Subject::Department(d.to_owned())),
            (subject, None, None) => Ok(subject),
            _ => Err(AmbiguousSubject(
                "the path already names the user or department",
            )),
        }
    }
}

/// A subject that the tenant's directory does not have (404, exactly like an id of
/// another tenant, so ids of other tenants cannot be probed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSubject(pub String);

impl Subject {
    /// The filter for this subject over `range`, resolved once against the directory:
    /// a user must exist; a department becomes its path (the subtree's index range).
    pub fn filter(
        &self,
        dir: &CompiledDirectory,
        range: TimeRange,
    ) -> Result<Filter, UnknownSubject> {
        let mut f = Filter {
            from: range.from.millis(),
            to: range.to.millis(),
            ..Filter::default()
        };
        match self {
            Subject::Tenant => {}
            Subject::User(id) => {
                dir.user(id).ok_or_else(|| {
                    UnknownSubject(format!("no user `{}`", crm_core::time::clip(id)))
                })?;
                f.user_id = Some(id.clone());
            }
            Subject::Department(id) => {
                let dept = dir.department(id).ok_or_else(|| {
                    UnknownSubject(format!("no department `{}`", crm_core::time::clip(id)))
                })?;
                f.department_path = Some(dir.department_path(dept));
            }
        }
        Ok(f)
    }
}

/// The page after `cursor` (newest first), one row more than `limit` to know whether
/// another page follows.
pub fn page(
    d: Dialect,
    tenant_id: &str,
    f: &Filter,
    cursor: Option<Cursor>,
    limit: usize,
) -> Statement {
    let mut c = listing_clause(d, tenant_id, f);
    if let Some(cur) = cursor {
        c.params.push(cur.occurred_at.into());
        let t = c.params.len();
        c.params.push(seq(cur.seq));
        c.sql.push_str(&format!(
            " AND (occurred_at < ?{t} OR (occurred_at = ?{t} AND seq < ?{}))",
            c.params.len()
        ));
    }
    let sql = format!(
        "SELECT body, occurred_at, seq, {} FROM activities WHERE {} ORDER BY occurred_at DESC, seq DESC LIMIT {}",
        crate::subject_keys::KEY_MATERIAL,
        c.sql,
        limit + 1
    );
    d.stmt(&sql, c.params)
}

/// A page of activity records as readers see them: as stored (and hashed), personal
/// fields opened with their subject's key or erased.
#[derive(Debug)]
pub struct Page {
    pub activities: Vec<Box<RawValue>>,
    pub next_cursor: Option<Cursor>,
}

pub fn decode_page(rows: &[Row], limit: usize) -> StoreResult<Page> {
    let mut activities = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for row in rows.iter().take(limit) {
        let body = crate::subject_keys::open_body(row.string(0)?, row.opt_text(3)?)?;
        activities
            .push(RawValue::from_string(body).map_err(|e| StoreError::decode(e.to_string()))?);
        last = Some(Cursor {
            occurred_at: row.int(1)?,
            seq: row.uint(2)?,
        });
    }
    Ok(Page {
        activities,
        next_cursor: if rows.len() > limit { last } else { None },
    })
}
