//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{HostError, HostResult};
use crate::service::App;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and the writer is running. Fan-out sinks that are
/// down are reported (`fanout.degraded`) but do not make the host unready: ingest goes
/// on and the backlog waits in the store.
pub async fn readyz(State(app): State<App>) -> HostResult<Json<Value>> {
    app.store.ping().await?;
    if !app.store.writer_running() {
        return Err(HostError::Unavailable("the writer has stopped".to_owned()));
    }
    Ok(Json(
        json!({ "status": "ready", "engine": format!("{:?}", app.engine.kind()).to_lowercase(), "fanout": app.fanout.status() }),
    ))
}
