//! `crm-worker`: the CRM activity engine at the edge. The same HTTP API as crm-host
//! (one OpenAPI document, `crm_api::endpoints`), D1 for storage, a Queue between ingest
//! and the D1 writer. All rules come from crm-core and crm-store; this crate only
//! drives D1, the queues and the Workers runtime. Endpoints the edge cannot serve
//! answer 501 with the reason (see ARCHITECTURE.md, "The edge").

mod admin;
mod archive;
mod audit;
mod auth;
mod capacity;
mod consumer;
mod d1;
mod dead_letters;
mod delivery_hook;
mod flows;
mod http;
mod ingest;
mod invocation;
mod message;
mod operations;
mod operator;
mod outgoing;
mod random;
mod reads;
mod retention;
mod shards;
mod status;
mod store;
mod subjects;
mod upstream;
mod webhooks;

use worker::{
    Context, Env, MessageBatch, Request, Response, Result, ScheduleContext, ScheduledEvent, event,
};

use crate::http::{Answer, Failure, respond};
use crm_store::listing::Subject;

/// Why the lead endpoints are not served at the edge.
const LEADS_AT_THE_EDGE: &str = "leads are served by crm-host: creating or changing a lead decides on what is stored (exists? which version?) inside the transaction that charges and records, and a D1 batch cannot branch on a read. At the edge, meter CRM operations with POST /v1/operations/{operation}";

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let limits = invocation::Limits::of(&env);
    match invocation::run(limits, dispatch(&mut req, &env)).await {
        Ok(Reply::Json(answer)) => respond(Ok(answer)),
        Ok(Reply::Raw(response)) => Ok(response),
        Err(e) => respond::<()>(Err(e)),
    }
}

/// What a handler answers: a JSON answer, or a response it built itself (an export).
enum Reply {
    Json(Answer),
    Raw(Response),
}

fn json(answer: impl Into<Answer>) -> Reply {
    Reply::Json(answer.into())
}

