//! Exports of the log in chain order (`crm_store::export`: NDJSON exactly as hashed, or
//! CSV), read a chunk at a time so memory stays bounded whatever the size.

use crm_store::activities::Filter;
pub use crm_store::export::Format;
use crm_store::export::{self, CHUNK};

use crate::error::HostResult;
use crate::store::Store;

/// Longest a client may take to accept one chunk of an export before it is ended:
/// an export nobody reads holds its place (and its tenant's stream permit) this long
/// at most, never a thread.
pub const SEND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the export (records after `after_seq`) a chunk at a time — each read on a
/// pooled connection off the async runtime, released before the chunk is sent — and
/// sends each encoded chunk to `out`, waiting at most [`SEND_DEADLINE`] for the client
/// to take it. Stops when the client goes away or stalls; answers the records sent.
pub async fn send_chunks(
    store: &Store,
    tenant: &str,
    filter: &Filter,
    format: Format,
    after_seq: u64,
    out: &tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
) -> HostResult<u64> {
    let send = |chunk: Vec<u8>| async move {
        matches!(
            tokio::time::timeout(SEND_DEADLINE, out.send(Ok(axum::body::Bytes::from(chunk)))).await,
            Ok(Ok(()))
        )
    };
    let d = store.dialect();
    let preamble = format.preamble()?;
    if !preamble.is_empty() && !send(preamble).await {
        return Ok(0);
    }
    let (mut after, mut written) = (after_seq, 0u64);
    loop {
        let (tenant_id, f) = (tenant.to_owned(), filter.clone());
        let rows = store
            .read(move |c| Ok(c.query(&export::chunk(d, &tenant_id, &f, after, CHUNK))?))
            .await?;
        let Some((buf, last)) = format.encode(&rows)? else {
            return Ok(written);
        };
        after = last;
        written += rows.len() as u64;
        if !send(buf).await {
            tracing::info!(tenant, written, "export ended: the client stopped reading");
            return Ok(written);
        }
    }
}
