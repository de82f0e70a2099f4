//! Reads at the edge: directory, permission checks, balance, listings and reports —
//! the same shapes as crm-host, aggregated by the same core code.

use std::collections::BTreeMap;

use crm_core::duration::{Since, TimeRange};
use crm_core::limits::MAX_CHECK_BATCH;
use crm_core::permission::CheckRequest;
use crm_core::query::{Cursor, split_hours};
use crm_core::report::{GroupBy, ReportRow, ReportTz};
use crm_core::{Credits, Outcome, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use worker::{Env, Request};

use crate::http::{self, Answer, ApiError, ApiResult, Scope as KeyScope};
use crate::store::{self, int, text};

const DEFAULT_WINDOW: &str = "30d";
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

pub enum Scope {
    Tenant,
    User(String),
    Department(String),
}

pub async fn directory(req: &Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(KeyScope::Read)?;
    #[derive(Deserialize)]
    struct Row {
        version: i64,
        directory: String,
    }
    let row: Row = store::db(env)?
        .prepare("SELECT version, directory FROM tenants WHERE id = ?1")
        .bind(&[text(&caller.tenant_id)])?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::not_found("the key's tenant does not exist"))?;
    let directory: Value = serde_json::from_str(&row.directory).map_err(ApiError::internal)?;
    Ok(Answer(
        200,
        json!({ "version": row.version, "directory": directory }),
    ))
}

pub async fn check(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    let body = http::body(req).await?;
    let snap = store::snapshot(env, &caller.tenant_id).await?;
    if let Some(checks) = body.get("checks") {
        let checks: Vec<CheckRequest> = http::parse(checks.clone())?;
        if checks.len() > MAX_CHECK_BATCH {
            return Err(ApiError::new(
                413,
                "too_large",
                format!("at most {MAX_CHECK_BATCH} checks per request"),
            ));
        }
        return Ok(Answer(
            200,
            json!({ "decisions": snap.directory.check_batch(&checks)? }),
        ));
    }
    let one: CheckRequest = http::parse(body)?;
    Ok(Answer(
        200,
        serde_json::to_value(snap.directory.check(&one.user_id, &one.permission)?)
            .map_err(ApiError::internal)?,
    ))
}

pub async fn balance(req: &Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(KeyScope::Read)?;
    let head = store::head(env, &caller.tenant_id).await?;
    Ok(Answer(
        200,
        json!({ "balance": Credits::from_units(head.balance_units)? }),
    ))
}

/// The conformance vectors' entry point, enabled only where `CONFORMANCE = "on"` (tests).
pub async fn conformance(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    if env
        .var("CONFORMANCE")
        .map(|v| v.to_string())
        .unwrap_or_default()
        != "on"
    {
        return Err(ApiError::not_found("no such endpoint"));
    }
    let body = http::body(req).await?;
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let answer = crm_core::json_api::evaluate_json(
        &get("setup").to_string(),
        get("op").as_str().unwrap_or_default(),
        &get("input").to_string(),
    );
    Ok(Answer(
        200,
        serde_json::from_str(&answer).map_err(ApiError::internal)?,
    ))
}

/// WHERE clause over a tenant, a time column and the scope/filters.
struct Filter {
    sql: String,
    binds: Vec<JsValue>,
}

impl Filter {
    fn new(tenant: &str, time_col: &str, from: i64, to: i64) -> Filter {
        Filter {
            sql: format!("tenant_id = ?1 AND {time_col} >= ?2 AND {time_col} < ?3"),
            binds: vec![text(tenant), int(from), int(to)],
        }
    }

    fn and(&mut self, clause: &str, v: JsValue) {
        self.binds.push(v);
        self.sql
            .push_str(&format!(" AND {clause} ?{}", self.binds.len()));
    }
}