/// Routes by `crm_api`'s endpoint table (the one crm-host's router is built from) and
/// runs the endpoint's handler; a documented endpoint without one here is a bug the
/// `every_endpoint_is_served` test finds.
async fn dispatch(req: &mut Request, env: &Env) -> std::result::Result<Reply, Failure> {
    let method = req.method().to_string();
    let path = req.path();
    if status::testing(env) {
        // The e2e suite's hooks, outside the API table (404 wherever CONFORMANCE is off).
        match (method.as_str(), path.as_str()) {
            ("POST", "/v1/conformance") => return Ok(json(reads::conformance(req).await?)),
            ("POST", "/v1/testing/dead-letters") => {
                return Ok(json(dead_letters::inject(req, env).await?));
            }
            ("POST", "/v1/testing/deliveries") => {
                return Ok(json(delivery_hook::deliver(req, env).await?));
            }
            _ => {}
        }
    }
    let route = crm_api::endpoints::route(&method, &path)?;
    let id = route.endpoint.id;
    if let Some(reason) = not_at_the_edge(id) {
        return Err(Failure::not_implemented(reason));
    }
    let mut ctx = http::context(req, env, route).await?;
    let c = &mut ctx;
    Ok(match id {
        "getHealth" => json(status::health()?),
        "getReadiness" => json(status::ready(env).await?),
        "getOpenApiDocument" => Reply::Raw(status::openapi()?),
        "getMetrics" => json(status::metrics(c, env).await?),
        "getSession" => json(admin::session(c, env).await?),
        "getDirectory" => json(admin::directory(c, env).await?),
        "replaceDirectory" => json(admin::put_directory(c, env).await?),
        "patchDirectory" => json(admin::patch_directory(c, env).await?),
        "getPolicy" => json(admin::policy(c, env).await?),
        "replacePolicy" => json(admin::put_policy(c, env).await?),
        "getPrices" => json(admin::prices(c, env).await?),
        "replacePrices" => json(admin::put_prices(c, env).await?),
        "getOperationPrice" => json(admin::price(c, env).await?),
        "getBalance" => json(admin::balance(c, env).await?),
        "provisionTenant" => json(operator::provision(c, env).await?),
        "listCreditLedger" => json(admin::ledger(c, env).await?),
        "grantCredits" => json(admin::grant(c, env).await?),
        "listCreditGrants" => json(admin::grants(c, env).await?),
        "listCreditAlerts" => json(admin::alerts(c, env).await?),
        "voidCreditGrant" => json(admin::void_grant(c, env).await?),
        "adjustCredits" => json(admin::adjust(c, env).await?),
        "listKeys" => json(admin::list_keys(c, env).await?),
        "createKey" => json(admin::create_key(c, env).await?),
        "revokeKey" => json(admin::revoke_key(c, env).await?),
        "listWebhooks" => json(webhooks::list(c, env).await?),
        "createWebhook" => json(webhooks::create(c, env).await?),
        "removeWebhook" => json(webhooks::remove(c, env).await?),
        "listWebhookDeliveries" => json(webhooks::deliveries(c, env).await?),
        "resendWebhookDelivery" => json(webhooks::resend(c, env).await?),
        "eraseSubject" => json(subjects::erase(c, env).await?),
        "createViewerToken" => json(admin::viewer_token(c, env).await?),
        "rotateViewerTokenSecret" => json(admin::rotate_viewer_secret(c, env).await?),
        "revokeViewerToken" => json(admin::revoke_viewer_token(c, env).await?),
        "checkPermissions" => json(reads::check(c, env).await?),
        "ingestActivities" => json(ingest::activities(c, env).await?),
        "listActivities" => json(reads::list(c, env, Subject::Tenant).await?),
        "getActivity" => json(reads::one(c, env).await?),
        "listEntityActivities" => json(reads::entity(c, env).await?),
        "listUserActivities" => {
            let subject = Subject::User(c.param("id")?);
            json(reads::list(c, env, subject).await?)
        }
        "listDepartmentActivities" => {
            let subject = Subject::Department(c.param("id")?);
            json(reads::list(c, env, subject).await?)
        }
        "getTenantReport" => json(reads::report(c, env, Subject::Tenant).await?),
        "getUserReport" => {
            let subject = Subject::User(c.param("id")?);
            json(reads::report(c, env, subject).await?)
        }
        "getDepartmentReport" => {
            let subject = Subject::Department(c.param("id")?);
            json(reads::report(c, env, subject).await?)
        }
        "getUserDashboard" => json(reads::dashboard(c, env).await?),
        "meterOperation" => json(operations::metering(c, env).await?),
        "exportActivities" => Reply::Raw(audit::export(c, env).await?),
        "verifyAuditChain" => json(audit::verify(c, env).await?),
        "getAuditCheckpoint" => json(audit::checkpoint(c, env).await?),
        "listDeadLetters" => json(dead_letters::list(c, env).await?),
        "redriveDeadLetter" => json(dead_letters::redrive(c, env).await?),
        "archiveHistory" => json(archive::archive(c, env).await?),
        other => {
            return Err(Failure::internal(format!(
                "{other} has no handler at the edge"
            )));
        }
    })
}

/// Endpoints the edge does not serve, with the reason (501).
fn not_at_the_edge(id: &str) -> Option<&'static str> {
    match id {
        "createLead" | "listLeads" | "getLead" | "updateLead" => Some(LEADS_AT_THE_EDGE),
        "getPrometheusMetrics" => Some(
            "no Prometheus scrape at the edge: Workers have no long-lived process to count in; use GET /v1/metrics (from D1) and Workers analytics",
        ),
        _ => None,
    }
}

/// The hourly trigger of `wrangler.toml`; the other (every minute) delivers webhooks.
const RETENTION_CRON: &str = "17 * * * *";

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    // Two triggers (wrangler.toml): the hourly one also runs retention.
    let pass = async {
        if event.cron() == RETENTION_CRON {
            retention::run(&env).await;
        }
        webhooks::run(&env).await;
    };
    invocation::run(invocation::Limits::of(&env), pass).await;
}

#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
    let limits = invocation::Limits::of(&env);
    if batch.queue() == dead_letters::QUEUE {
        invocation::run(limits, dead_letters::consume(batch, &env)).await
    } else {
        invocation::run(limits, consumer::consume(batch, &env)).await
    }
}
