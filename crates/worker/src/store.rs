//! D1 access. The schema is the root `migrations/` (shared with crm-host); every query
//! filters by the tenant of the API key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crm_core::engine::TenantSnapshot;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, Env};

use crate::http::{ApiError, ApiResult};

/// D1 binds at most 100 parameters per statement.
pub const MAX_BIND: usize = 90;

pub fn db(env: &Env) -> ApiResult<D1Database> {
    Ok(env.d1("DB")?)
}

pub fn text(v: &str) -> JsValue {
    JsValue::from_str(v)
}

/// Integers travel as JS numbers: exact up to 2^53 (900 billion credits in units).
pub fn int(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

pub fn opt(v: Option<&str>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_str)
}

pub async fn key(env: &Env, hash: &str) -> ApiResult<Option<(String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        tenant_id: String,
        scopes: String,
    }
    let row: Option<Row> = db(env)?
        .prepare(
            "SELECT tenant_id, scopes FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
        )
        .bind(&[text(hash)])?
        .first(None)
        .await?;
    Ok(row.map(|r| (r.tenant_id, r.scopes)))
}

#[derive(Debug, Clone, Deserialize)]
pub struct Head {
    pub version: i64,
    pub balance_units: i64,
    pub head_seq: i64,
    pub head_hash: String,
}

pub async fn head(env: &Env, tenant: &str) -> ApiResult<Head> {
    db(env)?
        .prepare("SELECT version, balance_units, head_seq, head_hash FROM tenants WHERE id = ?1")
        .bind(&[text(tenant)])?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::not_found("the key's tenant does not exist"))
}

thread_local! {
    /// Compiled snapshots of this isolate, checked against the version in D1 per request.
    static SNAPSHOTS: RefCell<HashMap<String, Rc<TenantSnapshot>>> = RefCell::new(HashMap::new());
}

/// The tenant's current snapshot: reused while D1's version is unchanged.
pub async fn snapshot(env: &Env, tenant: &str) -> ApiResult<Rc<TenantSnapshot>> {
    let head = head(env, tenant).await?;
    let version = u64::try_from(head.version).map_err(ApiError::internal)?;
    if let Some(s) =
        SNAPSHOTS.with_borrow(|m| m.get(tenant).filter(|s| s.version == version).cloned())
    {
        return Ok(s);
    }
    #[derive(Deserialize)]
    struct Row {
        policy: String,
        directory: String,
    }
    let row: Row = db(env)?
        .prepare("SELECT policy, directory FROM tenants WHERE id = ?1")
        .bind(&[text(tenant)])?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::not_found("the key's tenant does not exist"))?;
    let snap = Rc::new(TenantSnapshot::from_json(
        tenant,
        version,
        &row.policy,
        &row.directory,
    )?);
    SNAPSHOTS.with_borrow_mut(|m| m.insert(tenant.to_owned(), snap.clone()));
    Ok(snap)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Existing {
    pub id: String,
    pub input_hash: String,
}

/// Stored activities among `ids` (any number; queried in chunks).
pub async fn existing(
    env: &Env,
    tenant: &str,
    ids: &[String],
) -> ApiResult<HashMap<String, Existing>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(MAX_BIND) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "SELECT id, input_hash FROM activities
             WHERE tenant_id = ?1 AND id IN ({})",
            marks.join(", ")
        );
        let mut binds = vec![text(tenant)];
        binds.extend(chunk.iter().map(|id| text(id)));
        let rows: Vec<Existing> = db(env)?
            .prepare(&sql)
            .bind(&binds)?
            .all()
            .await?
            .results()?;
        out.extend(rows.into_iter().map(|r| (r.id.clone(), r)));
    }
    Ok(out)
}
