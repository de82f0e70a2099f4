//! Exports of the log in chain order, NDJSON (the records exactly as hashed, so an
//! auditor can verify them offline) or CSV (the main columns), read a chunk at a time
//! so memory stays bounded whatever the size.

use crm_core::Activity;
use crm_store::activities::Filter;
use crm_store::export;

use crate::error::{HostError, HostResult};
use crate::store::Store;

/// Records per read: big enough to amortise the query, small enough to stream.
const CHUNK: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> HostResult<Format> {
        match text {
            "ndjson" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            _ => Err(HostError::BadRequest(
                "`format` must be ndjson or csv".to_owned(),
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

const CSV_HEADER: [&str; 16] = [
    "seq",
    "id",
    "occurredAt",
    "userId",
    "departmentId",
    "operation",
    "outcome",
    "entityType",
    "entityId",
    "credits",
    "sessionId",
    "ipAddress",
    "location",
    "authenticationMethod",
    "prevHash",
    "hash",
];

fn csv_row(w: &mut csv::Writer<Vec<u8>>, a: &Activity) -> csv::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    w.write_record([
        a.seq.to_string(),
        a.id.clone(),
        a.occurred_at.to_rfc3339(),
        a.user_id.clone(),
        a.user_context.hierarchy.department_id.clone(),
        a.operation.clone(),
        a.outcome.as_str().to_owned(),
        opt(&a.entity_type),
        opt(&a.entity_id),
        a.credits.to_string(),
        opt(&a.session_id),
        opt(&a.compliance.ip_address),
        opt(&a.compliance.location),
        opt(&a.compliance.authentication_method),
        a.prev_hash.clone(),
        a.hash.clone(),
    ])
}

/// Reads the export chunk by chunk (blocking) and hands each encoded chunk to `out`;
/// stops early when `out` fails (the client went away). Answers the records written.
pub fn write_chunks(
    store: &Store,
    tenant: &str,
    filter: &Filter,
    format: Format,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> HostResult<u64> {
    let d = store.dialect();
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_HEADER).map_err(HostError::internal)?;
        if !out(w.into_inner().map_err(HostError::internal)?) {
            return Ok(0);
        }
    }
    let (mut after, mut written) = (0u64, 0u64);
    loop {
        let rows = store
            .read_blocking(|c| Ok(c.query(&export::chunk(d, tenant, filter, after, CHUNK))?))?;
        if rows.is_empty() {
            return Ok(written);
        }
        let mut buf = Vec::with_capacity(rows.len() * 1_024);
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in &rows {
            let (seq, body) = export::decode_chunk_row(row)?;
            after = seq;
            match format {
                Format::Ndjson => {
                    buf.extend_from_slice(body.as_bytes());
                    buf.push(b'\n');
                }
                Format::Csv => {
                    let a: Activity = serde_json::from_str(&body).map_err(HostError::internal)?;
                    csv_row(&mut w, &a).map_err(HostError::internal)?;
                }
            }
        }
        if format == Format::Csv {
            buf = w.into_inner().map_err(HostError::internal)?;
        }
        written += rows.len() as u64;
        if !out(buf) {
            return Ok(written);
        }
    }
}
