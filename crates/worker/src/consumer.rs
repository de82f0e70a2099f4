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
use crate::{invocation, message, shards, store};
use crm_api::error::ApiCode;

/// Activities one consumer write holds at most: one request's batch.
const MAX_ITEMS_PER_WRITE: usize = crm_core::limits::MAX_BATCH;

/// D1 queries a write's reads take before its transaction (existing ids, the account,
/// subject keys, a retried head): a run starts only with at least these left.
const MIN_QUERIES_FOR_A_WRITE: u64 = 12;

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
            let outcome = if invocation::queries_left() < MIN_QUERIES_FOR_A_WRITE {
                Outcome::Deferred(group.iter().map(|(_, p)| p.clone()).collect())
            } else {
                write_tenant(env, &tenant, group).await
            };
            let acked = match outcome {
                Outcome::Written => true,
                Outcome::Failed => false,
                Outcome::Deferred(rest) => requeue(env, &tenant, rest).await,
            };
            for (m, _) in group {
                if acked {
                    m.ack();
                } else {
                    retry_later(m);
                }
            }
        }
    }
    Ok(())
}

/// How a run of a tenant's packets ended.
#[derive(Debug)]
enum Outcome {
    /// Every item written or dead-lettered.
    Written,
    /// Something failed: retried after a growing delay.
    Failed,
    /// The invocation's D1 queries ran out: these packets hold what is not written yet
    /// (what is, was acknowledged by its own transaction).
    Deferred(Vec<Packet>),
}

