//! The queue consumer: per batch and tenant, one D1 `batch()` (a transaction) with the
//! activities, their rollups, outbox rows, the ledger entry, the balance and the chain
//! head. Order and chain integrity: one consumer invocation at a time
//! (`max_concurrency = 1`), and the head update is guarded — if another writer moved
//! the head meanwhile, the statement fails, D1 rolls the whole batch back and the
//! messages are retried. Each message is acked or retried explicitly; a message that
//! can never succeed goes to the dead-letter queue with its reason.

use std::collections::{BTreeMap, HashMap};

use crm_core::{Activity, Credits};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{Env, Message, MessageBatch, MessageExt, Result};

use crate::http::{ApiError, ApiResult};
use crate::store::{self, int, opt, text};

/// One enriched activity on its way to D1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub tenant_id: String,
    pub activity: Activity,
    pub input_hash: String,
    pub received_at: i64,
}

pub async fn consume(batch: MessageBatch<Value>, env: &Env) -> Result<()> {
    let messages = batch.messages()?;
    let mut by_tenant: BTreeMap<String, Vec<(&Message<Value>, Envelope)>> = BTreeMap::new();
    for m in &messages {
        match serde_json::from_value::<Envelope>(m.body().clone()) {
            Ok(e) => by_tenant
                .entry(e.tenant_id.clone())
                .or_default()
                .push((m, e)),
            Err(e) => dead_letter(env, m, &format!("undecodable message: {e}")).await,
        }
    }
    for (tenant, items) in by_tenant {
        let envelopes: Vec<Envelope> = items.iter().map(|(_, e)| e.clone()).collect();
        match write(env, &tenant, envelopes).await {
            Ok(outcomes) => {
                for ((m, _), outcome) in items.iter().zip(outcomes) {
                    match outcome {
                        Written::Stored | Written::Duplicate => m.ack(),
                        Written::Conflict => {
                            dead_letter(env, m, "id already recorded with different content").await
                        }
                    }
                }
            }
            Err(e) => {
                worker::console_error!(
                    "tenant {tenant}: batch not written, retrying: {}",
                    e.message()
                );
                for (m, _) in &items {
                    m.retry();
                }
            }
        }
    }
    Ok(())
}

