//! Activity ingest at the edge. The whole request is validated and enriched first (a
//! bad item refuses it and nothing is queued); ids are fixed before anything is
//! queued (the client's, derived from an `Idempotency-Key`, or fresh) and returned;
//! ids conflicting inside the request, with stored activities or with activities
//! still in the queue are refused before the 202. Enriched activities travel in
//! packets sized by bytes under the Queues limits; `?sync=true` writes to D1 directly,
//! all or nothing.

use std::cell::RefCell;
use std::collections::HashMap;

use crm_api::ingest::{QueuedAnswer, Submission};
use crm_core::chain::canonical_json;
use crm_core::ids::IdGenerator;
use crm_core::{CoreError, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use worker::Env;

use crm_api::error::ApiCode;
use crm_store::ingest::{self as plan, Candidate, IdConflict};
use crm_store::keys::KeyScope;
use crm_store::packing::{self, TooLarge};
use crm_store::{idempotency, queued};

use crate::auth::now_ms;
use crate::consumer::{self, Item, Packet};
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{message, shards};
use crate::{random, store};

/// Largest packet (one queue message) as JSON: Queues takes 128 KB per message; the
/// margin covers the platform's own encoding of the body.
pub const MAX_PACKET_BYTES: usize = 120_000;
/// Largest `sendBatch` as JSON: Queues takes 256 KB per batch.
const MAX_SEND_BYTES: usize = 240_000;
/// Messages per `sendBatch` (the Queues limit).
const MAX_SEND_MESSAGES: usize = 100;

thread_local! {
    static IDS: RefCell<IdGenerator> = RefCell::new(IdGenerator::new());
}

/// SHA-256 of the client's input (canonical JSON): replay vs conflict.
pub fn input_hash(body: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(body).as_bytes()))
}

/// A fresh, monotonic ULID.
pub fn fresh_id(now: Timestamp) -> ApiResult<String> {
    let bits = random::ulid_bits()?;
    Ok(IDS.with_borrow_mut(|g| g.next(now, bits)))
}

fn now() -> ApiResult<Timestamp> {
    Ok(Timestamp::from_millis(now_ms())?)
}

fn conflict(c: &IdConflict, queued: bool) -> Failure {
    let message = if queued {
        format!(
            "activity `{}` is already queued with different content",
            c.id
        )
    } else {
        c.message()
    };
    Failure::new(ApiCode::Conflict, message).with_details(json!({ "id": c.id, "index": c.index }))
}

/// Packs items into packets of at most [`MAX_PACKET_BYTES`]; an item that cannot fit
/// one packet alone is refused with 413 (nothing is queued).
fn pack(tenant: &str, received_at: i64, items: Vec<Item>) -> ApiResult<Vec<Packet>> {
    let empty = Packet {
        tenant_id: tenant.to_owned(),
        received_at,
        items: Vec::new(),
    };
    let overhead = encoded_len(&empty)?;
    let sizes = items
        .iter()
        .map(|i| Ok(encoded_len(i)? + 1))
        .collect::<ApiResult<Vec<_>>>()?;
    let runs = packing::runs(&sizes, overhead, MAX_PACKET_BYTES, usize::MAX).map_err(
        |TooLarge { index, bytes }| {
            Failure::too_large(format!(
                "activity [{index}] takes {bytes} bytes enriched; a queue message holds at most {MAX_PACKET_BYTES} (smaller metadata, or ?sync=true)"
            ))
            .with_details(json!({ "index": index, "bytes": bytes, "limit": MAX_PACKET_BYTES }))
        },
    )?;
    Ok(runs
        .into_iter()
        .map(|r| Packet {
            items: items[r].to_vec(),
            ..empty.clone()
        })
        .collect())
}

fn encoded_len<T: serde::Serialize>(v: &T) -> ApiResult<usize> {
    Ok(serde_json::to_vec(v).map_err(Failure::internal)?.len())
}

/// Groups packets into `sendBatch` calls within the count and byte limits.
fn send_groups(packets: &[Packet]) -> ApiResult<Vec<Vec<String>>> {
    let messages = packets
        .iter()
        .map(message::encode)
        .collect::<ApiResult<Vec<_>>>()?;
    let sizes: Vec<usize> = messages.iter().map(String::len).collect();
    let runs = packing::runs(&sizes, 0, MAX_SEND_BYTES, MAX_SEND_MESSAGES)
        .map_err(|_| Failure::internal("a packet is larger than a sendBatch"))?;
    Ok(runs.into_iter().map(|r| messages[r].to_vec()).collect())
}

/// Binds the `Idempotency-Key` to this whole request, or checks that the request it is
/// bound to is this one (issue 26.7; as crm-host).
async fn claim(env: &Env, tenant: &str, key: &str, request_hash: &str, now: i64) -> ApiResult<()> {
    let key = idempotency::scoped_key(crm_api::ingest::ENDPOINT, key);
    let db = Db::of_tenant(env, tenant).await?;
    d1::transaction(
        &db,
        &[idempotency::claim(DIALECT, tenant, &key, request_hash, now)],
    )
    .await?;
    let row = d1::query_opt(&db, &idempotency::get(DIALECT, tenant, &key))
        .await?
        .ok_or_else(|| Failure::internal("a claimed key is gone"))?;
    Ok(crm_api::request::same_request(
        &idempotency::decode(&row)?.request_hash,
        request_hash,
    )?)
}

