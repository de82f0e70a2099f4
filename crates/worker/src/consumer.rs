//! The queue consumer. A message is a [`Packet`]: one tenant's enriched activities.
//! Per tenant and run of packets holding at most one request's batch
//! ([`MAX_ITEMS_PER_WRITE`]), started only while a whole write fits the invocation's
//! D1 queries, one D1 transaction (a `batch()`) writes the activities, their
//! folded rollups, the ledger entry, the guarded head move and the release of their
//! queue reservations — the statements of `crm_store`, exactly as crm-host writes them.
//! If another writer moved the head meanwhile, the guard aborts the batch and only that
//! tenant's messages are retried, so seq and hashes never fork. An item that can never
//! be written (its id stored with other content) goes to the dead-letter queue alone,
//! with its reason; the rest of its packet is written. Each message is acked or retried
//! explicitly. The consumer only writes: the upstream gets what it has not confirmed
//! from the minute cron pass (`crate::upstream`), so a slow upstream never holds up
//! ingest.

use std::collections::{BTreeMap, HashMap};

use crm_core::Activity;
use crm_store::Statement;
use crm_store::activities::{self, Existing};
use crm_store::ingest::{self as plan, Candidate, Disposition, IdConflict, Stored};
use crm_store::queued;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use worker::{Env, Message, MessageBatch, MessageExt, Result};

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};
use crate::{message, store};
use crm_api::error::ApiCode;

/// Activities one consumer write holds at most: one request's batch.
const MAX_ITEMS_PER_WRITE: usize = crm_core::limits::MAX_BATCH;

/// D1 queries one Worker invocation may make (Cloudflare's limit on the paid plan).
const QUERY_LIMIT: usize = 1_000;

/// Attempts at sealing after a head another writer keeps moving: each retry means a
/// concurrent sync write or grant landed in between, which is rare.
const HEAD_ATTEMPTS: usize = 4;

/// One enriched activity on its way to D1, with the hash of the client's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub activity: Activity,
    pub input_hash: String,
}

impl Item {
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            id: &self.activity.id,
            input_hash: &self.input_hash,
        }
    }
}

/// One queue message: a tenant's activities from one request, in request order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Packet {
    pub tenant_id: String,
    pub received_at: i64,
    pub items: Vec<Item>,
}

pub async fn consume(batch: MessageBatch<Value>, env: &Env) -> Result<()> {
    let messages = batch.messages()?;
    let mut by_tenant: BTreeMap<String, Vec<(&Message<Value>, Packet)>> = BTreeMap::new();
    for m in &messages {
        match message::decode::<Packet>(m.body()) {
            Ok(p) => by_tenant
                .entry(p.tenant_id.clone())
                .or_default()
                .push((m, p)),
            Err(e) => {
                if dead_letter(env, m.body().clone(), &format!("undecodable message: {e}")).await {
                    m.ack();
                } else {
                    retry_later(m);
                }
            }
        }
    }
    let start = d1::queries_made();
    for (tenant, packets) in by_tenant {
        // A tenant's packets are written in runs of at most a request's batch, each its
        // own D1 transaction: one fold of every packet could be 10–20k rows, past the
        // isolate's memory and D1's 30 s per batch.
        let sizes: Vec<usize> = packets.iter().map(|(_, p)| p.items.len()).collect();
        let runs = crm_store::packing::runs(&sizes, 0, MAX_ITEMS_PER_WRITE, usize::MAX)
            // A packet never holds more than a batch; if one did, it is written alone.
            .unwrap_or_else(|_| (0..packets.len()).map(|i| i..i + 1).collect());
        for run in runs {
            let group = &packets[run];
            // Start a write only while a whole one fits the invocation's queries; the
            // rest comes back at once (the budget is not an outage).
            let spent = (d1::queries_made() - start) as usize;
            if spent + plan::MAX_WRITE_QUERIES > QUERY_LIMIT {
                for (m, _) in group {
                    m.retry_with_options(
                        &worker::QueueRetryOptionsBuilder::new()
                            .with_delay_seconds(0)
                            .build(),
                    );
                }
                continue;
            }
            let written = write_tenant(env, &tenant, group).await;
            for (m, _) in group {
                if written {
                    m.ack();
                } else {
                    retry_later(m);
                }
            }
        }
    }
    Ok(())
}

/// Marks a message for another delivery after a growing delay (an immediate retry would
/// spend the whole retry budget within a short D1 outage).
pub fn retry_later<T>(m: &Message<T>) {
    let now = now_ms();
    let sent = m.timestamp().as_millis() as i64;
    let delay = crm_store::queued::retry_delay_seconds(sent, now);
    m.retry_with_options(
        &worker::QueueRetryOptionsBuilder::new()
            .with_delay_seconds(delay)
            .build(),
    );
}

