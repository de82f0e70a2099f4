//! Reports: hourly rollups for the whole hours of the window, raw rows for the partial
//! hours at its edges, merged by the core — equal to aggregating every raw row.

use crm_core::duration::TimeRange;
use crm_core::query::split_hours;
use crm_core::report::{GroupBy, ReportTz};
use serde_json::{Value, json};

use super::App;
use super::queries::{Params, Scope};
use crate::error::HostResult;
use crate::store::activities::{self, ActivityFilter};
use crate::store::rollups;

const REPORT_PARAMS: &[&str] = &["since", "from", "to", "groupBy", "tz"];

pub async fn report(
    app: &App,
    tenant_id: &str,
    scope: Scope,
    params: &Params,
) -> HostResult<Value> {
    params.only(REPORT_PARAMS)?;
    let tenant = app.tenants.get(tenant_id).await?;
    let range = params.range()?;
    let group_by = params.get("groupBy").unwrap_or("day").to_owned();
    GroupBy::parse(&group_by).map_err(|e| e.at("groupBy"))?;
    let tz = match params.get("tz") {
        Some(name) => ReportTz::parse(name).map_err(|e| e.at("tz"))?,
        None => tenant.snapshot.policy.report_tz()?,
    };
    let filter = scope.filter(&tenant, range)?;
    let id = tenant_id.to_owned();
    let aligned = tz.hour_aligned(range.from, range.to);
    let (rollup_rows, raw_rows) = app
        .store
        .read(move |c| {
            let split = split_hours(filter.from, filter.to, aligned);
            let window = |(from, to): (i64, i64)| ActivityFilter {
                from,
                to,
                ..filter.clone()
            };
            let rollup_rows = match split.whole {
                Some(w) => rollups::report_rows(c, &id, &window(w))?,
                None => Vec::new(),
            };
            let mut raw = Vec::new();
            for edge in split.raw {
                raw.extend(activities::report_rows(c, &id, &window(edge))?);
            }
            Ok((rollup_rows, raw))
        })
        .await?;
    let body = app
        .engine
        .report(&group_by, tz.name(), &[&rollup_rows, &raw_rows])?;
    Ok(with_scope(body, &scope, range))
}

fn with_scope(mut body: Value, scope: &Scope, range: TimeRange) -> Value {
    if let Some(obj) = body.as_object_mut() {
        match scope {
            Scope::User(id) => obj.insert("userId".to_owned(), json!(id)),
            Scope::Department(id) => obj.insert("departmentId".to_owned(), json!(id)),
            Scope::Tenant => None,
        };
        obj.insert(
            "period".to_owned(),
            json!({ "from": range.from, "to": range.to }),
        );
    }
    body
}
