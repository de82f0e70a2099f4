//! The HTTP API (docs/design.md §4): one file per resource, JSON errors everywhere.

mod activities;
mod assets;
mod audit;
mod auth;
mod credits;
mod crm;
mod dashboards;
mod directory;
mod error;
mod export;
mod health;
mod idempotency;
mod keys;
mod permissions;
mod reports;
mod session;
mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use crate::service::App;

/// Largest request body: a full batch of 1000 activities at the metadata cap (8 KB)
/// plus their other fields fits well inside.
const MAX_BODY_BYTES: usize = 16 << 20;

pub fn router(app: App) -> Router {
    assets::routes(Router::new())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/v1/directory",
            get(directory::get)
                .put(directory::put)
                .patch(directory::patch),
        )
        .route("/v1/permissions/check", post(permissions::check))
        .route(
            "/v1/credits/prices",
            get(credits::prices).put(credits::put_prices),
        )
        .route("/v1/credits/balance", get(credits::balance))
        .route("/v1/credits/grants", post(credits::grant))
        .route(
            "/v1/activities",
            post(activities::ingest).get(activities::list),
        )
        .route("/v1/users/{id}/activities", get(activities::user))
        .route(
            "/v1/departments/{id}/activities",
            get(activities::department),
        )
        .route("/v1/reports", get(reports::tenant))
        .route("/v1/dashboards/users/{id}", get(dashboards::user))
        .route("/v1/session", get(session::get))
        .route("/v1/export", get(export::export))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/operations/{operation}", post(crm::operation))
        .route("/v1/leads", get(crm::list_leads).post(crm::create_lead))
        .route(
            "/v1/leads/{id}",
            get(crm::read_lead).patch(crm::update_lead),
        )
        .route("/v1/viewer-tokens", post(tokens::create))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/reports/users/{id}", get(reports::user))
        .route("/v1/reports/departments/{id}", get(reports::department))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}