/// Writes a tenant's packets; true when every item is written or dead-lettered.
async fn write_tenant(env: &Env, tenant: &str, packets: &[(&Message<Value>, Packet)]) -> bool {
    let mut items: Vec<Item> = packets.iter().flat_map(|(_, p)| p.items.clone()).collect();
    // Each item keeps the time its own request was received.
    let mut received: Vec<i64> = packets
        .iter()
        .flat_map(|(_, p)| std::iter::repeat_n(p.received_at, p.items.len()))
        .collect();
    loop {
        match write(env, tenant, &items, &received, &[]).await {
            Ok(Ok(_)) => return true,
            Ok(Err(conflict)) => {
                let item = items.remove(conflict.index);
                let received_at = received.remove(conflict.index);
                let body =
                    json!({ "tenantId": tenant, "receivedAt": received_at, "items": [item] });
                if !dead_letter(env, body, &conflict.message()).await {
                    return false;
                }
                let id = item.activity.id.as_str();
                // The reservation was for content that will never be written.
                let release = queued::release(DIALECT, tenant, &[id], now_ms());
                let released = match Db::of_tenant(env, tenant).await {
                    Ok(db) => d1::transaction(&db, &release).await.is_ok(),
                    Err(_) => false,
                };
                if !released {
                    return false;
                }
                if items.is_empty() {
                    return true;
                }
            }
            Err(e) => {
                worker::console_error!(
                    "tenant {tenant}: batch not written, retrying: {}",
                    e.message()
                );
                return false;
            }
        }
    }
}

/// Sends a body to the dead-letter queue with its reason; false if that failed (the
/// message is then retried, and the platform's dead-letter queue takes it after
/// `max_retries`).
async fn dead_letter(env: &Env, body: Value, reason: &str) -> bool {
    let letter = message::encode(&json!({ "reason": reason, "body": body }));
    let sent = match (env.queue("DEAD_LETTERS"), letter) {
        (Ok(q), Ok(letter)) => q.send(message::text(letter)).await.is_ok(),
        _ => false,
    };
    if !sent {
        worker::console_error!("dead-letter send failed ({reason})");
    }
    sent
}

/// Stored activities among the candidates' ids.
pub async fn stored(
    env: &Env,
    tenant: &str,
    items: &[Candidate<'_>],
) -> ApiResult<HashMap<String, Existing>> {
    let ids: Vec<&str> = items.iter().map(|c| c.id).collect();
    let db = Db::of_tenant(env, tenant).await?;
    let mut out = HashMap::new();
    for st in activities::lookup(DIALECT, tenant, &ids) {
        for row in d1::query(&db, &st).await? {
            let e = activities::decode_existing(&row)?;
            out.insert(e.id.clone(), e);
        }
    }
    Ok(out)
}

/// Writes one tenant's items in one D1 transaction, all or nothing, releasing their
/// queue reservations; `received_at[i]` is when `items[i]`'s request arrived. A
/// conflicting id (stored, or earlier in `items` with other content) writes nothing and
/// says which. `first` runs at the start of the same transaction (an erasure's key
/// destruction). Used by the consumer, by `?sync=true`, by metered operations and by
/// erasures.
pub async fn write(
    env: &Env,
    tenant: &str,
    items: &[Item],
    received_at: &[i64],
    first: &[Statement],
) -> ApiResult<std::result::Result<Vec<Stored>, IdConflict>> {
    let candidates: Vec<Candidate<'_>> = items.iter().map(Item::candidate).collect();
    let stored = stored(env, tenant, &candidates).await?;
    let dispositions = match plan::classify(&candidates, &stored) {
        Ok(d) => d,
        Err(conflict) => return Ok(Err(conflict)),
    };
    let mut fresh: Vec<Activity> = Vec::new();
    let mut arrivals = Vec::new();
    for ((item, d), at) in items.iter().zip(&dispositions).zip(received_at) {
        if *d == Disposition::Fresh {
            fresh.push(item.activity.clone());
            arrivals.push(crm_store::activities::Arrival {
                input_hash: item.input_hash.as_str(),
                received_at: *at,
            });
        }
    }
    let ids: Vec<&str> = candidates.iter().map(|c| c.id).collect();
    let db = Db::of_tenant(env, tenant).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut sealed = fresh.clone();
        let mut statements = Vec::new();
        let before = if sealed.is_empty() {
            None
        } else {
            let store::Account {
                head: before,
                loaded,
                rules,
                personal_keys,
            } = store::account(env, tenant).await?;
            let mut wallet = loaded.wallet.clone();
            let mut sealing = store::sealing(&db, tenant, &personal_keys, &sealed).await?;
            (_, statements) = plan::seal_and_write(
                DIALECT,
                tenant,
                plan::Account {
                    head: &before,
                    wallet: &mut wallet,
                    rules: &rules,
                    sealing: &mut sealing,
                },
                &mut sealed,
                &arrivals,
            )?;
            Some((before, loaded.wallet))
        };
        statements.splice(0..0, first.iter().cloned());
        statements.extend(queued::release(DIALECT, tenant, &ids, now_ms()));
        if let Err(e) = d1::transaction(&db, &statements).await {
            // A guard refused if another writer (a sync request, a grant) moved the
            // head, the balance or a grant since they were read: seal again after them.
            let moved = match &before {
                Some((head, wallet)) => {
                    let now = store::account(env, tenant).await?;
                    now.head != *head || now.loaded.wallet != *wallet
                }
                None => false,
            };
            if !moved || attempt == HEAD_ATTEMPTS {
                return Err(if moved {
                    Failure::new(
                        ApiCode::Unavailable,
                        "other writers kept moving this tenant's chain; retry",
                    )
                } else {
                    e
                });
            }
            continue;
        }
        crate::capacity::record_if_due(&db).await;
        return Ok(Ok(plan::answers(dispositions, &sealed)));
    }
}
