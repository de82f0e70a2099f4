//! Activity ingest: validate and enrich the whole request with the engine first (a bad
//! item rejects the request and nothing is written), then record through the writer.

use crm_api::ingest::Submission;
use crm_core::chain::canonical_json;
use sha2::{Digest, Sha256};

use super::{App, clock};
use crate::engine::RawActivity;
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crate::store::IngestItem;
use crm_store::ingest::Stored;
use std::sync::Arc;

/// Records the submission for `tenant`. `ip_address` comes from the connection. With
/// an `Idempotency-Key`, the ids of items without one are derived from it, so a retried
/// batch lands on the same ids and answers the first result.
pub async fn ingest(
    app: &App,
    tenant: &Arc<Tenant>,
    submission: &Submission,
    ip_address: Option<&str>,
    idempotency_key: Option<&str>,
) -> HostResult<Vec<Stored>> {
    app.fanout.admit(tenant.id())?;
    let now = clock::now();
    let mut raws = Vec::with_capacity(submission.items().len());
    let mut hashes = Vec::with_capacity(raws.capacity());
    for (i, item) in submission.items().iter().enumerate() {
        raws.push(RawActivity {
            input_json: serde_json::to_string(item).map_err(HostError::internal)?,
            generated_id: match idempotency_key {
                Some(k) => crm_store::ingest::derived_id(tenant.id(), k, i),
                None => app.ids.next(now),
            },
        });
        hashes.push(hex::encode(Sha256::digest(canonical_json(item).as_bytes())));
    }
    let (t, ip) = (tenant.clone(), ip_address.map(str::to_owned));
    let enriched = app
        .engines
        .run(move |e| e.enrich_batch(&t, now, ip.as_deref(), &raws))
        .await?;
    let mut items = Vec::with_capacity(enriched.len());
    for (i, (result, input_hash)) in enriched.into_iter().zip(hashes).enumerate() {
        let activity = result.map_err(|e| {
            if submission.is_single() {
                e
            } else {
                e.within(&format!("[{i}]"))
            }
        })?;
        items.push(IngestItem {
            activity,
            input_hash,
        });
    }
    if let Some(k) = idempotency_key {
        // Issue 26.7: the key is bound to this whole request (once it is known valid), so a
        // retry with an item more or a field changed is 409, not partly recorded.
        app.store
            .claim_idempotency(
                tenant.id(),
                crm_store::idempotency::scoped_key(crm_api::ingest::ENDPOINT, k),
                submission.request_hash(),
                now.millis(),
            )
            .await?;
    }
    let batch = items.len();
    let _queued = queue_room(app, batch).await?;
    let stored = app
        .store
        .ingest(tenant.clone(), items, now.millis())
        .await?;
    app.fanout.notify();
    app.stats.recorded(
        tenant.id(),
        stored
            .iter()
            .filter(|s| !s.duplicate)
            .map(|s| (s.outcome, s.credits.units())),
        batch,
    );
    Ok(stored)
}

/// Longest an ingest waits for room among the activities queued for the writer.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Room for `n` activities in the writer's queue (waits briefly, then 503): memory
/// held for the writer is bounded by activities, not by jobs.
pub async fn queue_room(app: &App, n: usize) -> HostResult<tokio::sync::OwnedSemaphorePermit> {
    let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    tokio::time::timeout(QUEUE_WAIT, app.limits.queued.clone().acquire_many_owned(n))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| HostError::Overloaded {
            code: crm_api::error::ApiCode::Unavailable,
            message: "the writer is saturated; retry shortly".to_owned(),
            retry_after: 1,
        })
}
