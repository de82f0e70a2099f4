//! The queue consumer: per batch and tenant, one D1 transaction (a `batch()`) with the
//! activities, their folded rollups, the ledger entry and the guarded head move — the
//! statements of `crm_store::ingest`, exactly as crm-host writes them. If another
//! writer moved the head meanwhile, the guard aborts the whole batch and its messages
//! are retried, so seq and hashes never fork. Each message is acked or retried
//! explicitly; one that can never succeed goes to the dead-letter queue with its reason.

use std::collections::{BTreeMap, HashMap};

use crm_core::Activity;
use crm_store::activities::{self, Existing};
use crm_store::ingest::{self as plan, Candidate, Disposition, IdConflict, Stored};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{Env, Message, MessageBatch, MessageExt, Result};

use crate::d1::{self, DIALECT};
use crate::http::ApiResult;
use crate::store;

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
    for (tenant, mut items) in by_tenant {
        // A message whose id was stored (or queued earlier in this batch) with other
        // content can never be written: dead-letter it, write the rest.
        loop {
            let envelopes: Vec<Envelope> = items.iter().map(|(_, e)| e.clone()).collect();
            match write(env, &tenant, &envelopes).await {
                Ok(Ok(_)) => {
                    for (m, _) in &items {
                        m.ack();
                    }
                    break;
                }
                Ok(Err(conflict)) => {
                    let (m, _) = items.remove(conflict.index);
                    dead_letter(env, m, &conflict.message()).await;
                    if items.is_empty() {
                        break;
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
                    break;
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

/// Stored activities among the envelopes' ids.
pub async fn stored(env: &Env, tenant: &str, ids: &[&str]) -> ApiResult<HashMap<String, Existing>> {
    let mut out = HashMap::new();
    for st in activities::lookup(DIALECT, tenant, ids) {
        for row in d1::query(env, &st).await? {
            let e = activities::decode_existing(&row)?;
            out.insert(e.id.clone(), e);
        }
    }
    Ok(out)
}

/// Writes one tenant's envelopes in one D1 transaction, all or nothing. A conflicting
/// id (stored, or earlier in `envelopes` with other content) writes nothing and says
/// which. Used by the consumer and by `?sync=true` ingest.
pub async fn write(
    env: &Env,
    tenant: &str,
    envelopes: &[Envelope],
) -> ApiResult<std::result::Result<Vec<Stored>, IdConflict>> {
    let ids: Vec<&str> = envelopes.iter().map(|e| e.activity.id.as_str()).collect();
    let stored = stored(env, tenant, &ids).await?;
    let candidates: Vec<Candidate<'_>> = envelopes
        .iter()
        .map(|e| Candidate {
            id: &e.activity.id,
            input_hash: &e.input_hash,
        })
        .collect();
    let dispositions = match plan::classify(&candidates, &stored) {
        Ok(d) => d,
        Err(conflict) => return Ok(Err(conflict)),
    };
    let mut fresh = Vec::new();
    let mut hashes = Vec::new();
    for (e, d) in envelopes.iter().zip(&dispositions) {
        if *d == Disposition::Fresh {
            fresh.push(e.activity.clone());
            hashes.push(e.input_hash.as_str());
        }
    }
    if fresh.is_empty() {
        return Ok(Ok(plan::answers(dispositions, &[])));
    }
    let before = store::head(env, tenant).await?;
    let balance = crm_core::engine::settle_and_seal(
        before.balance,
        before.seq + 1,
        &before.hash,
        &mut fresh,
    )?;
    let received_at = envelopes.first().map_or(0, |e| e.received_at);
    let statements = plan::write(
        DIALECT,
        tenant,
        &before,
        &fresh,
        &hashes,
        received_at,
        balance,
    )?;
    d1::transaction(env, &statements).await?;
    Ok(Ok(plan::answers(dispositions, &fresh)))
}
