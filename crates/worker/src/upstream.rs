//! The upstream sink at the edge, off the write path: the minute cron pass posts, per
//! shard, what the sink has not confirmed of each tenant — the range (cursor, head] of
//! `crm_store::outbox`, the same view crm-host's relay reads — to
//! `{UPSTREAM_URL}/api/activities/batch` as `{ "activities": [...] }`, in order, and
//! moves the cursor only after a 2xx; the credit alert events likewise to
//! `{UPSTREAM_URL}/api/credit-alerts/batch` (`crm_store::feeds`). A failure leaves the
//! cursor where it is and the next pass tries again, so delivery is at least once and
//! every record carries its id for deduplication; each POST has a deadline, so a slow
//! upstream costs a pass some seconds and never holds up the queue consumer, which
//! only writes. Configured by the `UPSTREAM_URL` variable and the optional
//! `UPSTREAM_AUTH` secret (`Name: value`); with the `UPSTREAM_SIGNING_SECRET` secret
//! (`whsec_…`) every POST is signed as Standard Webhooks says, by the same
//! `crm_core::webhook_signature` crm-host uses.

use crm_core::webhook_signature::SigningSecret;
use crm_store::feeds::Feed;
use crm_store::outbox;
use serde_json::value::RawValue;
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};

/// The activity sink's name in `sink_cursors` (the same as crm-host's upstream sink).
pub const SINK: &str = "upstream";
/// Tenants one cron pass delivers per shard and feed: each costs at most
/// 1 + 2 × [`MAX_POSTS`] queries and [`MAX_POSTS`] subrequests, so two feeds on two
/// shards stay within an invocation's 1,000 of each; the rest waits a minute.
const MAX_TENANTS_PER_PASS: usize = 10;
/// Activities per POST, as crm-host's upstream sink.
const BATCH: usize = 100;
/// POSTs per tenant and pass.
const MAX_POSTS: usize = 20;
/// An upstream that has not answered within this has failed the POST (as crm-host's
/// `fanout::upstream::DEFAULT_TIMEOUT`).
const DEADLINE_MS: u64 = 10_000;

/// The configured upstream (`UPSTREAM_URL`), if any.
pub fn url(env: &Env) -> Option<String> {
    env.var("UPSTREAM_URL")
        .map(|v| v.to_string())
        .ok()
        .filter(|u| !u.is_empty())
}

/// Delivers both feeds of this shard's tenants (the minute cron pass's part); a
/// tenant's failure is logged and left for the next pass.
pub async fn deliver_shard(env: &Env, db: &Db) -> ApiResult<()> {
    let Some(url) = url(env) else {
        return Ok(());
    };
    for feed in [Feed::Activities, Feed::Alerts] {
        let pending = d1::query(db, &feed.pending(DIALECT, feed.upstream_sink())).await?;
        for row in pending.iter().take(MAX_TENANTS_PER_PASS) {
            let tenant = outbox::decode_pending(row)?.tenant_id;
            if let Err(e) = deliver_to(env, db, feed, &tenant, &url).await {
                worker::console_error!("upstream delivery for {tenant} stopped: {}", e.message());
            }
        }
    }
    Ok(())
}

/// The last seq the upstream confirmed for a tenant (0 before the first).
pub async fn delivered(db: &Db, tenant: &str) -> ApiResult<u64> {
    cursor(db, SINK, tenant).await
}

async fn cursor(db: &Db, sink: &str, tenant: &str) -> ApiResult<u64> {
    Ok(d1::query_opt(db, &outbox::cursor(DIALECT, tenant, sink))
        .await?
        .map(|r| r.uint(0))
        .transpose()?
        .unwrap_or(0))
}

async fn deliver_to(env: &Env, db: &Db, feed: Feed, tenant: &str, url: &str) -> ApiResult<()> {
    let sink = feed.upstream_sink();
    let (path, member) = feed.upstream_route();
    let mut after = cursor(db, sink, tenant).await?;
    for _ in 0..MAX_POSTS {
        let rows = d1::query(db, &feed.after(DIALECT, tenant, after, BATCH)).await?;
        let outgoing = rows
            .iter()
            .map(|r| feed.decode(tenant, r))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = outgoing.last().map(|o| o.seq) else {
            return Ok(());
        };
        let raw = outgoing
            .iter()
            .map(|o| serde_json::from_str::<&RawValue>(&o.body))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::internal)?;
        let mut envelope = serde_json::Map::new();
        envelope.insert(member.to_owned(), serde_json::json!(raw));
        let body = serde_json::Value::Object(envelope).to_string();
        post(env, &format!("{}{path}", url.trim_end_matches('/')), &body).await?;
        d1::transaction(
            db,
            &[outbox::advance(DIALECT, tenant, sink, last, now_ms())],
        )
        .await?;
        after = last;
    }
    Ok(())
}

/// `UPSTREAM_SIGNING_SECRET`, when configured; a malformed one stops delivery (and says
/// why in the log) rather than sending unsigned.
fn signing_secret(env: &Env) -> ApiResult<Option<SigningSecret>> {
    let Ok(text) = env
        .secret("UPSTREAM_SIGNING_SECRET")
        .or_else(|_| env.var("UPSTREAM_SIGNING_SECRET"))
        .map(|s| s.to_string())
    else {
        return Ok(None);
    };
    SigningSecret::parse(&text)
        .map(Some)
        .map_err(|e| Failure::internal(format!("UPSTREAM_SIGNING_SECRET: {e}")))
}

async fn post(env: &Env, target: &str, body: &str) -> ApiResult<()> {
    // A secret in production; a plain variable works too (local development).
    let auth = env
        .secret("UPSTREAM_AUTH")
        .or_else(|_| env.var("UPSTREAM_AUTH"))
        .map(|s| s.to_string())
        .ok();
    let header = auth
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()));
    let secret = signing_secret(env)?;
    let status = crate::outgoing::post(
        target,
        body,
        header.as_slice(),
        secret.as_ref(),
        DEADLINE_MS,
    )
    .await
    .map_err(|e| Failure::internal(format!("upstream: {e}")))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Failure::internal(format!("upstream answered {status}")))
    }
}
