//! The upstream sink at the edge: after the consumer writes a tenant's activities, it
//! posts what the sink has not confirmed — the range (cursor, head] of
//! `crm_store::outbox`, the same view crm-host's relay reads — to
//! `{UPSTREAM_URL}/api/activities/batch` as `{ "activities": [...] }`, in order, and
//! moves the cursor only after a 2xx. A failure leaves the cursor where it is: the next
//! consumer invocation for the tenant (the queue's retries and new traffic) tries
//! again, so delivery is at least once and every record carries its id for
//! deduplication. Configured by the `UPSTREAM_URL` variable and the optional
//! `UPSTREAM_AUTH` secret (`Name: value`); with the `UPSTREAM_SIGNING_SECRET` secret
//! (`whsec_…`) every POST is signed as Standard Webhooks says, by the same
//! `crm_core::webhook_signature` crm-host uses. Credit alert events go to the same
//! upstream (`crm_store::feeds::Feed::Alerts`: `{URL}/api/credit-alerts/batch`), from
//! the minute cron pass, since grants and adjustments raise them outside the consumer.

use crm_core::webhook_signature::SigningSecret;
use crm_store::feeds::Feed;
use crm_store::outbox;
use serde_json::value::RawValue;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};

/// The activity sink's name in `sink_cursors` (the same as crm-host's upstream sink).
pub const SINK: &str = "upstream";
/// Tenants whose alert events one cron pass delivers per shard (each costs at most
/// [`MAX_QUERIES`] queries and [`MAX_POSTS`] subrequests; there are rarely many).
const MAX_ALERT_TENANTS: usize = 10;
/// Activities per POST, as crm-host's upstream sink.
const BATCH: usize = 100;
/// POSTs per consumer invocation and tenant: bounds the subrequests one invocation
/// spends (Workers allow 1,000), the rest waits for the next one.
const MAX_POSTS: usize = 20;

/// D1 queries one delivery makes at most: the cursor, a read and a cursor move per POST.
pub const MAX_QUERIES: usize = 1 + 2 * MAX_POSTS;

/// The configured upstream (`UPSTREAM_URL`), if any.
pub fn url(env: &Env) -> Option<String> {
    env.var("UPSTREAM_URL")
        .map(|v| v.to_string())
        .ok()
        .filter(|u| !u.is_empty())
}

/// Delivers the tenant's backlog when an upstream is configured; failures are logged
/// and retried later (the cursor stays).
pub async fn deliver(env: &Env, tenant: &str) {
    let Some(url) = url(env) else {
        return;
    };
    let delivered = match Db::of_tenant(env, tenant).await {
        Ok(db) => deliver_to(env, &db, Feed::Activities, tenant, &url).await,
        Err(e) => Err(e),
    };
    if let Err(e) = delivered {
        worker::console_error!("upstream delivery for {tenant} stopped: {}", e.message());
    }
}

/// Delivers the alert events of this shard's tenants (the cron pass's part).
pub async fn deliver_alerts(env: &Env, db: &Db) -> ApiResult<()> {
    let Some(url) = url(env) else {
        return Ok(());
    };
    let feed = Feed::Alerts;
    let pending = d1::query(db, &feed.pending(DIALECT, feed.upstream_sink())).await?;
    for row in pending.iter().take(MAX_ALERT_TENANTS) {
        let tenant = outbox::decode_pending(row)?.tenant_id;
        if let Err(e) = deliver_to(env, db, feed, &tenant, &url).await {
            worker::console_error!("alert delivery for {tenant} stopped: {}", e.message());
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
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    // A secret in production; a plain variable works too (local development).
    let auth = env
        .secret("UPSTREAM_AUTH")
        .or_else(|_| env.var("UPSTREAM_AUTH"))
        .map(|s| s.to_string());
    if let Ok(auth) = auth
        && let Some((name, value)) = auth.split_once(':')
    {
        headers.set(name.trim(), value.trim())?;
    }
    if let Some(secret) = signing_secret(env)? {
        // Signed when sent: a retry is a fresh timestamp and the same id.
        for (name, value) in secret.headers(body.as_bytes(), now_ms() / 1000).pairs() {
            headers.set(name, value)?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let response = Fetch::Request(Request::new_with_init(target, &init)?)
        .send()
        .await?;
    if (200..300).contains(&response.status_code()) {
        Ok(())
    } else {
        Err(Failure::internal(format!(
            "upstream answered {}",
            response.status_code()
        )))
    }
}
