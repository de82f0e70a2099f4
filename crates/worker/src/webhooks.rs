//! Webhook endpoints at the edge (issue 27): the `/v1/webhooks…` endpoints with
//! crm-host's rules and answers (`crm_api::webhooks`), and delivery from the cron
//! pass — per shard, the fan-in of new credit alert events into deliveries, then up to
//! `crm_store::webhooks::CLAIM_BATCH` due deliveries claimed and sent, each signed
//! with its endpoint's secret (`crate::outgoing`). The statements
//! are crm-store's, the same crm-host's task runs.
//!
//! Budgets per pass and shard: one D1 read of tenants with new events, then per such
//! tenant (at most [`MAX_FAN_IN_TENANTS`]) two reads and one batch; one claim, and per
//! claimed delivery one read, one fetch and one write.

use crm_api::flow::webhooks::{
    CreateWebhook, ListWebhooks, RemoveWebhook, ResendDelivery, WebhookDeliveries,
};
use crm_api::webhook_targets::{TargetPolicy, attempt_target};
use crm_api::webhooks::NewWebhookRequest;
use crm_store::webhooks::{self, Delivery, Outcome};
use crm_store::{alerts, outbox};
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::flows;
use crate::http::{Answer, ApiResult, Ctx};
use crate::random;

/// Tenants fanned in per pass and shard: each costs three queries; the rest wait for
/// the next pass (a minute).
const MAX_FAN_IN_TENANTS: usize = 50;

/// `WEBHOOK_ALLOW_HOSTS`: hosts allowed although private (local development and the
/// tests' receiver); none in production, where Workers cannot reach private networks
/// anyway.
fn targets(env: &Env) -> TargetPolicy {
    env.var("WEBHOOK_ALLOW_HOSTS")
        .map(|v| TargetPolicy::from_list(&v.to_string()))
        .unwrap_or_default()
}

pub async fn list(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let list = flows::run(ctx, env, |cx| Box::new(ListWebhooks::new(cx))).await?;
    Answer::of(200, &list)
}

/// `POST /v1/webhooks`: 201 with the secret, the only time it is shown.
pub async fn create(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let request: NewWebhookRequest = ctx.parse()?;
    let mut random = [0u8; webhooks::ENDPOINT_RANDOM_BYTES];
    random::fill(&mut random)?;
    let targets = targets(env);
    let created = flows::run(ctx, env, |cx| {
        Box::new(CreateWebhook::new(cx, request, targets, random))
    })
    .await?;
    Answer::of(201, &created)
}

pub async fn remove(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    flows::run(ctx, env, |cx| Box::new(RemoveWebhook::new(cx, id))).await?;
    Ok(().into())
}

pub async fn deliveries(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let params = ctx.query.clone();
    let page = flows::run(ctx, env, |cx| {
        Box::new(WebhookDeliveries::new(cx, id, params))
    })
    .await?;
    Answer::of(200, &page)
}

/// `POST /v1/webhooks/{id}/deliveries/{deliveryId}/resend`: 202; the next cron pass
/// sends it.
pub async fn resend(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let (id, delivery) = (ctx.param("id")?, ctx.param("deliveryId")?);
    let resent = flows::run(ctx, env, |cx| {
        Box::new(ResendDelivery::new(cx, id, delivery))
    })
    .await?;
    Answer::of(202, &resent)
}

/// The minute cron pass on every shard: webhooks, then the upstream's two feeds
/// (`crate::upstream::deliver_shard`); failures are logged and retried by the
/// next pass (fan-in keeps its cursor, a claimed delivery's lease expires).
pub async fn run(env: &Env) {
    let mut shard = 0;
    while let Some(db) = Db::shard(env, shard) {
        if let Err(e) = fan_in(&db).await {
            worker::console_error!("webhook fan-in on shard {shard} stopped: {}", e.message());
        }
        if let Err(e) = dispatch(env, &db).await {
            worker::console_error!("webhook dispatch on shard {shard} stopped: {}", e.message());
        }
        if let Err(e) = crate::upstream::deliver_shard(env, &db).await {
            worker::console_error!(
                "upstream delivery on shard {shard} stopped: {}",
                e.message()
            );
        }
        shard += 1;
    }
}

async fn fan_in(db: &Db) -> ApiResult<()> {
    let pending = d1::query(db, &alerts::pending(DIALECT, webhooks::SINK)).await?;
    for row in pending.iter().take(MAX_FAN_IN_TENANTS) {
        let p = outbox::decode_pending(row)?;
        let t = p.tenant_id.as_str();
        let endpoints = d1::query(db, &webhooks::list(DIALECT, t)).await?;
        let events = d1::query(
            db,
            &alerts::after(DIALECT, t, p.delivered_seq, webhooks::FAN_IN_BATCH),
        )
        .await?;
        let step = webhooks::fan_in_step(DIALECT, t, &endpoints, &events, now_ms())?;
        d1::transaction(db, &step).await?;
    }
    Ok(())
}

async fn dispatch(env: &Env, db: &Db) -> ApiResult<()> {
    let claimed = d1::query(db, &webhooks::claim_due(DIALECT, now_ms()))
        .await?
        .iter()
        .map(webhooks::decode_delivery)
        .collect::<Result<Vec<_>, _>>()?;
    let policy = targets(env);
    for delivery in claimed {
        let outcome = attempt(db, &policy, &delivery).await;
        d1::transaction(
            db,
            &[webhooks::settle(DIALECT, &delivery, &outcome, now_ms())],
        )
        .await?;
    }
    Ok(())
}

/// One signed POST of a delivery to its endpoint.
async fn attempt(db: &Db, policy: &TargetPolicy, delivery: &Delivery) -> Outcome {
    let found = d1::query_opt(
        db,
        &webhooks::get(DIALECT, &delivery.tenant_id, &delivery.endpoint_id),
    )
    .await;
    let endpoint = match found.map(|r| r.map(|r| webhooks::decode_endpoint(&r)).transpose()) {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return Outcome::Failed(format!("reading the endpoint: {e}")),
        Err(e) => return Outcome::Failed(format!("reading the endpoint: {}", e.message())),
    };
    let (url, secret) = match attempt_target(policy, endpoint.as_ref()) {
        Ok(target) => target,
        Err(outcome) => return outcome,
    };
    match crate::outgoing::post(
        url.as_str(),
        &delivery.payload,
        &[],
        Some(&secret),
        webhooks::SEND_TIMEOUT_MS,
    )
    .await
    {
        Ok(status) => Outcome::Answered(status),
        Err(e) => Outcome::Failed(e),
    }
}