async fn dead_letter(env: &Env, m: &Message<Value>, reason: &str) {
    let sent = match env.queue("DEAD_LETTERS") {
        Ok(q) => q
            .send(json!({ "reason": reason, "body": m.body() }))
            .await
            .is_ok(),
        Err(_) => false,
    };
    if sent {
        m.ack();
    } else {
        // Retrying lets the platform's own dead-letter queue take it after max_retries.
        worker::console_error!("dead-letter send failed ({reason}); retrying message");
        m.retry();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    Duplicate,
    Conflict,
}

/// Writes one tenant's envelopes in one D1 transaction. Used by the consumer and by
/// `?sync=true` ingest.
pub async fn write(env: &Env, tenant: &str, envelopes: Vec<Envelope>) -> ApiResult<Vec<Written>> {
    let ids: Vec<String> = envelopes.iter().map(|e| e.activity.id.clone()).collect();
    let existing = store::existing(env, tenant, &ids).await?;
    let mut outcomes = Vec::with_capacity(envelopes.len());
    let mut fresh = Vec::new();
    let mut hashes = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for e in envelopes {
        let prior = existing
            .get(&e.activity.id)
            .map(|x| x.input_hash.clone())
            .or_else(|| seen.get(&e.activity.id).cloned());
        match prior {
            Some(h) if h == e.input_hash => outcomes.push(Written::Duplicate),
            Some(_) => outcomes.push(Written::Conflict),
            None => {
                seen.insert(e.activity.id.clone(), e.input_hash.clone());
                outcomes.push(Written::Stored);
                hashes.push((e.input_hash, e.received_at));
                fresh.push(e.activity);
            }
        }
    }
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    let head = store::head(env, tenant).await?;
    let first_seq = u64::try_from(head.head_seq + 1).map_err(ApiError::internal)?;
    let balance = Credits::from_units(head.balance_units)?;
    let left = crm_core::engine::settle_and_seal(balance, first_seq, &head.head_hash, &mut fresh)?;
    let db = store::db(env)?;
    let mut stmts = Vec::new();
    for (a, (input_hash, received_at)) in fresh.iter().zip(&hashes) {
        let h = &a.user_context.hierarchy;
        let body = serde_json::to_string(a).map_err(ApiError::internal)?;
        stmts.push(db.prepare(
            "INSERT INTO activities (tenant_id, id, seq, occurred_at, received_at, user_id, department_id,
                 department_path, operation, outcome, entity_type, entity_id, credits_units, session_id,
                 ip_address, location, auth_method, input_hash, prev_hash, hash, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
             ON CONFLICT (tenant_id, id) DO NOTHING",
        ).bind(&[
            text(tenant), text(&a.id), int(a.seq as i64), int(a.occurred_at.millis()), int(*received_at),
            text(&a.user_id), text(&h.department_id), text(&h.department_path), text(&a.operation),
            text(a.outcome.as_str()), opt(a.entity_type.as_deref()), opt(a.entity_id.as_deref()),
            int(a.credits.units()), opt(a.session_id.as_deref()), opt(a.compliance.ip_address.as_deref()),
            opt(a.compliance.location.as_deref()), opt(a.compliance.authentication_method.as_deref()),
            text(input_hash), text(&a.prev_hash), text(&a.hash), text(&body),
        ])?);
        stmts.push(
            db.prepare("INSERT INTO outbox (tenant_id, seq, activity_id, created_at) VALUES (?1, ?2, ?3, ?4)")
                .bind(&[text(tenant), int(a.seq as i64), text(&a.id), int(*received_at)])?,
        );
        let absent = |v: &Option<String>| text(v.as_deref().unwrap_or(""));
        stmts.push(db.prepare(
            "INSERT INTO rollups_hourly (tenant_id, hour_start, user_id, department_id, department_path,
                 operation, outcome, entity_type, location, auth_method, ip_address, count, credits_units, latest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13)
             ON CONFLICT (tenant_id, hour_start, user_id, department_id, department_path, operation,
                          outcome, entity_type, location, auth_method, ip_address)
             DO UPDATE SET count = count + 1, credits_units = credits_units + excluded.credits_units,
                           latest = MAX(latest, excluded.latest)",
        ).bind(&[
            text(tenant), int(crm_core::query::hour_start(a.occurred_at.millis())), text(&a.user_id),
            text(&h.department_id), text(&h.department_path), text(&a.operation), text(a.outcome.as_str()),
            absent(&a.entity_type), absent(&a.compliance.location), absent(&a.compliance.authentication_method),
            absent(&a.compliance.ip_address), int(a.credits.units()), int(a.occurred_at.millis()),
        ])?);
    }
    let last = fresh.last().expect("fresh is not empty");
    let charged = balance.units() - left.units();
    if charged != 0 {
        stmts.push(db.prepare(
            "INSERT INTO credit_ledger (tenant_id, entry, at, delta_units, balance_units, kind, detail)
             VALUES (?1, (SELECT COALESCE(MAX(entry), 0) + 1 FROM credit_ledger WHERE tenant_id = ?1), ?2, ?3, ?4, 'usage', ?5)",
        ).bind(&[
            text(tenant), int(hashes[0].1), int(-charged), int(left.units()),
            text(&format!("activities seq {first_seq}..={}", last.seq)),
        ])?);
    }
    // Guarded head move: NULL into a NOT NULL column aborts the transaction when another
    // writer advanced the head since we read it.
    stmts.push(
        db.prepare(
            "UPDATE tenants SET head_seq = CASE WHEN head_seq = ?2 THEN ?3 ELSE NULL END,
             head_hash = ?4, balance_units = ?5 WHERE id = ?1",
        )
        .bind(&[
            text(tenant),
            int(head.head_seq),
            int(last.seq as i64),
            text(&last.hash),
            int(left.units()),
        ])?,
    );
    db.batch(stmts).await?;
    Ok(outcomes)
}
