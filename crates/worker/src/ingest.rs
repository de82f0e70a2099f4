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

use crm_core::api_error::ApiCode;
use crm_store::ingest::{self as plan, Candidate, IdConflict};
use crm_store::keys::KeyScope;
use crm_store::tenants;

use crate::consumer::{self, Envelope};
use crate::d1::{self, DIALECT};
use crate::http::{self, Answer, ApiResult, Failure};
use crate::store;

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
    caller.require(KeyScope::Ingest)?;
    let params = http::query(req, &["sync"])?;
    let sync = params.get("sync").is_some_and(|v| v == "true");
    let body = http::body(req).await?;
    let (items, single) = match body {
        Value::Array(items) if items.is_empty() => {
            return Err(Failure::bad_request("the batch is empty"));
        }
        Value::Array(items) if items.len() > MAX_BATCH => {
            return Err(Failure::too_large(format!(
                "a batch holds at most {MAX_BATCH} activities"
            )));
        }
        Value::Array(items) => (items, false),
        one @ Value::Object(_) => (vec![one], true),
        _ => {
            return Err(Failure::bad_request(
                "the body must be an activity object or an array of them",
            ));
        }
    };
    let tenant = caller.tenant().to_owned();
    let snap = store::snapshot(env, &caller).await?;
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
    if sync {
        let stored = consumer::write(env, &tenant, &envelopes)
            .await?
            .map_err(|c| conflict(&c))?;
        let created = stored.iter().filter(|s| !s.duplicate).count();
        return Ok(Answer(
            if created == 0 { 200 } else { 201 },
            json!({ "created": created, "duplicates": stored.len() - created, "results": stored }),
        ));
    }
    // Conflicts inside the request or with what is stored are refused before anything
    // is queued.
    let ids: Vec<&str> = envelopes.iter().map(|e| e.activity.id.as_str()).collect();
    let stored = consumer::stored(env, &tenant, &ids).await?;
    let candidates: Vec<Candidate<'_>> = envelopes
        .iter()
        .map(|e| Candidate {
            id: &e.activity.id,
            input_hash: &e.input_hash,
        })
        .collect();
    plan::classify(&candidates, &stored).map_err(|c| conflict(&c))?;
    let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    let queue = env.queue("ACTIVITIES")?;
    for chunk in envelopes.chunks(QUEUE_BATCH) {
        queue.send_batch(chunk.to_vec()).await?;
    }
    Ok(Answer(
        202,
        json!({ "accepted": envelopes.len(), "ids": ids }),
    ))
}

fn conflict(c: &IdConflict) -> Failure {
    Failure::new(ApiCode::Conflict, c.message())
        .with_details(json!({ "id": c.id, "index": c.index }))
}

pub async fn put_directory(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = http::caller(req, env).await?;
    caller.require(KeyScope::Admin)?;
    let spec: DirectorySpec = http::parse(http::body(req).await?)?;
    let row = store::tenant_row(env, caller.tenant()).await?;
    let directory = serde_json::to_string(&spec).map_err(Failure::internal)?;
    let version = row.version + 1;
    let snap = TenantSnapshot::from_json(caller.tenant(), version, &row.policy, &directory)?;
    d1::transaction(
        env,
        &[
            tenants::update_snapshot(
                DIALECT,
                caller.tenant(),
                row.version,
                &row.policy,
                &directory,
            ),
            tenants::record_version(
                DIALECT,
                caller.tenant(),
                version,
                &row.policy,
                &directory,
                now()?.millis(),
            ),
        ],
    )
    .await?;
    let d = &snap.directory;
    Ok(Answer(
        200,
        json!({ "version": version, "users": d.user_count(), "departments": d.department_count(),
        "roles": d.role_count(), "permissions": d.permission_count() }),
    ))
}
