//! `GET /v1/export?format=ndjson|csv` (with the listing's filters; all time unless
//! `since`/`from`/`to` narrow it): the shared flow (`crm_api::flow::export`), streamed
//! in chain order with bounded memory — each piece it emits is sent before the next is
//! read.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crm_api::flow::export::{self, ExportLog, Exported};

use super::auth::Caller;
use super::error::Query;
use crate::error::{HostError, HostResult};
use crate::service::export::SEND_DEADLINE;
use crate::service::{App, clock};
use crate::store::{Build, Sink};

/// Where the handler learns whether the answer is a stream or a refusal.
type Start = Mutex<Option<tokio::sync::oneshot::Sender<HostResult<()>>>>;

/// Chunks buffered between the reader and the client: the reader waits for a slow
/// client instead of filling memory.
const IN_FLIGHT_CHUNKS: usize = 2;

pub async fn export(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Response> {
    let params = params.0;
    let format = export::format(&params);
    let tenant_name = caller.tenant().to_owned();
    let tenant = caller.snapshot(&app).await?;
    // One of the tenant's few open exports; held, with the caller's in-flight place,
    // until the stream ends.
    let stream_permit = app.limits.stream(caller.tenant())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT_CHUNKS);
    // Whether the answer is a stream or a refusal: told by the first piece emitted, or
    // by the flow's end when it emits none (its refusals come before any piece).
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<HostResult<()>>();
    let start = Arc::new(Mutex::new(Some(start_tx)));
    let started = |start: &Start| {
        if let Some(s) = start.lock().ok().and_then(|mut s| s.take()) {
            let _ = s.send(Ok(()));
        }
    };
    let handle = tokio::runtime::Handle::current();
    let (piece_tx, sink_start) = (tx.clone(), start.clone());
    let sink: Sink = Box::new(move |bytes| {
        started(&sink_start);
        // The flow runs on a blocking thread: it waits here for a slow client, at
        // most the deadline.
        let sent = handle.block_on(tokio::time::timeout(
            SEND_DEADLINE,
            piece_tx.send(Ok(Bytes::from(bytes))),
        ));
        if matches!(sent, Ok(Ok(()))) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    });
    let build: Build<Exported> = Box::new(move |cx| Box::new(ExportLog::new(cx, params, None)));
    let (store, principal) = (app.store.clone(), caller.principal.clone());
    let tenant_id = caller.tenant().to_owned();
    tokio::spawn(async move {
        let held = (stream_permit, caller);
        let run = store
            .stream_flow(tenant.clone(), principal, clock::now(), build, sink)
            .await;
        match run {
            Ok(ended) => {
                let records = ended.map(|e| e.records);
                tracing::debug!(tenant = tenant_id, ?records, "export ended");
                started(&start);
            }
            Err(e) => {
                let unstarted = start.lock().ok().and_then(|mut s| s.take());
                if let Some(s) = unstarted {
                    let _ = s.send(Err(e));
                } else {
                    tracing::error!(error = %e, "export stopped");
                    // The client sees a cut-off body rather than a silently short one.
                    let _ = tokio::time::timeout(
                        SEND_DEADLINE,
                        tx.send(Err(std::io::Error::other("export failed"))),
                    )
                    .await;
                }
            }
        }
        drop(held);
    });
    start_rx
        .await
        .map_err(|_| HostError::internal(anyhow::anyhow!("the export task ended early")))??;
    // The flow checked it before emitting anything.
    let format = format?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                export::disposition(&tenant_name, format),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
