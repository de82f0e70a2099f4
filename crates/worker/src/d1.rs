//! The D1 driver for `crm-store` statements: bind, run, and hand rows back as
//! `crm_store::Row`s. JavaScript numbers are doubles, so integers beyond 2^53 travel
//! as text both ways (SQLite's integer affinity stores them as integers; the D1
//! dialect selects money as text).

use crm_store::{Dialect, Row, Statement, Value};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

use crate::http::{ApiResult, Failure};
use crate::shards;

pub const DIALECT: Dialect = Dialect::D1;

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A D1 database: the control database or the shard of a tenant.
pub struct Db {
    inner: D1Database,
    shard: u32,
}

impl Db {
    /// The control database (shard 0), which also holds the shard directory.
    pub fn control(env: &Env) -> ApiResult<Db> {
        Db::shard(env, 0).ok_or_else(|| Failure::internal("this worker has no binding DB"))
    }

    /// Shard `n`'s database, if the worker has that shard.
    pub fn shard(env: &Env, n: u32) -> Option<Db> {
        env.d1(&shards::database(n))
            .ok()
            .map(|inner| Db { inner, shard: n })
    }

    pub fn shard_number(&self) -> u32 {
        self.shard
    }

    /// The database of the shard `tenant` is placed on.
    pub async fn of_tenant(env: &Env, tenant: &str) -> ApiResult<Db> {
        let shard = shards::of_tenant(env, tenant).await?;
        Db::shard(env, shard).ok_or_else(|| {
            Failure::internal(format!(
                "a tenant is placed on shard {shard}, but this worker has no binding {}",
                shards::database(shard)
            ))
        })
    }
}

fn bind_value(v: &Value) -> JsValue {
    match v {
        Value::Int(Some(i)) if i.abs() <= MAX_SAFE_INTEGER => JsValue::from_f64(*i as f64),
        Value::Int(Some(i)) => JsValue::from_str(&i.to_string()),
        Value::Text(Some(t)) => JsValue::from_str(t),
        Value::Int(None) | Value::Text(None) => JsValue::NULL,
    }
}

fn prepare(db: &D1Database, st: &Statement) -> ApiResult<D1PreparedStatement> {
    // D1's per-statement limits, enforced here too: `wrangler dev` does not.
    if let Some(why) = DIALECT.refuses(st) {
        return Err(Failure::internal(format!(
            "D1 would refuse a statement: {why}"
        )));
    }
    let binds: Vec<JsValue> = st.params.iter().map(bind_value).collect();
    db.prepare(&st.sql).bind(&binds).map_err(Failure::storage)
}

fn column(v: serde_json::Value) -> ApiResult<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Text(None),
        serde_json::Value::String(s) => Value::Text(Some(s)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(Some(i)),
            // Integral doubles (how D1 hands back every INTEGER column).
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64 => {
                    Value::Int(Some(f as i64))
                }
                _ => {
                    return Err(Failure::internal(format!(
                        "column holds a non-integer number {n}"
                    )));
                }
            },
        },
        other => {
            return Err(Failure::internal(format!(
                "column holds unexpected JSON {other}"
            )));
        }
    })
}

pub async fn query(db: &Db, st: &Statement) -> ApiResult<Vec<Row>> {
    crate::invocation::spend_queries(1)?;
    let rows: Vec<Vec<serde_json::Value>> = prepare(&db.inner, st)?
        .raw()
        .await
        .map_err(Failure::storage)?;
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(column)
                .collect::<ApiResult<Vec<_>>>()
                .map(Row)
        })
        .collect()
}

pub async fn query_opt(db: &Db, st: &Statement) -> ApiResult<Option<Row>> {
    Ok(query(db, st).await?.into_iter().next())
}

/// Runs the statements as one transaction (a D1 batch): all or nothing.
pub async fn transaction(db: &Db, statements: &[Statement]) -> ApiResult<()> {
    write(db, statements).await.map(drop)
}

/// [`transaction`], answering the rows each statement changed.
pub async fn write(db: &Db, statements: &[Statement]) -> ApiResult<Vec<u64>> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    crate::invocation::spend_queries(statements.len())?;
    let prepared = statements
        .iter()
        .map(|st| prepare(&db.inner, st))
        .collect::<ApiResult<Vec<_>>>()?;
    let results = db.inner.batch(prepared).await.map_err(Failure::storage)?;
    let metas = results
        .iter()
        .map(|r| r.meta().ok().flatten())
        .collect::<Vec<_>>();
    // D1 says how large the database is after each statement: the capacity guard's
    // measure, without a query of its own.
    if let Some(size) = metas.last().and_then(|m| m.as_ref()?.size_after) {
        crate::capacity::measured(db.shard, size as u64);
    }
    Ok(metas
        .iter()
        .map(|m| m.as_ref().and_then(|m| m.changes).unwrap_or(0) as u64)
        .collect())
}
