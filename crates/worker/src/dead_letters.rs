//! The dead-letter queue's consumer and its admin endpoints. Every message that reaches
//! the dead-letter queue — an item the consumer refused for good (with the reason), or
//! a packet whose retries ran out — is kept in D1 (`dead_letters`) under its tenant, so
//! nothing acknowledged is lost silently: `GET /v1/dead-letters` lists them and
//! `POST /v1/dead-letters/{id}/redrive` puts one back on the activity queue (where
//! replays of already written ids are recognised). Bodies never come from clients, so
//! a re-driven packet is as trustworthy as when it was first enriched.

use crm_api::edge::{DeadLetterList, Redriven};
use crm_store::dead_letters::{self, DEFAULT_LIST, MAX_LIST};
use crm_store::keys::KeyScope;
use serde_json::{Value, json};
use worker::{Env, MessageBatch, MessageExt, Request, Result};

use crate::auth::now_ms;
use crate::consumer::Packet;
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{ingest, message, shards};

/// The dead-letter queue's name (`wrangler.toml`).
pub const QUEUE: &str = "crm-activities-dlq";

pub async fn consume(batch: MessageBatch<Value>, env: &Env) -> Result<()> {
    for m in batch.messages()? {
        // Ours carry `{reason, body}`; the platform's (retries exhausted) the packet.
        let letter = message::decode::<Value>(m.body()).unwrap_or_else(|_| m.body().clone());
        let (reason, body) = match &letter {
            Value::Object(o) if o.contains_key("reason") && o.contains_key("body") => (
                o["reason"].as_str().unwrap_or("refused").to_owned(),
                o["body"].clone(),
            ),
            other => (
                "the queue's retries ran out (D1 unavailable or the head kept moving)".to_owned(),
                other.clone(),
            ),
        };
        let tenant = body["tenantId"].as_str().unwrap_or_default();
        if keep(env, tenant, &reason, &body).await.is_ok() {
            m.ack();
        } else {
            crate::consumer::retry_later(&m);
        }
    }
    Ok(())
}

/// Stores a dead letter on its tenant's shard (one without a tenant on shard 0).
async fn keep(env: &Env, tenant: &str, reason: &str, body: &Value) -> ApiResult<()> {
    let now = now_ms();
    let id = ingest::fresh_id(crm_core::Timestamp::from_millis(now)?)?;
    let insert = dead_letters::insert(DIALECT, tenant, &id, reason, &body.to_string(), now);
    d1::transaction(&Db::of_tenant(env, tenant).await?, &[insert]).await
}

/// Test hook, served only where `CONFORMANCE = "on"` (the e2e suite): puts a packet of
/// the caller's activities on the dead-letter queue, as the consumer does with an item
/// it refuses, so listing and re-driving can be tried end to end.
pub async fn inject(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = crate::auth::caller(req, env).await?;
    caller.require(KeyScope::Admin)?;
    let Value::Array(bodies) = crate::http::hook_body(req).await? else {
        return Err(Failure::bad_request(
            "the body must be an array of activities",
        ));
    };
    let snap = crate::store::snapshot(env, &caller).await?;
    let now = crm_core::Timestamp::from_millis(now_ms())?;
    let items = bodies
        .iter()
        .map(|body| {
            let activity =
                snap.enrich_json(&body.to_string(), &ingest::fresh_id(now)?, now, None)?;
            Ok(crate::consumer::Item {
                activity,
                input_hash: ingest::input_hash(body),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let packet = Packet {
        tenant_id: caller.tenant().to_owned(),
        received_at: now.millis(),
        items,
    };
    crate::invocation::spend_subrequest()?;
    env.queue("DEAD_LETTERS")?
        .send(message::text(message::encode(
            &json!({ "reason": "injected by a test", "body": packet }),
        )?))
        .await?;
    Ok(Answer(202, json!({ "injected": packet.items.len() })))
}

pub async fn list(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let params = ctx.query.clone();
    let limit = crm_store::listing::limit(
        params.get("limit").map(String::as_str),
        DEFAULT_LIST,
        MAX_LIST,
    )?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let letters = d1::query(&db, &dead_letters::list(DIALECT, caller.tenant(), limit))
        .await?
        .iter()
        .map(dead_letters::decode)
        .collect::<Result<Vec<_>, _>>()?;
    Answer::of(
        200,
        &DeadLetterList {
            dead_letters: letters,
        },
    )
}

pub async fn redrive(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let id = id.as_str();
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let letter = d1::query_opt(&db, &dead_letters::get(DIALECT, caller.tenant(), id))
        .await?
        .map(|r| dead_letters::decode(&r))
        .transpose()?
        .ok_or_else(|| Failure(crm_api::edge::no_dead_letter(id)))?;
    let packet: Packet = serde_json::from_value(letter.body).map_err(|_| {
        Failure::bad_request("this dead letter is not a packet of activities; drop it")
    })?;
    let shard = shards::of_tenant(env, caller.tenant()).await?;
    crate::invocation::spend_subrequest()?;
    env.queue(&shards::queue(shard))?
        .send(message::text(message::encode(&packet)?))
        .await?;
    d1::transaction(&db, &[dead_letters::delete(DIALECT, caller.tenant(), id)]).await?;
    Answer::of(
        202,
        &Redriven {
            redriven: id.to_owned(),
            activities: packet.items.len(),
        },
    )
}
