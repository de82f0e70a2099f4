//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use crm_api::status::{Health, Readiness, Ready};

use crate::error::{HostError, HostResult};
use crate::service::App;

pub async fn healthz() -> Json<Health> {
    Json(Health::OK)
}

/// Ready when the database answers and the writer is running. Fan-out sinks that are
/// down are reported (`fanout.degraded`) but do not make the host unready: ingest goes
/// on and the backlog waits in the store.
pub async fn readyz(State(app): State<App>) -> HostResult<Json<Ready>> {
    app.store.ping().await?;
    if !app.store.writer_running() {
        return Err(HostError::Unavailable("the writer has stopped".to_owned()));
    }
    Ok(Json(Ready {
        status: Readiness::Ready,
        engine: app.engine.kind().name().to_owned(),
        fanout: Some(serde_json::to_value(app.fanout.status()).map_err(HostError::internal)?),
    }))
}
