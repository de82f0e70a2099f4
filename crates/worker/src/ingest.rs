//! Writes at the edge: activity ingest (Queue, or D1 directly with `?sync=true`) and
//! directory replacement.

use std::cell::RefCell;

use crm_core::chain::canonical_json;
use crm_core::directory::DirectorySpec;
use crm_core::engine::TenantSnapshot;
use crm_core::ids::IdGenerator;
use crm_core::limits::MAX_BATCH;
use crm_core::{CoreError, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use worker::{Env, Request};

use crate::consumer::{self, Envelope, Written};
use crate::http::{self, Answer, ApiError, ApiResult, Scope};
use crate::store::{self, int, text};

/// Messages per `sendBatch` (the Queues limit).
const QUEUE_BATCH: usize = 100;

thread_local! {
    static IDS: RefCell<IdGenerator> = RefCell::new(IdGenerator::new());
}

fn now() -> ApiResult<Timestamp> {
    Ok(Timestamp::from_millis(
        worker::Date::now().as_millis() as i64
    )?)
}

/// 80 random bits for a ULID; `Math.random` gives 52 per call.
fn random_bits() -> u128 {
    let part = || (js_sys::Math::random() * f64::from(1u32 << 31) * f64::from(1u32 << 9)) as u128;
    (part() << 40) ^ part()
}

pub async fn activities(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(Scope::Ingest)?;
    let params = http::query(req, &["sync"])?;
    let sync = params.get("sync").is_some_and(|v| v == "true");
    let body = http::body(req).await?;
    let (items, single) = match body {
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad_request("the batch is empty"));
        }
        Value::Array(items) if items.len() > MAX_BATCH => {
            return Err(ApiError::new(
                413,
                "too_large",
                format!("a batch holds at most {MAX_BATCH} activities"),
            ));
        }
        Value::Array(items) => (items, false),
        one @ Value::Object(_) => (vec![one], true),
        _ => {
            return Err(ApiError::bad_request(
                "the body must be an activity object or an array of them",
            ));
        }
    };
    let tenant = caller.tenant_id.clone();
    let snap = store::snapshot(env, &tenant).await?;
    let now = now()?;
    let ip = http::client_ip(req);
    let mut envelopes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let generated = IDS.with_borrow_mut(|g| g.next(now, random_bits()));
        let activity = snap
            .enrich_json(&item.to_string(), &generated, now, ip.as_deref())
            .map_err(|e: CoreError| {
                if single {
                    e
                } else {
                    e.within(&format!("[{i}]"))
                }
            })?;
        envelopes.push(Envelope {
            tenant_id: tenant.clone(),
            activity,
            input_hash: hex::encode(Sha256::digest(canonical_json(item).as_bytes())),
            received_at: now.millis(),
        });
    }
    // Conflicts with what is already stored are refused before anything is queued.
    let ids: Vec<String> = envelopes.iter().map(|e| e.activity.id.clone()).collect();
    let existing = store::existing(env, &tenant, &ids).await?;
    if let Some((i, e)) = envelopes.iter().enumerate().find(|(_, e)| {
        existing
            .get(&e.activity.id)
            .is_some_and(|x| x.input_hash != e.input_hash)
    }) {
        let mut err = ApiError::new(
            409,
            "conflict",
            format!(
                "activity `{}` was already recorded with different content",
                e.activity.id
            ),
        );
        err = err.with_details(json!({ "id": e.activity.id, "index": i }));
        return Err(err);
    }
    if sync {
        let outcomes = consumer::write(env, &tenant, envelopes.clone()).await?;
        if outcomes.contains(&Written::Conflict) {
            return Err(ApiError::new(
                409,
                "conflict",
                "an id in this request repeats with different content",
            ));
        }
        let results: Vec<Value> = envelopes
            .iter()
            .zip(&outcomes)
            .map(|(e, o)| json!({ "id": e.activity.id, "duplicate": *o == Written::Duplicate }))
            .collect();
        return Ok(Answer(
            201,
            json!({ "created": outcomes.iter().filter(|o| **o == Written::Stored).count(), "results": results }),
        ));
    }
    let queue = env.queue("ACTIVITIES")?;
    for chunk in envelopes.chunks(QUEUE_BATCH) {
        queue.send_batch(chunk.to_vec()).await?;
    }
    Ok(Answer(
        202,
        json!({ "accepted": envelopes.len(), "ids": ids }),
    ))
}

pub async fn put_directory(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(Scope::Admin)?;
    let spec: DirectorySpec = http::parse(http::body(req).await?)?;
    let head = store::head(env, &caller.tenant_id).await?;
    let directory = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    #[derive(serde::Deserialize)]
    struct Policy {
        policy: String,
    }
    let policy: Policy = store::db(env)?
        .prepare("SELECT policy FROM tenants WHERE id = ?1")
        .bind(&[text(&caller.tenant_id)])?
        .first(None)
        .await?
        .ok_or_else(|| ApiError::not_found("the key's tenant does not exist"))?;
    let version = head.version + 1;
    let snap = TenantSnapshot::from_json(
        &caller.tenant_id,
        u64::try_from(version).map_err(ApiError::internal)?,
        &policy.policy,
        &directory,
    )?;
    let db = store::db(env)?;
    // Guarded like the chain head: a concurrent directory change makes this fail, not overwrite.
    db.batch(vec![
        db.prepare("UPDATE tenants SET version = CASE WHEN version = ?2 THEN ?3 ELSE NULL END, directory = ?4 WHERE id = ?1")
            .bind(&[text(&caller.tenant_id), int(head.version), int(version), text(&directory)])?,
        db.prepare("INSERT INTO tenant_versions (tenant_id, version, policy, directory, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(&[text(&caller.tenant_id), int(version), text(&policy.policy), text(&directory), int(now()?.millis())])?,
    ])
    .await?;
    let d = &snap.directory;
    Ok(Answer(
        200,
        json!({ "version": version, "users": d.user_count(), "departments": d.department_count(),
        "roles": d.role_count(), "permissions": d.permission_count() }),
    ))
}