/// Resolves the scope against the tenant's directory (unknown or foreign ids are 404).
async fn scoped(env: &Env, tenant: &str, scope: &Scope, filter: &mut Filter) -> ApiResult<()> {
    let snap = store::snapshot(env, tenant).await?;
    let dir = &snap.directory;
    match scope {
        Scope::Tenant => {}
        Scope::User(id) => {
            dir.user(id).ok_or_else(|| {
                ApiError::not_found(format!("no user `{}`", crm_core::time::clip(id)))
            })?;
            filter.and("user_id =", text(id));
        }
        Scope::Department(id) => {
            let dept = dir.department(id).ok_or_else(|| {
                ApiError::not_found(format!("no department `{}`", crm_core::time::clip(id)))
            })?;
            let path = dir.department_path(dept);
            let end = format!("{}0", path.trim_end_matches('/'));
            filter.and("department_path >=", text(&path));
            filter.and("department_path <", text(&end));
        }
    }
    Ok(())
}

fn range(params: &BTreeMap<String, String>) -> ApiResult<TimeRange> {
    let now = Timestamp::from_millis(worker::Date::now().as_millis() as i64)?;
    let get = |k: &str| params.get(k).map(String::as_str);
    Ok(TimeRange::resolve(
        get("since"),
        get("from"),
        get("to"),
        Since::parse(DEFAULT_WINDOW)?,
        now,
    )?)
}

pub async fn list(req: &Request, env: &Env, scope: Scope) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(KeyScope::Read)?;
    let params = http::query(
        req,
        &[
            "userId",
            "departmentId",
            "operation",
            "outcome",
            "since",
            "from",
            "to",
            "limit",
            "cursor",
        ],
    )?;
    let scope = match (scope, params.get("userId"), params.get("departmentId")) {
        (Scope::Tenant, Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `userId` or `departmentId`, not both",
            ));
        }
        (Scope::Tenant, Some(u), None) => Scope::User(u.clone()),
        (Scope::Tenant, None, Some(d)) => Scope::Department(d.clone()),
        (s, None, None) => s,
        _ => {
            return Err(ApiError::bad_request(
                "the path already names the user or department",
            ));
        }
    };
    let r = range(&params)?;
    let mut f = Filter::new(
        &caller.tenant_id,
        "occurred_at",
        r.from.millis(),
        r.to.millis(),
    );
    scoped(env, &caller.tenant_id, &scope, &mut f).await?;
    if let Some(op) = params.get("operation") {
        crm_core::names::validate_operation("operation", op)?;
        f.and("operation =", text(op));
    }
    if let Some(o) = params.get("outcome") {
        let o = Outcome::parse(o).ok_or_else(|| {
            ApiError::bad_request(
                "`outcome` must be success, denied, failed or insufficient_credits",
            )
        })?;
        f.and("outcome =", text(o.as_str()));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("`limit` must be 1..={MAX_LIMIT}")))?,
    };
    if let Some(c) = params.get("cursor") {
        let c = Cursor::decode(c)?;
        f.binds.push(int(c.occurred_at));
        let ti = f.binds.len();
        f.binds.push(int(i64::try_from(c.seq).unwrap_or(i64::MAX)));
        f.sql.push_str(&format!(
            " AND (occurred_at < ?{ti} OR (occurred_at = ?{ti} AND seq < ?{}))",
            f.binds.len()
        ));
    }
    #[derive(Deserialize)]
    struct Row {
        body: String,
        occurred_at: i64,
        seq: i64,
    }
    let sql = format!(
        "SELECT body, occurred_at, seq FROM activities WHERE {} ORDER BY occurred_at DESC, seq DESC LIMIT {}",
        f.sql,
        limit + 1
    );
    let rows: Vec<Row> = store::db(env)?
        .prepare(&sql)
        .bind(&f.binds)?
        .all()
        .await?
        .results()?;
    let more = rows.len() > limit;
    let mut activities = Vec::with_capacity(limit);
    let mut next = None;
    for row in rows.into_iter().take(limit) {
        activities.push(serde_json::from_str::<Value>(&row.body).map_err(ApiError::internal)?);
        let seq = u64::try_from(row.seq).map_err(ApiError::internal)?;
        next = Some(
            Cursor {
                occurred_at: row.occurred_at,
                seq,
            }
            .encode(),
        );
    }
    Ok(Answer(
        200,
        json!({ "activities": activities, "nextCursor": if more { next } else { None } }),
    ))
}

