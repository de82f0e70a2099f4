//! `crm-worker`: the CRM activity engine at the edge. Same HTTP API as crm-host where
//! the edge can serve it (others answer 501 with the reason); D1 for storage, a Queue
//! between ingest and the D1 writer. All rules come from crm-core.

mod consumer;
mod d1;
mod http;
mod ingest;
mod reads;
mod store;

use worker::{Context, Env, MessageBatch, Request, Response, Result, Router, event};

use crate::http::{Failure, respond};
use crm_store::listing::Subject;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Router::new()
        .get("/healthz", |_, _| {
            Response::from_json(&serde_json::json!({ "status": "ok" }))
        })
        .get_async("/v1/directory", |req, ctx| async move {
            respond(reads::directory(&req, &ctx.env).await)
        })
        .put_async("/v1/directory", |mut req, ctx| async move {
            respond(ingest::put_directory(&mut req, &ctx.env).await)
        })
        .post_async("/v1/permissions/check", |mut req, ctx| async move {
            respond(reads::check(&mut req, &ctx.env).await)
        })
        .get_async("/v1/credits/balance", |req, ctx| async move {
            respond(reads::balance(&req, &ctx.env).await)
        })
        .post_async("/v1/activities", |mut req, ctx| async move {
            respond(ingest::activities(&mut req, &ctx.env).await)
        })
        .get_async("/v1/activities", |req, ctx| async move {
            respond(reads::list(&req, &ctx.env, Subject::Tenant).await)
        })
        .get_async("/v1/users/:id/activities", |req, ctx| async move {
            let scope = Subject::User(ctx.param("id").cloned().unwrap_or_default());
            respond(reads::list(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/departments/:id/activities", |req, ctx| async move {
            let scope = Subject::Department(ctx.param("id").cloned().unwrap_or_default());
            respond(reads::list(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/reports/users/:id", |req, ctx| async move {
            let scope = Subject::User(ctx.param("id").cloned().unwrap_or_default());
            respond(reads::report(&req, &ctx.env, scope).await)
        })
        .get_async("/v1/reports/departments/:id", |req, ctx| async move {
            let scope = Subject::Department(ctx.param("id").cloned().unwrap_or_default());
            respond(reads::report(&req, &ctx.env, scope).await)
        })
        .post_async("/v1/conformance", |mut req, ctx| async move {
            respond(reads::conformance(&mut req, &ctx.env).await)
        })
        .patch("/v1/directory", |_, _| respond::<()>(Err(not_at_edge())))
        .or_else_any_method("/v1/*rest", |_, _| respond::<()>(Err(not_at_edge())))
        .or_else_any_method("/*rest", |_, _| {
            respond::<()>(Err(Failure::not_found("no such endpoint")))
        })
        .run(req, env)
        .await
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    consumer::consume(batch, &env).await
}

fn not_at_edge() -> Failure {
    Failure::not_implemented(
        "not served at the edge yet: PATCH /v1/directory, prices, grants, leads, export and audit run on crm-host",
    )
}
