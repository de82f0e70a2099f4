//! Activity rows: insertion (by the writer), lookups, filtered pages, report rows.

pub use crm_core::query::Cursor;
use crm_core::report::ReportRow;
use crm_core::{Activity, Credits, Outcome, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;

use crate::error::{HostError, HostResult};

/// What a stored activity answers to a replay of the same id.
#[derive(Debug, Clone)]
pub struct Existing {
    pub input_hash: String,
    pub seq: u64,
    pub outcome: String,
    pub credits_units: i64,
    pub hash: String,
    pub occurred_at: i64,
}

pub fn find(conn: &Connection, tenant_id: &str, id: &str) -> HostResult<Option<Existing>> {
    Ok(conn
        .prepare_cached(
            "SELECT input_hash, seq, outcome, credits_units, hash, occurred_at
             FROM activities WHERE tenant_id = ?1 AND id = ?2",
        )?
        .query_row(params![tenant_id, id], |r| {
            Ok(Existing {
                input_hash: r.get(0)?,
                seq: r.get(1)?,
                outcome: r.get(2)?,
                credits_units: r.get(3)?,
                hash: r.get(4)?,
                occurred_at: r.get(5)?,
            })
        })
        .optional()?)
}

pub fn insert(
    conn: &Connection,
    a: &Activity,
    input_hash: &str,
    received_at: i64,
) -> HostResult<()> {
    let body = serde_json::to_string(a).map_err(HostError::internal)?;
    let h = &a.user_context.hierarchy;
    conn.prepare_cached(
        "INSERT INTO activities (tenant_id, id, seq, occurred_at, received_at, user_id, department_id,
             department_path, operation, outcome, entity_type, entity_id, credits_units, session_id,
             ip_address, location, auth_method, input_hash, prev_hash, hash, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        a.tenant_id,
        a.id,
        a.seq,
        a.occurred_at.millis(),
        received_at,
        a.user_id,
        h.department_id,
        h.department_path,
        a.operation,
        a.outcome.as_str(),
        a.entity_type,
        a.entity_id,
        a.credits.units(),
        a.session_id,
        a.compliance.ip_address,
        a.compliance.location,
        a.compliance.authentication_method,
        input_hash,
        a.prev_hash,
        a.hash,
        body,
    ])?;
    Ok(())
}

/// Which activities to list. `department_path` selects the whole subtree.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub user_id: Option<String>,
    pub department_path: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub activities: Vec<Value>,
    pub next_cursor: Option<Cursor>,
}

/// Upper bound (exclusive) of a path prefix range: `/a/b/` → `/a/b0` (`0` follows `/`).
fn path_range_end(prefix: &str) -> String {
    let mut end = prefix.trim_end_matches('/').to_owned();
    end.push('0');
    end
}

/// WHERE clause and parameters shared by listings and raw report rows.
pub(super) fn filter_clause(
    tenant_id: &str,
    f: &ActivityFilter,
    time_col: &str,
) -> (String, Vec<SqlValue>) {
    let mut sql = format!("tenant_id = ?1 AND {time_col} >= ?2 AND {time_col} < ?3");
    let mut args: Vec<SqlValue> = vec![tenant_id.to_owned().into(), f.from.into(), f.to.into()];
    let mut push = |clause: &str, v: SqlValue, sql: &mut String| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(u) = &f.user_id {
        push("user_id =", u.clone().into(), &mut sql);
    }
    if let Some(p) = &f.department_path {
        push("department_path >=", p.clone().into(), &mut sql);
        push("department_path <", path_range_end(p).into(), &mut sql);
    }
    if let Some(op) = &f.operation {
        push("operation =", op.clone().into(), &mut sql);
    }
    if let Some(o) = f.outcome {
        push("outcome =", o.as_str().to_owned().into(), &mut sql);
    }
    (sql, args)
}

pub fn page(
    conn: &Connection,
    tenant_id: &str,
    f: &ActivityFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> HostResult<ActivityPage> {
    let (mut sql, mut args) = filter_clause(tenant_id, f, "occurred_at");
    if let Some(c) = cursor {
        args.push(c.occurred_at.into());
        let t = args.len();
        args.push(i64::try_from(c.seq).unwrap_or(i64::MAX).into());
        sql.push_str(&format!(
            " AND (occurred_at < ?{t} OR (occurred_at = ?{t} AND seq < ?{}))",
            args.len()
        ));
    }
    let query = format!(
        "SELECT body, occurred_at, seq FROM activities WHERE {sql} ORDER BY occurred_at DESC, seq DESC LIMIT {}",
        limit + 1
    );
    let mut stmt = conn.prepare_cached(&query)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut activities = Vec::new();
    let mut last = None;
    let mut more = false;
    while let Some(r) = rows.next()? {
        if activities.len() == limit {
            more = true;
            break;
        }
        let body: String = r.get(0)?;
        activities.push(serde_json::from_str(&body).map_err(HostError::internal)?);
        last = Some(Cursor {
            occurred_at: r.get(1)?,
            seq: r.get(2)?,
        });
    }
    Ok(ActivityPage {
        activities,
        next_cursor: if more { last } else { None },
    })
}

/// Raw rows for a report over `[f.from, f.to)`.
pub fn report_rows(
    conn: &Connection,
    tenant_id: &str,
    f: &ActivityFilter,
) -> HostResult<Vec<ReportRow>> {
    let (sql, args) = filter_clause(tenant_id, f, "occurred_at");
    let query = format!(
        "SELECT occurred_at, user_id, department_id, operation, outcome, entity_type, credits_units,
                location, auth_method, ip_address
         FROM activities WHERE {sql}"
    );
    let mut stmt = conn.prepare_cached(&query)?;
    let rows = stmt.query_map(params_from_iter(args), raw_row)?;
    rows.map(|r| r?.map_err(HostError::internal)).collect()
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<anyhow::Result<ReportRow>> {
    let outcome: String = r.get(4)?;
    let occurred: i64 = r.get(0)?;
    let credits: i64 = r.get(6)?;
    Ok((|| {
        Ok(ReportRow {
            occurred_at: Timestamp::from_millis(occurred)?,
            latest: None,
            count: 1,
            user_id: r.get(1)?,
            department_id: Some(r.get(2)?),
            operation: r.get(3)?,
            outcome: Outcome::parse(&outcome)
                .ok_or_else(|| anyhow::anyhow!("stored outcome `{outcome}`"))?,
            entity_type: r.get(5)?,
            credits: Credits::from_units(credits)?,
            location: r.get(7)?,
            authentication_method: r.get(8)?,
            ip_address: r.get(9)?,
        })
    })())
}
