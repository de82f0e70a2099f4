//! Retention at the edge, run by the cron trigger (`wrangler.toml`): per shard and per
//! tenant with `retentionDays`, the expired prefix of its chain is removed — archived
//! segments first (whole, from D1's `archives` and then their R2 objects), then rows in
//! D1 — never past what the upstream has yet to receive, and the anchor moves with it;
//! each tenant's rollups of the days that closed are compacted (`crm_store::compaction`)
//! and its expiry-window credit alerts raised (`crm_store::alerts::expiring`).
//! The rules are crm-store's (`retention`), the same the host's pass applies.

use crm_core::TenantPolicy;
use crm_core::duration::DAY_MS;
use crm_store::{alerts, archive, compaction, grants, idempotency, retention};

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};
use crate::{archive as archived, shards, upstream};

/// Rows read per step of the database prefix.
const BATCH: usize = 1_000;

/// Steps per tenant and pass: an invocation has 1,000 subrequests; what is left waits
/// for the next pass.
const MAX_STEPS_PER_TENANT: usize = 20;

/// One pass over every shard; failures are logged and retried by the next pass.
pub async fn run(env: &worker::Env) {
    let mut shard = 0;
    while let Some(db) = Db::shard(env, shard) {
        if let Err(e) = run_shard(env, &db).await {
            worker::console_error!("retention on shard {shard} stopped: {}", e.message());
        }
        shard += 1;
    }
}

async fn run_shard(env: &worker::Env, db: &Db) -> ApiResult<()> {
    let now = now_ms();
    let tenants = d1::query(db, &retention::tenants(DIALECT)).await?;
    for row in &tenants {
        let tenant = row.string(0)?;
        // A tenant placed elsewhere left its old rows here only while being moved; a
        // tenant being moved is not touched until its move ends.
        let placement = shards::placement(env, &tenant).await?;
        if placement.moving || placement.shard != db.shard_number() {
            continue;
        }
        compact(db, &tenant, now).await?;
        let policy: TenantPolicy = serde_json::from_str(row.text(1)?).map_err(Failure::internal)?;
        expiry_alerts(db, &tenant, &policy, now).await?;
        let Some(days) = policy.retention_days else {
            continue;
        };
        let cutoff = now - i64::from(days) * DAY_MS;
        let deliverable_to = deliverable(env, db, &tenant, row.uint(3)?).await?;
        expire(env, db, &tenant, row.uint(2)?, cutoff, deliverable_to).await?;
    }
    d1::transaction(
        db,
        &[
            idempotency::prune(DIALECT, now - idempotency::WINDOW_MS),
            crm_store::viewer_tokens::prune(DIALECT, now),
        ],
    )
    .await
}

/// Compacts the tenant's rollups of each closed day of the last week not compacted yet
/// (`crm_store::compaction`), a day per D1 transaction.
async fn compact(db: &Db, tenant: &str, now: i64) -> ApiResult<()> {
    let done = d1::query(db, &compaction::done(DIALECT, tenant, now))
        .await?
        .iter()
        .map(compaction::decode_done)
        .collect::<Result<Vec<_>, _>>()?;
    for day in compaction::closed_days(now) {
        if !done.contains(&day) {
            d1::transaction(db, &compaction::compact_day(DIALECT, tenant, day)).await?;
        }
    }
    Ok(())
}

/// Raises the tenant's expiry-window alerts due at `now` (`crm_store::alerts::expiring`:
/// once per rule and grant however often the cron runs): one read, one D1 batch.
async fn expiry_alerts(db: &Db, tenant: &str, policy: &TenantPolicy, now: i64) -> ApiResult<()> {
    if !crm_core::alerts::watches_expiry(&policy.credit_alerts) {
        return Ok(());
    }
    let grants = d1::query(db, &grants::open(DIALECT, tenant)).await?;
    let due = alerts::expiring(DIALECT, tenant, &policy.credit_alerts, &grants, now)?;
    if due.is_empty() {
        return Ok(());
    }
    d1::transaction(db, &due).await
}

/// The head, or less while the upstream has yet to receive records.
async fn deliverable(env: &worker::Env, db: &Db, tenant: &str, head: u64) -> ApiResult<u64> {
    if upstream::url(env).is_none() {
        return Ok(head);
    }
    let delivered = d1::query_opt(db, &retention::delivered(DIALECT, tenant, upstream::SINK))
        .await?
        .map(|r| r.uint(0))
        .transpose()?
        .unwrap_or(0);
    Ok(head.min(delivered))
}

async fn expire(
    env: &worker::Env,
    db: &Db,
    tenant: &str,
    mut anchor: u64,
    cutoff: i64,
    deliverable_to: u64,
) -> ApiResult<()> {
    let segments = d1::query(db, &archive::segments_after(DIALECT, tenant, anchor))
        .await?
        .iter()
        .map(archive::decode_segment)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(last) = retention::expired_segments(&segments, cutoff, deliverable_to) {
        d1::transaction(
            db,
            &retention::drop_segments_through(DIALECT, tenant, anchor, last),
        )
        .await?;
        anchor = last.last_seq;
    }
    archived::delete_objects_through(env, tenant, anchor).await?;
    if segments.iter().any(|s| s.last_seq > anchor) {
        // Archived records remain before the database's rows: they go first.
        return Ok(());
    }
    for _ in 0..MAX_STEPS_PER_TENANT {
        let rows = d1::query(db, &retention::oldest(DIALECT, tenant, anchor, BATCH))
            .await?
            .iter()
            .map(retention::decode_oldest)
            .collect::<Result<Vec<_>, _>>()?;
        let Some((last, hash)) = retention::expired_prefix(&rows, cutoff, deliverable_to) else {
            return Ok(());
        };
        d1::transaction(
            db,
            &retention::delete_through(DIALECT, tenant, anchor, last, &hash),
        )
        .await?;
        anchor = last;
        if rows.len() < BATCH || rows.last().map(|r| r.0) != Some(last) {
            return Ok(());
        }
    }
    Ok(())
}
