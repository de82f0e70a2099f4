//! `crm-worker`: the CRM activity engine at the edge. The same HTTP API as crm-host
//! (one OpenAPI document, `crm_core::api_spec`), D1 for storage, a Queue between ingest
//! and the D1 writer. All rules come from crm-core and crm-store; this crate only
//! drives D1, the queues and the Workers runtime. Endpoints the edge cannot serve
//! answer 501 with the reason (see ARCHITECTURE.md, "The edge").

mod admin;
mod archive;
mod audit;
mod auth;
mod consumer;
mod d1;
mod dead_letters;
mod http;
mod ingest;
mod message;
mod operations;
mod random;
mod reads;
mod retention;
mod shards;
mod status;
mod store;
mod upstream;

use worker::{
    Context, Env, MessageBatch, Request, Response, Result, Router, ScheduleContext, ScheduledEvent,
    event,
};

use crate::http::{Failure, respond};
use crm_store::listing::Subject;

/// Why the lead endpoints are not served at the edge.
const LEADS_AT_THE_EDGE: &str = "leads are served by crm-host: creating or changing a lead decides on what is stored (exists? which version?) inside the transaction that charges and records, and a D1 batch cannot branch on a read. At the edge, meter CRM operations with POST /v1/operations/{operation}";

fn param(ctx: &worker::RouteContext<()>, name: &str) -> String {
    ctx.param(name).cloned().unwrap_or_default()
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let response = Router::new()
        .get("/healthz", |_, _| respond(Ok(status::health())))
        .get_async("/readyz", |_, ctx| async move {
            respond(status::ready(&ctx.env).await)
        })
        .get("/v1/openapi.json", |_, _| respond(Ok(status::openapi())))
        .get_async("/v1/metrics", |req, ctx| async move {
            respond(status::metrics(&req, &ctx.env).await)
        })
        .get_async("/v1/session", |req, ctx| async move {
            respond(admin::session(&req, &ctx.env).await)
        })
        .get_async("/v1/directory", |req, ctx| async move {
            respond(admin::directory(&req, &ctx.env).await)
        })
        .put_async("/v1/directory", |mut req, ctx| async move {
            respond(admin::put_directory(&mut req, &ctx.env).await)
        })
        .patch_async("/v1/directory", |mut req, ctx| async move {
            respond(admin::patch_directory(&mut req, &ctx.env).await)
        })
        .get_async("/v1/policy", |req, ctx| async move {
            respond(admin::policy(&req, &ctx.env).await)
        })
        .put_async("/v1/policy", |mut req, ctx| async move {
            respond(admin::put_policy(&mut req, &ctx.env).await)
        })
        .get_async("/v1/credits/prices", |req, ctx| async move {
            respond(admin::prices(&req, &ctx.env).await)
        })
        .put_async("/v1/credits/prices", |mut req, ctx| async move {
            respond(admin::put_prices(&mut req, &ctx.env).await)
        })
        .get_async("/v1/credits/balance", |req, ctx| async move {
            respond(admin::balance(&req, &ctx.env).await)
        })
        .post_async("/v1/credits/grants", |mut req, ctx| async move {
            respond(admin::grant(&mut req, &ctx.env).await)
        })
        .get_async("/v1/keys", |req, ctx| async move {
            respond(admin::list_keys(&req, &ctx.env).await)
        })
        .post_async("/v1/keys", |mut req, ctx| async move {
            respond(admin::create_key(&mut req, &ctx.env).await)
        })
        .delete_async("/v1/keys/:id", |req, ctx| async move {
            let id = param(&ctx, "id");
            respond(admin::revoke_key(&req, &ctx.env, &id).await)
        })
        .post_async("/v1/viewer-tokens", |mut req, ctx| async move {
            respond(admin::viewer_token(&mut req, &ctx.env).await)
        })
        .post_async("/v1/permissions/check", |mut req, ctx| async move {
            respond(reads::check(&mut req, &ctx.env).await)
        })
        .post_async("/v1/activities", |mut req, ctx| async move {
            respond(ingest::activities(&mut req, &ctx.env).await)
        })
        .get_async("/v1/activities", |req, ctx| async move {
            respond(reads::list(&req, &ctx.env, Subject::Tenant).await)
        })
        .get_async("/v1/users/:id/activities", |req, ctx| async move {
            let scope = Subject::User(param(&ctx, "id"));
            respond(reads::list(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/departments/:id/activities", |req, ctx| async move {
            let scope = Subject::Department(param(&ctx, "id"));
            respond(reads::list(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/reports", |req, ctx| async move {
            respond(reads::report(&req, &ctx.env, Subject::Tenant).await)
        })
        .get_async("/v1/reports/users/:id", |req, ctx| async move {
            let scope = Subject::User(param(&ctx, "id"));
            respond(reads::report(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/reports/departments/:id", |req, ctx| async move {
            let scope = Subject::Department(param(&ctx, "id"));
            respond(reads::report(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/dashboards/users/:id", |req, ctx| async move {
            let id = param(&ctx, "id");
            respond(reads::dashboard(&req, &ctx.env, id).await)
        })
        .post_async("/v1/operations/:operation", |mut req, ctx| async move {
            let op = param(&ctx, "operation");
            respond(operations::metering(&mut req, &ctx.env, &op).await)
        })
        .get_async("/v1/export", |req, ctx| async move {
            match audit::export(&req, &ctx.env).await {
                Ok(r) => Ok(r),
                Err(e) => respond::<()>(Err(e)),
            }
        })
        .get_async("/v1/audit/verify", |req, ctx| async move {
            respond(audit::verify(&req, &ctx.env).await)
        })
        .get_async("/v1/dead-letters", |req, ctx| async move {
            respond(dead_letters::list(&req, &ctx.env).await)
        })
        .post_async("/v1/dead-letters/:id/redrive", |req, ctx| async move {
            let id = param(&ctx, "id");
            respond(dead_letters::redrive(&req, &ctx.env, &id).await)
        })
        .post_async("/v1/testing/dead-letters", |mut req, ctx| async move {
            respond(dead_letters::inject(&mut req, &ctx.env).await)
        })
        .post_async("/v1/archive", |mut req, ctx| async move {
            respond(archive::archive(&mut req, &ctx.env).await)
        })
        .post_async("/v1/conformance", |mut req, ctx| async move {
            respond(reads::conformance(&mut req, &ctx.env).await)
        })
        .or_else_any_method("/v1/leads", |_, _| {
            respond::<()>(Err(Failure::not_implemented(LEADS_AT_THE_EDGE)))
        })
        .or_else_any_method("/v1/leads/:id", |_, _| {
            respond::<()>(Err(Failure::not_implemented(LEADS_AT_THE_EDGE)))
        })
        .or_else_any_method("/metrics", |_, _| {
            respond::<()>(Err(Failure::not_implemented(
                "no Prometheus scrape at the edge: Workers have no long-lived process to count in; use GET /v1/metrics (from D1) and Workers analytics",
            )))
        })
        .or_else_any_method("/*rest", |req, _| respond::<()>(Err(status::unrouted(&req))))
        .run(req, env)
        .await?;
    if response.status_code() == 405 {
        // The router's own answer for a known path and another method is plain text.
        return respond::<()>(Err(status::method_not_allowed()));
    }
    Ok(response)
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    retention::run(&env).await;
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    if batch.queue() == dead_letters::QUEUE {
        dead_letters::consume(batch, &env).await
    } else {
        consumer::consume(batch, &env).await
    }
}
