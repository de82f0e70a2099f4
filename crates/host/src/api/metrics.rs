//! `GET /metrics` (Prometheus text, for the operator's scraper; process-wide counters,
//! no tenant data) and `GET /v1/metrics` (JSON for a tenant's admin: that tenant's
//! requests, the real error rate, recorded and refused activities, pending fan-out).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use crm_api::status::Metrics;
use crm_store::keys::KeyScope;

use super::auth::Caller;
use crate::error::{HostError, HostResult};
use crate::service::{App, stats};

pub async fn prometheus(State(app): State<App>) -> impl IntoResponse {
    let fanout = app.fanout.status();
    metrics::gauge!("crm_fanout_pending").set(fanout.pending as f64);
    metrics::gauge!("crm_fanout_delivered").set(fanout.delivered as f64);
    metrics::gauge!("crm_fanout_retries").set(fanout.retries as f64);
    metrics::gauge!("crm_fanout_spooled").set(fanout.spooled as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        stats::prometheus().render(),
    )
}

/// The caller's tenant only: its requests, recorded work and fan-out backlog. The
/// process-wide figures (every tenant's) are the operator's, on `/metrics`.
pub async fn json(State(app): State<App>, caller: Caller) -> HostResult<Json<Metrics>> {
    caller.require(KeyScope::Admin)?;
    Ok(Json(Metrics {
        tenant_id: caller.tenant().to_owned(),
        engine: app.engine.kind().name().to_owned(),
        requests: Some(app.stats.tenant_snapshot(caller.tenant())),
        fanout: Some(
            serde_json::to_value(app.fanout.tenant_status(caller.tenant()))
                .map_err(HostError::internal)?,
        ),
        head_seq: None,
        queued_ids: None,
        dead_letters: None,
        upstream: None,
        isolate: None,
    }))
}