pub async fn activities(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Ingest)?;
    let params = ctx.query.clone();
    let sync = crm_api::ingest::sync_param(params.get("sync").map(String::as_str))?;
    let idempotency_key = ctx.idempotency_key.clone();
    let submission = Submission::from_body(ctx.take_body()?)?;
    let single = submission.is_single();
    let bodies = submission.items();
    let tenant = caller.tenant().to_owned();
    // Refused before anything is enriched or queued when the database is near its cap.
    crate::capacity::admit(env, &Db::of_tenant(env, &tenant).await?).await?;
    let snap = store::snapshot(env, &caller).await?;
    let now = now()?;
    let ip = ctx.client_ip.clone();
    let mut items = Vec::with_capacity(bodies.len());
    // Ids that another request could also send: the client's own and derived ones.
    let mut chosen = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let generated = match &idempotency_key {
            Some(k) => plan::derived_id(&tenant, k, i),
            None => fresh_id(now)?,
        };
        let activity = snap
            .enrich_json(&body.to_string(), &generated, now, ip.as_deref())
            .map_err(|e: CoreError| {
                if single {
                    e
                } else {
                    e.within(&format!("[{i}]"))
                }
            })?;
        if activity.id != generated || idempotency_key.is_some() {
            chosen.push(i);
        }
        items.push(Item {
            activity,
            input_hash: input_hash(body),
        });
    }
    if let Some(k) = &idempotency_key {
        claim(env, &tenant, k, &submission.request_hash(), now.millis()).await?;
    }
    if sync {
        let mine: Vec<Candidate<'_>> = chosen.iter().map(|&i| items[i].candidate()).collect();
        queued::conflict(&mine, &queued_ids(env, &tenant, &mine, now.millis()).await?)
            .map_err(|c| conflict(&in_request(c, &items), true))?;
        let stored = consumer::write(env, &tenant, &items, &vec![now.millis(); items.len()], &[])
            .await?
            .map_err(|r| r.or_conflict(|c| conflict(&c, false)))?;
        let (status, answer) = crm_api::ingest::answer(single, stored)?;
        return Answer::of(status, &answer);
    }
    let ids: Vec<String> = items.iter().map(|i| i.activity.id.clone()).collect();
    let candidates: Vec<Candidate<'_>> = items.iter().map(Item::candidate).collect();
    let stored = consumer::stored(env, &tenant, &candidates).await?;
    let dispositions = plan::classify(&candidates, &stored).map_err(|c| conflict(&c, false))?;
    let fresh: Vec<usize> = dispositions
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == plan::Disposition::Fresh)
        .map(|(i, _)| i)
        .collect();
    let packets = pack(
        &tenant,
        now.millis(),
        fresh.iter().map(|&i| items[i].clone()).collect(),
    )?;
    let groups = send_groups(&packets)?;
    // A request sent in several batches reserves every id, so a retry after a partial
    // failure (same ids) replays instead of recording twice.
    let reserve: Vec<Candidate<'_>> = if groups.len() > 1 {
        fresh.iter().map(|&i| candidates[i]).collect()
    } else {
        chosen
            .iter()
            .filter(|i| fresh.contains(i))
            .map(|&i| candidates[i])
            .collect()
    };
    if !reserve.is_empty() {
        reserve_ids(env, &tenant, &reserve, now.millis())
            .await?
            .map_err(|c| conflict(&in_request(c, &items), true))?;
    }
    // The tenant's shard queue: its consumer serialises the tenant's chain.
    let queue = env.queue(&shards::queue(shards::of_tenant(env, &tenant).await?))?;
    for (n, group) in groups.into_iter().enumerate() {
        crate::invocation::spend_subrequest()?;
        if let Err(e) = queue.send_batch(group.into_iter().map(message::text)).await {
            worker::console_error!("sendBatch failed after {n} batches: {e}");
            return Err(Failure::new(
                ApiCode::Unavailable,
                "the queue refused part of this request; send it again with the same ids (they are listed) or the same Idempotency-Key — parts already queued are recognised",
            )
            .with_details(json!({ "ids": ids })));
        }
    }
    Answer::of(
        202,
        &QueuedAnswer {
            accepted: items.len(),
            queued: fresh.len(),
            ids,
        },
    )
}

/// A conflict found among some of the items, placed at its index in the request.
fn in_request(mut c: IdConflict, items: &[Item]) -> IdConflict {
    c.index = items
        .iter()
        .position(|i| i.activity.id == c.id)
        .unwrap_or(c.index);
    c
}

/// Reserves ids as queued; refused when one is queued with other content (checked
/// before and after the insert, so of two racing requests only one wins).
async fn reserve_ids(
    env: &Env,
    tenant: &str,
    items: &[Candidate<'_>],
    now: i64,
) -> ApiResult<Result<(), IdConflict>> {
    if let Err(c) = queued::conflict(items, &queued_ids(env, tenant, items, now).await?) {
        return Ok(Err(c));
    }
    let db = Db::of_tenant(env, tenant).await?;
    d1::transaction(&db, &queued::reserve(DIALECT, tenant, items, now)).await?;
    Ok(queued::conflict(
        items,
        &queued_ids(env, tenant, items, now).await?,
    ))
}

async fn queued_ids(
    env: &Env,
    tenant: &str,
    items: &[Candidate<'_>],
    now: i64,
) -> ApiResult<HashMap<String, String>> {
    let ids: Vec<&str> = items.iter().map(|c| c.id).collect();
    let db = Db::of_tenant(env, tenant).await?;
    let mut out = HashMap::new();
    for st in queued::lookup(DIALECT, tenant, &ids, now) {
        for row in d1::query(&db, &st).await? {
            let (id, hash) = queued::decode(&row)?;
            out.insert(id, hash);
        }
    }
    Ok(out)
}
