//! The retention pass, run in the background: per tenant with `retentionDays`, delete
//! the expired prefix of its chain (never records a sink has yet to deliver) and move
//! its anchor; compact the rollups of each day that closed (`crm_store::compaction`);
//! raise the expiry-window credit alerts now due (`crm_store::alerts::expiring`); forget
//! idempotency answers older than a day.

use crm_core::duration::DAY_MS;
use std::time::Duration;

use crm_core::TenantPolicy;
use crm_store::{alerts, compaction, grants, idempotency, retention};

use super::{App, clock};
use crate::error::{HostError, HostResult};

/// How often the pass runs: retention is measured in days, a minute is prompt.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Records deleted per tenant per transaction: keeps each transaction short so ingest
/// is never held up long.
const BATCH: usize = 5_000;

/// One pass over every tenant; answers how many records were deleted.
pub async fn run_once(app: &App, now: i64) -> HostResult<u64> {
    let d = app.store.dialect();
    let tenants = app
        .store
        .read(move |c| {
            c.query(&retention::tenants(d))?
                .iter()
                .map(|r| Ok((r.string(0)?, r.string(1)?, r.uint(2)?, r.uint(3)?)))
                .collect::<HostResult<Vec<_>>>()
        })
        .await?;
    let mut deleted = 0;
    for (tenant, policy, mut anchor, head) in tenants {
        compact(app, &tenant, now).await?;
        let policy: TenantPolicy = serde_json::from_str(&policy).map_err(HostError::internal)?;
        expiry_alerts(app, &tenant, &policy, now).await?;
        let Some(days) = policy.retention_days else {
            continue;
        };
        let cutoff = now - i64::from(days) * DAY_MS;
        let deliverable_to = delivered_everywhere(app, &tenant, head).await?;
        loop {
            let (t, a) = (tenant.clone(), anchor);
            let rows = app
                .store
                .read(move |c| {
                    c.query(&retention::oldest(d, &t, a, BATCH))?
                        .iter()
                        .map(|r| retention::decode_oldest(r).map_err(HostError::from))
                        .collect::<HostResult<Vec<_>>>()
                })
                .await?;
            let Some((last, hash)) = retention::expired_prefix(&rows, cutoff, deliverable_to)
            else {
                break;
            };
            let t = tenant.clone();
            app.store
                .write(Some(&tenant), move |c| {
                    c.execute_all(&retention::delete_through(d, &t, anchor, last, &hash))?;
                    Ok(())
                })
                .await?;
            deleted += last - anchor;
            anchor = last;
            if rows.len() < BATCH || rows.last().map(|r| r.0) != Some(last) {
                break;
            }
        }
    }
    app.store
        .write(None, move |c| {
            c.execute(&idempotency::prune(d, now - idempotency::WINDOW_MS))?;
            c.execute(&crm_store::viewer_tokens::prune(d, now))?;
            Ok(())
        })
        .await?;
    Ok(deleted)
}

/// Compacts the tenant's rollups of each closed day of the last week not compacted yet
/// (`crm_store::compaction`), a day per transaction.
async fn compact(app: &App, tenant: &str, now: i64) -> HostResult<()> {
    let d = app.store.dialect();
    let t = tenant.to_owned();
    let done = app
        .store
        .read(move |c| {
            c.query(&compaction::done(d, &t, now))?
                .iter()
                .map(|r| Ok(compaction::decode_done(r)?))
                .collect::<HostResult<Vec<i64>>>()
        })
        .await?;
    for day in compaction::closed_days(now) {
        if done.contains(&day) {
            continue;
        }
        let t = tenant.to_owned();
        app.store
            .write(Some(tenant), move |c| {
                c.execute_all(&compaction::compact_day(d, &t, day))?;
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// The highest seq every sink of this host has delivered (the head without sinks).
async fn delivered_everywhere(app: &App, tenant: &str, head: u64) -> HostResult<u64> {
    let d = app.store.dialect();
    let mut lowest = head;
    for sink in app.fanout.log_sinks() {
        let t = tenant.to_owned();
        let seq = app
            .store
            .read(move |c| {
                Ok(c.query_opt(&retention::delivered(d, &t, sink))?
                    .map(|r| r.uint(0))
                    .transpose()?)
            })
            .await?
            .unwrap_or(0);
        lowest = lowest.min(seq);
    }
    Ok(lowest)
}

/// Runs the pass every [`INTERVAL`] until the process ends.
pub fn spawn(app: App) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            match run_once(&app, clock::now().millis()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "retention pass"),
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    });
}

/// Raises the tenant's expiry-window alerts due at `now` (once per rule and grant,
/// however often the pass runs and on however many hosts).
async fn expiry_alerts(app: &App, tenant: &str, policy: &TenantPolicy, now: i64) -> HostResult<()> {
    if !crm_core::alerts::watches_expiry(&policy.credit_alerts) {
        return Ok(());
    }
    let d = app.store.dialect();
    let (t, rules) = (tenant.to_owned(), policy.credit_alerts.clone());
    app.store
        .write(Some(tenant), move |c| {
            let grants = c.query(&grants::open(d, &t))?;
            c.execute_all(&alerts::expiring(d, &t, &rules, &grants, now)?)?;
            Ok(())
        })
        .await
}
