//! Hourly rollups: written by the writer in the activity's transaction, read by reports
//! for whole hours. One row per combination of every report dimension, so aggregating
//! rollups gives exactly the report of the raw rows.

use std::collections::HashMap;

use crm_core::report::ReportRow;
use crm_core::{Activity, Credits, Outcome, Timestamp};
use rusqlite::{Connection, params, params_from_iter};

use super::activities::{ActivityFilter, filter_clause};
use crate::error::{HostError, HostResult};

/// Stands for "absent" in key columns (which must be NOT NULL to conflict).
const ABSENT: &str = "";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    hour_start: i64,
    user_id: String,
    department_id: String,
    department_path: String,
    operation: String,
    outcome: &'static str,
    entity_type: String,
    location: String,
    auth_method: String,
    ip_address: String,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    count: i64,
    credits_units: i64,
    latest: i64,
}

/// Folds a batch into per-key sums first, so a batch touches each rollup row once.
pub fn add(conn: &Connection, tenant_id: &str, activities: &[Activity]) -> HostResult<()> {
    let mut groups: HashMap<Key, Sums> = HashMap::new();
    for a in activities {
        let t = a.occurred_at.millis();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| ABSENT.to_owned());
        let key = Key {
            hour_start: crm_core::query::hour_start(t),
            user_id: a.user_id.clone(),
            department_id: a.user_context.hierarchy.department_id.clone(),
            department_path: a.user_context.hierarchy.department_path.clone(),
            operation: a.operation.clone(),
            outcome: a.outcome.as_str(),
            entity_type: opt(&a.entity_type),
            location: opt(&a.compliance.location),
            auth_method: opt(&a.compliance.authentication_method),
            ip_address: opt(&a.compliance.ip_address),
        };
        let s = groups.entry(key).or_default();
        s.count += 1;
        s.credits_units += a.credits.units();
        s.latest = s.latest.max(t);
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO rollups_hourly (tenant_id, hour_start, user_id, department_id, department_path,
             operation, outcome, entity_type, location, auth_method, ip_address, count, credits_units, latest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (tenant_id, hour_start, user_id, department_id, department_path, operation,
                      outcome, entity_type, location, auth_method, ip_address)
         DO UPDATE SET count = count + excluded.count,
                       credits_units = credits_units + excluded.credits_units,
                       latest = MAX(latest, excluded.latest)",
    )?;
    for (k, s) in groups {
        stmt.execute(params![
            tenant_id,
            k.hour_start,
            k.user_id,
            k.department_id,
            k.department_path,
            k.operation,
            k.outcome,
            k.entity_type,
            k.location,
            k.auth_method,
            k.ip_address,
            s.count,
            s.credits_units,
            s.latest
        ])?;
    }
    Ok(())
}

/// Rollup rows for whole hours `[f.from, f.to)` (both hour-aligned).
pub fn report_rows(
    conn: &Connection,
    tenant_id: &str,
    f: &ActivityFilter,
) -> HostResult<Vec<ReportRow>> {
    let (sql, args) = filter_clause(tenant_id, f, "hour_start");
    let query = format!(
        "SELECT hour_start, latest, count, user_id, department_id, operation, outcome, entity_type,
                credits_units, location, auth_method, ip_address
         FROM rollups_hourly WHERE {sql}"
    );
    let mut stmt = conn.prepare_cached(&query)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    let present = |v: String| if v == ABSENT { None } else { Some(v) };
    while let Some(r) = rows.next()? {
        let outcome: String = r.get(6)?;
        let count: i64 = r.get(2)?;
        out.push(ReportRow {
            occurred_at: Timestamp::from_millis(r.get(0)?)?,
            latest: Some(Timestamp::from_millis(r.get(1)?)?),
            count: u64::try_from(count).map_err(HostError::internal)?,
            user_id: r.get(3)?,
            department_id: Some(r.get(4)?),
            operation: r.get(5)?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| {
                HostError::internal(anyhow::anyhow!("stored outcome `{outcome}`"))
            })?,
            entity_type: present(r.get(7)?),
            credits: Credits::from_units(r.get(8)?)?,
            location: present(r.get(9)?),
            authentication_method: present(r.get(10)?),
            ip_address: present(r.get(11)?),
        });
    }
    Ok(out)
}
