//! Exports of the log in chain order (`crm_store::export`: NDJSON exactly as hashed, or
//! CSV), read a chunk at a time so memory stays bounded whatever the size.

use crm_store::activities::Filter;
pub use crm_store::export::Format;
use crm_store::export::{self, CHUNK};

use crate::error::HostResult;
use crate::store::Store;

/// Reads the export (records after `after_seq`) chunk by chunk (blocking) and hands each encoded chunk to `out`;
/// stops early when `out` fails (the client went away). Answers the records written.
pub fn write_chunks(
    store: &Store,
    tenant: &str,
    filter: &Filter,
    format: Format,
    after_seq: u64,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> HostResult<u64> {
    let d = store.dialect();
    let preamble = format.preamble()?;
    if !preamble.is_empty() && !out(preamble) {
        return Ok(0);
    }
    let (mut after, mut written) = (after_seq, 0u64);
    loop {
        let rows = store
            .read_blocking(|c| Ok(c.query(&export::chunk(d, tenant, filter, after, CHUNK))?))?;
        let Some((buf, last)) = format.encode(&rows)? else {
            return Ok(written);
        };
        after = last;
        written += rows.len() as u64;
        if !out(buf) {
            return Ok(written);
        }
    }
}