/// Queues what a run left unwritten as new messages, so the next invocation starts
/// where this one stopped: a retry would count against the message's retries (the
/// budget is not an outage) and begin again at its first item. False if a send failed;
/// the run is then retried whole (a replay is recognised).
async fn requeue(env: &Env, tenant: &str, rest: Vec<Packet>) -> bool {
    // The tenant's shard queue (cached placement: no query once known).
    let Some(q) = shards::of_tenant(env, tenant)
        .await
        .ok()
        .and_then(|shard| env.queue(&shards::queue(shard)).ok())
    else {
        return false;
    };
    for packet in rest {
        let sent = match message::encode(&packet) {
            Ok(text) if invocation::spend_subrequest().is_ok() => {
                q.send(message::text(text)).await.is_ok()
            }
            _ => false,
        };
        if !sent {
            return false;
        }
    }
    true
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

/// Writes a tenant's packets: as one transaction when its statements fit what the
/// invocation has left, else fewer items at a time; what the budget leaves unwritten
/// comes back as [`Outcome::Deferred`].
async fn write_tenant(env: &Env, tenant: &str, packets: &[(&Message<Value>, Packet)]) -> Outcome {
    let mut items: Vec<Item> = packets.iter().flat_map(|(_, p)| p.items.clone()).collect();
    // Each item's packet: it keeps the time its own request was received.
    let mut origin: Vec<usize> = packets
        .iter()
        .enumerate()
        .flat_map(|(i, (_, p))| std::iter::repeat_n(i, p.items.len()))
        .collect();
    let received: Vec<i64> = packets.iter().map(|(_, p)| p.received_at).collect();
    let mut take = items.len();
    while !items.is_empty() {
        take = take.min(items.len());
        let arrivals: Vec<i64> = origin[..take].iter().map(|&i| received[i]).collect();
        match write(env, tenant, &items[..take], &arrivals, &[]).await {
            Ok(Ok(_)) => {
                items.drain(..take);
                origin.drain(..take);
            }
            // Fewer items: as many as half the queries left would write, in proportion
            // (the next attempt reads again before it writes).
            Ok(Err(Refusal::OverBudget { statements, left })) if take > 1 => {
                take = (take.saturating_mul(left / 2) / statements.max(1)).clamp(1, take - 1);
            }
            Ok(Err(Refusal::OverBudget { .. })) => {
                return Outcome::Deferred(unwritten(packets, items, &origin));
            }
            Ok(Err(Refusal::Conflict(conflict))) => {
                let item = items.remove(conflict.index);
                let received_at = received[origin.remove(conflict.index)];
                let body =
                    json!({ "tenantId": tenant, "receivedAt": received_at, "items": [item] });
                if !dead_letter(env, body, &conflict.message()).await {
                    return Outcome::Failed;
                }
                let id = item.activity.id.as_str();
                // The reservation was for content that will never be written.
                let release = queued::release(DIALECT, tenant, &[id], now_ms());
                let released = match Db::of_tenant(env, tenant).await {
                    Ok(db) => d1::transaction(&db, &release).await.is_ok(),
                    Err(_) => false,
                };
                if !released {
                    return Outcome::Failed;
                }
            }
            // Refused by the invocation's allowance half way through its reads.
            Err(_) if invocation::exhausted() => {
                return Outcome::Deferred(unwritten(packets, items, &origin));
            }
            Err(e) => {
                worker::console_error!(
                    "tenant {tenant}: batch not written, retrying: {}",
                    e.message()
                );
                return Outcome::Failed;
            }
        }
    }
    Outcome::Written
}

/// The packets' items still to write, each in a packet like the one it came in.
fn unwritten(
    packets: &[(&Message<Value>, Packet)],
    items: Vec<Item>,
    origin: &[usize],
) -> Vec<Packet> {
    let mut out: Vec<Packet> = Vec::new();
    let mut last = None;
    for (item, &i) in items.into_iter().zip(origin) {
        if last != Some(i) {
            let (_, p) = &packets[i];
            out.push(Packet {
                tenant_id: p.tenant_id.clone(),
                received_at: p.received_at,
                items: Vec::new(),
            });
            last = Some(i);
        }
        if let Some(p) = out.last_mut() {
            p.items.push(item);
        }
    }
    out
}

/// Sends a body to the dead-letter queue with its reason; false if that failed (the
/// message is then retried, and the platform's dead-letter queue takes it after
/// `max_retries`).
async fn dead_letter(env: &Env, body: Value, reason: &str) -> bool {
    let letter = message::encode(&json!({ "reason": reason, "body": body }));
    let sent = match (env.queue("DEAD_LETTERS"), letter) {
        (Ok(q), Ok(letter)) if crate::invocation::spend_subrequest().is_ok() => {
            q.send(message::text(letter)).await.is_ok()
        }
        _ => false,
    };
    if !sent {
        worker::console_error!("dead-letter send failed ({reason})");
    }
    sent
}

/// Why [`write`] wrote nothing.
#[derive(Debug)]
pub enum Refusal {
    /// An id stored, or earlier in the items, with other content.
    Conflict(IdConflict),
    /// The transaction has more statements than the invocation has D1 queries left.
    OverBudget { statements: usize, left: usize },
}

impl Refusal {
    /// The failure of a caller that writes one request's items in one transaction: a
    /// conflict as `conflict` says; a write too large for the invocation cannot be
    /// answered at all (a request's batch needs well under an invocation's queries).
    pub fn or_conflict(self, conflict: impl FnOnce(IdConflict) -> Failure) -> Failure {
        match self {
            Refusal::Conflict(c) => conflict(c),
            Refusal::OverBudget { statements, left } => Failure::internal(format!(
                "a write of {statements} statements exceeds the {left} D1 queries this invocation has left"
            )),
        }
    }
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
) -> ApiResult<std::result::Result<Vec<Stored>, Refusal>> {
    let candidates: Vec<Candidate<'_>> = items.iter().map(Item::candidate).collect();
    let stored = stored(env, tenant, &candidates).await?;
    let dispositions = match plan::classify(&candidates, &stored) {
        Ok(d) => d,
        Err(conflict) => return Ok(Err(Refusal::Conflict(conflict))),
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
        let left = usize::try_from(invocation::queries_left()).unwrap_or(usize::MAX);
        if statements.len() > left {
            return Ok(Err(Refusal::OverBudget {
                statements: statements.len(),
                left,
            }));
        }
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
