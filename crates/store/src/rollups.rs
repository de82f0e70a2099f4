//! Hourly rollups: one row per combination of every report dimension, so aggregating
//! rollups gives exactly the report of the raw rows. Written in the transaction of the
//! activities they count; a batch is folded first so each rollup row is touched once.

use std::collections::HashMap;

use crm_core::report::ReportRow;
use crm_core::{Activity, Credits, Timestamp};

use crate::activities::{Filter, clause, outcome};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::sql::{Row, Statement};

/// Stands for "absent" in key columns (which must be NOT NULL to conflict).
const ABSENT: &str = "";

/// The dimensions of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub hour_start: i64,
    pub user_id: String,
    pub department_id: String,
    pub department_path: String,
    pub operation: String,
    pub outcome: &'static str,
    pub entity_type: String,
    pub location: String,
    pub auth_method: String,
    pub ip_address: String,
}

/// What a batch adds to one rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub count: i64,
    pub credits_units: i64,
    pub latest: i64,
}

/// Folds activities into per-key sums, in key order (a stable statement order).
pub fn fold(activities: &[Activity]) -> Vec<(Key, Sums)> {
    let mut groups: HashMap<Key, Sums> = HashMap::new();
    for a in activities {
        let t = a.occurred_at.millis();
        let present = |v: &Option<String>| v.clone().unwrap_or_else(|| ABSENT.to_owned());
        let key = Key {
            hour_start: crm_core::query::hour_start(t),
            user_id: a.user_id.clone(),
            department_id: a.user_context.hierarchy.department_id.clone(),
            department_path: a.user_context.hierarchy.department_path.clone(),
            operation: a.operation.clone(),
            outcome: a.outcome.as_str(),
            entity_type: present(&a.entity_type),
            location: present(&a.compliance.location),
            auth_method: present(&a.compliance.authentication_method),
            ip_address: present(&a.compliance.ip_address),
        };
        let s = groups.entry(key).or_default();
        s.count += 1;
        s.credits_units += a.credits.units();
        s.latest = s.latest.max(t);
    }
    let mut out: Vec<(Key, Sums)> = groups.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Values per rollup row in an upsert.
const ROLLUP_WIDTH: usize = 14;
/// Rollup rows per multi-row upsert at most.
const MAX_ROWS_PER_UPSERT: usize = 500;

/// The upserts adding a folded batch to the stored rollups: multi-row statements (the
/// folded keys are distinct, so no statement touches a row twice).
pub fn upserts(d: Dialect, tenant_id: &str, folded: &[(Key, Sums)]) -> Vec<Statement> {
    let per = (d.max_params() / ROLLUP_WIDTH).clamp(1, MAX_ROWS_PER_UPSERT);
    folded
        .chunks(per)
        .map(|chunk| {
            let sql = format!(
                "INSERT INTO rollups_hourly (tenant_id, hour_start, user_id, department_id, department_path,
                     operation, outcome, entity_type, location, auth_method, ip_address, count, credits_units, latest)
                 VALUES {}
                 ON CONFLICT (tenant_id, hour_start, user_id, department_id, department_path, operation,
                              outcome, entity_type, location, auth_method, ip_address)
                 DO UPDATE SET count = rollups_hourly.count + excluded.count,
                               credits_units = rollups_hourly.credits_units + excluded.credits_units,
                               latest = {}(rollups_hourly.latest, excluded.latest)",
                crate::activities::tuples(chunk.len(), ROLLUP_WIDTH),
                d.greatest()
            );
            let mut params = Vec::with_capacity(chunk.len() * ROLLUP_WIDTH);
            for (k, s) in chunk {
                params.extend([
                    tenant_id.into(),
                    k.hour_start.into(),
                    k.user_id.as_str().into(),
                    k.department_id.as_str().into(),
                    k.department_path.as_str().into(),
                    k.operation.as_str().into(),
                    k.outcome.into(),
                    k.entity_type.as_str().into(),
                    k.location.as_str().into(),
                    k.auth_method.as_str().into(),
                    k.ip_address.as_str().into(),
                    s.count.into(),
                    s.credits_units.into(),
                    s.latest.into(),
                ]);
            }
            d.stmt(&sql, params)
        })
        .collect()
}

/// Rollup rows for whole hours `[f.from, f.to)` (both hour-aligned).
pub fn report_rows(d: Dialect, tenant_id: &str, f: &Filter) -> Statement {
    let c = clause(tenant_id, f, "hour_start");
    let sql = format!(
        "SELECT hour_start, latest, count, user_id, department_id, operation, outcome, entity_type,
                {}, location, auth_method, ip_address
         FROM rollups_hourly WHERE {}",
        d.money("credits_units"),
        c.sql
    );
    d.stmt(&sql, c.params)
}

pub fn decode_report_row(row: &Row) -> StoreResult<ReportRow> {
    let present = |v: Option<String>| v.filter(|s| s != ABSENT);
    Ok(ReportRow {
        occurred_at: Timestamp::from_millis(row.int(0)?)?,
        latest: Some(Timestamp::from_millis(row.int(1)?)?),
        count: row.uint(2)?,
        user_id: row.string(3)?,
        department_id: Some(row.string(4)?),
        operation: row.string(5)?,
        outcome: outcome(row.text(6)?)?,
        entity_type: present(row.opt_string(7)?),
        credits: Credits::from_units(row.int(8)?)?,
        location: present(row.opt_string(9)?),
        authentication_method: present(row.opt_string(10)?),
        ip_address: present(row.opt_string(11)?),
    })
}