#[derive(Deserialize)]
struct RowOut {
    occurred_at: i64,
    latest: Option<i64>,
    count: i64,
    user_id: String,
    department_id: String,
    operation: String,
    outcome: String,
    entity_type: Option<String>,
    credits_units: i64,
    location: Option<String>,
    auth_method: Option<String>,
    ip_address: Option<String>,
}

impl RowOut {
    fn into_row(self) -> ApiResult<ReportRow> {
        let present = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(ReportRow {
            occurred_at: Timestamp::from_millis(self.occurred_at)?,
            latest: self.latest.map(Timestamp::from_millis).transpose()?,
            count: u64::try_from(self.count).map_err(ApiError::internal)?,
            user_id: self.user_id,
            department_id: Some(self.department_id),
            operation: self.operation,
            outcome: Outcome::parse(&self.outcome)
                .ok_or_else(|| ApiError::internal("stored outcome"))?,
            entity_type: present(self.entity_type),
            credits: Credits::from_units(self.credits_units)?,
            location: present(self.location),
            authentication_method: present(self.auth_method),
            ip_address: present(self.ip_address),
        })
    }
}

async fn rows(env: &Env, sql: String, f: &Filter) -> ApiResult<Vec<ReportRow>> {
    let out: Vec<RowOut> = store::db(env)?
        .prepare(&sql)
        .bind(&f.binds)?
        .all()
        .await?
        .results()?;
    out.into_iter().map(RowOut::into_row).collect()
}

pub async fn report(req: &Request, env: &Env, scope: Scope) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(KeyScope::Read)?;
    let params = http::query(req, &["since", "from", "to", "groupBy", "tz"])?;
    let tenant = caller.tenant_id.clone();
    let r = range(&params)?;
    let group = params
        .get("groupBy")
        .cloned()
        .unwrap_or_else(|| "day".to_owned());
    GroupBy::parse(&group).map_err(|e| e.at("groupBy"))?;
    let snap = store::snapshot(env, &tenant).await?;
    let tz = match params.get("tz") {
        Some(name) => ReportTz::parse(name).map_err(|e| e.at("tz"))?,
        None => snap.policy.report_tz()?,
    };
    let split = split_hours(
        r.from.millis(),
        r.to.millis(),
        tz.hour_aligned(r.from, r.to),
    );
    let raw_sql = |f: &Filter| {
        format!(
            "SELECT occurred_at, NULL AS latest, 1 AS count, user_id, department_id, operation, outcome, entity_type,
                    credits_units, location, auth_method, ip_address FROM activities WHERE {}",
            f.sql
        )
    };
    let mut parts = Vec::new();
    if let Some((first_hour, last_hour)) = split.whole {
        let mut whole = Filter::new(&tenant, "hour_start", first_hour, last_hour);
        scoped(env, &tenant, &scope, &mut whole).await?;
        let sql = format!(
            "SELECT hour_start AS occurred_at, latest, count, user_id, department_id, operation, outcome, entity_type,
                    credits_units, location, auth_method, ip_address FROM rollups_hourly WHERE {}",
            whole.sql
        );
        parts.push(rows(env, sql, &whole).await?);
    }
    for (a, b) in split.raw {
        let mut f = Filter::new(&tenant, "occurred_at", a, b);
        scoped(env, &tenant, &scope, &mut f).await?;
        parts.push(rows(env, raw_sql(&f), &f).await?);
    }
    let partials = parts
        .iter()
        .map(|p| crm_core::engine::aggregate(&group, tz.name(), p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body =
        serde_json::to_value(crm_core::engine::finish(partials)?).map_err(ApiError::internal)?;
    if let Some(obj) = body.as_object_mut() {
        match &scope {
            Scope::User(id) => obj.insert("userId".to_owned(), json!(id)),
            Scope::Department(id) => obj.insert("departmentId".to_owned(), json!(id)),
            Scope::Tenant => None,
        };
        obj.insert("period".to_owned(), json!({ "from": r.from, "to": r.to }));
    }
    Ok(Answer(200, body))
}
