//! The HTTP API (docs/design.md §4): one file per resource, JSON errors everywhere.

mod activities;
mod assets;
mod audit;
mod auth;
mod credits;
mod crm;
mod dashboards;
mod directory;
mod edge_only;
mod error;
mod export;
mod flows;
mod health;
mod idempotency;
mod keys;
mod metrics;
mod operator;
mod permissions;
mod policy;
mod reports;
mod session;
mod subjects;
mod tokens;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::collections::BTreeMap;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use axum::routing::{MethodRouter, delete, get, patch, post, put};
use crm_api::endpoints::{self, Endpoint};
use tower_http::trace::TraceLayer;

use crate::service::App;

/// The handler of a documented endpoint. Routes exist only through the shared table
/// (`crm_api::endpoints::ENDPOINTS`), so every route is in the OpenAPI document.
fn handler(e: &Endpoint) -> Option<MethodRouter<App>> {
    Some(match (e.method, e.path) {
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/readyz") => get(health::readyz),
        ("GET", "/metrics") => get(metrics::prometheus),
        ("GET", "/v1/openapi.json") => get(openapi),
        ("GET", "/v1/metrics") => get(metrics::json),
        ("GET", "/v1/session") => get(session::get),
        ("GET", "/v1/directory") => get(directory::get),
        ("PUT", "/v1/directory") => put(directory::put),
        ("PATCH", "/v1/directory") => patch(directory::patch),
        ("POST", "/v1/permissions/check") => post(permissions::check),
        ("GET", "/v1/policy") => get(policy::get),
        ("PUT", "/v1/policy") => put(policy::put),
        ("GET", "/v1/credits/prices") => get(credits::prices),
        ("PUT", "/v1/credits/prices") => put(credits::put_prices),
        ("GET", "/v1/credits/prices/{operation}") => get(credits::price),
        ("GET", "/v1/credits/ledger") => get(credits::ledger),
        ("GET", "/v1/credits/balance") => get(credits::balance),
        ("POST", "/v1/operator/tenants") => post(operator::provision),
        ("POST", "/v1/credits/grants") => post(credits::grant),
        ("GET", "/v1/credits/grants") => get(credits::grants),
        ("GET", "/v1/credits/alerts") => get(credits::alerts),
        ("POST", "/v1/credits/grants/{id}/void") => post(credits::void),
        ("POST", "/v1/credits/adjustments") => post(credits::adjust),
        ("POST", "/v1/activities") => post(activities::ingest),
        ("GET", "/v1/activities") => get(activities::list),
        ("GET", "/v1/activities/{id}") => get(activities::one),
        ("GET", "/v1/entities/{type}/{id}/activities") => get(activities::entity),
        ("GET", "/v1/users/{id}/activities") => get(activities::user),
        ("GET", "/v1/departments/{id}/activities") => get(activities::department),
        ("GET", "/v1/reports") => get(reports::tenant),
        ("GET", "/v1/reports/users/{id}") => get(reports::user),
        ("GET", "/v1/reports/departments/{id}") => get(reports::department),
        ("GET", "/v1/dashboards/users/{id}") => get(dashboards::user),
        ("POST", "/v1/operations/{operation}") => post(crm::operation),
        ("POST", "/v1/leads") => post(crm::create_lead),
        ("GET", "/v1/leads") => get(crm::list_leads),
        ("GET", "/v1/leads/{id}") => get(crm::read_lead),
        ("PATCH", "/v1/leads/{id}") => patch(crm::update_lead),
        ("GET", "/v1/export") => get(export::export),
        ("GET", "/v1/audit/verify") => get(audit::verify),
        ("GET", "/v1/audit/checkpoint") => get(audit::checkpoint),
        ("POST", "/v1/viewer-tokens") => post(tokens::create),
        ("POST", "/v1/viewer-tokens/rotate") => post(tokens::rotate),
        ("DELETE", "/v1/viewer-tokens/{id}") => delete(tokens::revoke),
        ("GET", "/v1/keys") => get(keys::list),
        ("POST", "/v1/keys") => post(keys::create),
        ("DELETE", "/v1/keys/{id}") => delete(keys::revoke),
        ("GET", "/v1/webhooks") => get(webhooks::list),
        ("POST", "/v1/webhooks") => post(webhooks::create),
        ("DELETE", "/v1/webhooks/{id}") => delete(webhooks::remove),
        ("GET", "/v1/webhooks/{id}/deliveries") => get(webhooks::deliveries),
        ("POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/resend") => post(webhooks::resend),
        ("GET", "/v1/dead-letters") => get(edge_only::dead_letters),
        ("POST", "/v1/dead-letters/{id}/redrive") => post(edge_only::redrive),
        ("POST", "/v1/archive") => post(edge_only::no_archive),
        ("POST", "/v1/subjects/{userId}/erase") => post(subjects::erase),
        _ => return None,
    })
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        endpoints::DOCUMENT,
    )
}

pub fn router(app: App) -> Router {
    let mut by_path: BTreeMap<&str, MethodRouter<App>> = BTreeMap::new();
    for e in endpoints::ENDPOINTS {
        let h = handler(e)
            .unwrap_or_else(|| panic!("{} {} is documented but has no handler", e.method, e.path));
        let merged = match by_path.remove(e.path) {
            Some(existing) => existing.merge(h),
            None => h,
        };
        by_path.insert(e.path, merged);
    }
    let mut router = assets::routes(Router::new());
    for (path, methods) in by_path {
        router = router.route(path, methods);
    }
    router
        .route_layer(middleware::from_fn(strict_query))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::service::limits::LARGE_BODY))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(drop_unfit_request_id))
        .with_state(app)
}

/// Query parameters are checked right after routing, before the credential, for every
/// endpoint whether or not its handler reads them — the order the edge checks in.
async fn strict_query(req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if let Some(e) = error::endpoint_of(req.method(), req.extensions())
        && let Err(refused) = crm_api::request::query(req.uri().query(), e.query)
    {
        return crate::error::HostError::Api(refused).into_response();
    }
    next.run(req).await
}

/// Longest client-chosen request id kept: a UUID or a trace id fits with room.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's `x-request-id` goes into every log line of its request, so only a short
/// id of letters, digits, `-`, `_`, `.` and `:` is kept; anything else is dropped and
/// replaced by a fresh UUID (no log injection, no megabyte ids).
async fn drop_unfit_request_id(mut req: Request) -> Request {
    let fit = req.headers().get("x-request-id").is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    if !fit {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Counts every answered request by status class (the real error rate), for the
/// process and for the tenant its credential named (noted in a [`TenantSlot`]).
async fn count(State(app): State<App>, mut req: Request, next: Next) -> Response {
    app.stats.request_started();
    let slot = crate::service::stats::TenantSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    app.stats
        .request_finished(response.status().as_u16(), slot.0.get().map(String::as_str));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_endpoint_has_a_handler() {
        for e in endpoints::ENDPOINTS {
            assert!(handler(e).is_some(), "{} {}", e.method, e.path);
        }
    }
}
