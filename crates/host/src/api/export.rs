//! `GET /v1/export?format=ndjson|csv` (with the listing's filters; all time unless
//! `since`/`from`/`to` narrow it), streamed in chain order with bounded memory.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crm_store::keys::KeyScope;
use crm_store::listing::Subject;

use super::auth::Caller;
use super::error::Query;
use crate::error::{HostError, HostResult};
use crate::service::export::{self, Format};
use crate::service::{App, queries};

/// Chunks buffered between the reader and the client: the reader waits for a slow
/// client instead of filling memory.
const IN_FLIGHT_CHUNKS: usize = 2;

pub async fn export(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query,
) -> HostResult<Response> {
    caller.require(KeyScope::Read)?;
    let after_seq = crm_api::listing::after_seq(&params.0).map_err(HostError::Api)?;
    let format = Format::parse(params.get("format").unwrap_or("ndjson"))?;
    let tenant = caller.snapshot(&app).await?;
    let mut filter = queries::filter(
        &tenant,
        Subject::Tenant,
        &params,
        params.export_range()?,
        |s| caller.may_read(s, &tenant),
    )?;
    queries::narrow(&mut filter, &tenant, &caller.principal)?;
    let tenant_name = caller.tenant().to_owned();
    // One of the tenant's few open exports; held, with the caller's in-flight place,
    // until the stream ends.
    let stream_permit = app.limits.stream(caller.tenant())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT_CHUNKS);
    let (store, tenant_id) = (app.store.clone(), caller.tenant().to_owned());
    tokio::spawn(async move {
        let held = (stream_permit, caller);
        let sent = export::send_chunks(&store, &tenant_id, &filter, format, after_seq, &tx).await;
        if let Err(e) = sent {
            tracing::error!(error = %e, "export stopped");
            // The client sees a cut-off body rather than a silently short one.
            let _ = tokio::time::timeout(
                export::SEND_DEADLINE,
                tx.send(Err(std::io::Error::other("export failed"))),
            )
            .await;
        }
        drop(held);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let extension = match format {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"activities-{tenant_name}.{extension}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
