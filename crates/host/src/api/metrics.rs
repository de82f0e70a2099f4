//! `GET /metrics` (Prometheus text, for the operator's scraper; process-wide counters,
//! no tenant data) and `GET /v1/metrics` (JSON for admins: requests, the real error
//! rate, recorded and refused activities, pending fan-out).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use crm_store::keys::KeyScope;
use serde_json::{Value, json};

use super::auth::Caller;
use crate::error::HostResult;
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

pub async fn json(State(app): State<App>, caller: Caller) -> HostResult<Json<Value>> {
    caller.require(KeyScope::Admin)?;
    let s = app.stats.snapshot();
    Ok(Json(json!({
        "requests": s,
        "fanout": app.fanout.status(),
        "engine": format!("{:?}", app.engine.kind()).to_lowercase(),
    })))
}
