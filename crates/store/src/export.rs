//! Reading the log in chain order, a chunk at a time: for exports (with the listing's
//! filters) and for the audit, which also checks that the indexed columns agree with
//! the hashed record (an edit of a column alone is tampering too).

use crm_core::{Activity, CoreError};

use crate::activities::{Filter, listing_clause};
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::ledger_check::LedgerBounds;
use crate::sql::{Row, Statement, seq};

/// Records per export read: big enough to amortise the query, small enough to stream.
pub const CHUNK: usize = 1_000;

/// An export's format: NDJSON (the records as hashed, personal fields opened or erased
/// — any of the forms hashes alike — so an auditor can verify them offline) or CSV (the main columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
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

impl Format {
    pub fn parse(text: &str) -> Result<Format, CoreError> {
        match text {
            "ndjson" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            _ => Err(CoreError::invalid(
                "format",
                "`format` must be ndjson or csv",
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What the export starts with: the CSV header line, nothing for NDJSON.
    pub fn preamble(self) -> StoreResult<Vec<u8>> {
        match self {
            Format::Ndjson => Ok(Vec::new()),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(CSV_HEADER).map_err(StoreError::corrupt)?;
                w.into_inner().map_err(StoreError::corrupt)
            }
        }
    }

    /// Encodes a chunk of [`chunk`] rows; answers the bytes and the last seq (where the
    /// next chunk starts), or `None` when the chunk is empty (the export is complete).
    pub fn encode(self, rows: &[Row]) -> StoreResult<Option<(Vec<u8>, u64)>> {
        let mut last = None;
        let mut buf = Vec::with_capacity(rows.len() * 1_024);
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in rows {
            let (seq, body) = decode_chunk_row(row)?;
            last = Some(seq);
            match self {
                Format::Ndjson => {
                    buf.extend_from_slice(body.as_bytes());
                    buf.push(b'\n');
                }
                Format::Csv => {
                    let a: Activity = serde_json::from_str(&body).map_err(StoreError::corrupt)?;
                    csv_row(&mut w, &a).map_err(StoreError::corrupt)?;
                }
            }
        }
        if self == Format::Csv {
            buf = w.into_inner().map_err(StoreError::corrupt)?;
        }
        Ok(last.map(|seq| (buf, seq)))
    }
}

/// A CSV cell a spreadsheet will not run: a cell starting with `=`, `+`, `-`, `@` or a
/// control character (tab, carriage return…) is a formula to Excel, LibreOffice and
/// Google Sheets, so it is prefixed with `'` (OWASP's advice for CSV injection). Entity
/// ids, locations and authentication methods are client text; NDJSON keeps the records
/// exactly as hashed, so the offline verifier reads that format, never this one.
pub fn csv_cell(text: String) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@') => format!("'{text}"),
        Some(c) if c.is_control() => format!("'{text}"),
        _ => text,
    }
}

fn csv_row(w: &mut csv::Writer<Vec<u8>>, a: &Activity) -> csv::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
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
    ];
    w.write_record(cells.map(csv_cell))
}

/// Records after `after_seq` that match `f`, in `seq` order.
pub fn chunk(d: Dialect, tenant_id: &str, f: &Filter, after_seq: u64, limit: usize) -> Statement {
    let mut c = listing_clause(d, tenant_id, f);
    c.push("seq >", seq(after_seq));
    d.stmt(
        &format!(
            "SELECT seq, body, {} FROM activities WHERE {} ORDER BY seq LIMIT {limit}",
            crate::subject_keys::KEY_MATERIAL,
            c.sql
        ),
        c.params,
    )
}

/// Columns the audit compares with the record: every column copied out of the hashed
/// body (`input_hash` is not: it is a digest of the request, not of the record, and
/// only decides whether a retry of the id is the same request).
const AUDIT_COLUMNS: &str =
    "seq, body, id, user_id, operation, outcome, occurred_at, prev_hash, hash,
     tenant_id, department_id, department_path, entity_type, entity_id, session_id,
     ip_address, location, auth_method";

/// Every record after `after_seq`, in `seq` order, with the columns the audit checks.
pub fn audit_chunk(d: Dialect, tenant_id: &str, after_seq: u64, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT {AUDIT_COLUMNS}, {}, key_id, {} FROM activities WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}",
            d.money("credits_units"),
            crate::subject_keys::KEY_MATERIAL
        ),
        vec![tenant_id.into(), seq(after_seq)],
    )
}

/// A record read for the audit: the record, or why its row is inconsistent. The stored
/// body must be exactly the record's canonical serialisation (as it was written), so a
/// field added to it, a key repeated or a value re-spelled is a break even where the
/// parser would accept it; and every column copied out of the body must agree with it
/// (listings, scopes and reports filter on those columns).
pub fn decode_audited(row: &Row) -> StoreResult<(u64, Result<Activity, String>)> {
    let seq_col = row.uint(0)?;
    let body = row.text(1)?;
    let Ok(a) = serde_json::from_str::<Activity>(body) else {
        return Ok((
            seq_col,
            Err("the stored record is not a valid activity".to_owned()),
        ));
    };
    if serde_json::to_string(&a).ok().as_deref() != Some(body) {
        return Ok((
            seq_col,
            Err("the stored record is not in the form it was written in (altered)".to_owned()),
        ));
    }
    let h = &a.user_context.hierarchy;
    let columns_agree = a.seq == seq_col
        && a.id == row.text(2)?
        && a.user_id == row.text(3)?
        && a.operation == row.text(4)?
        && a.outcome.as_str() == row.text(5)?
        && a.occurred_at.millis() == row.int(6)?
        && a.prev_hash == row.text(7)?
        && a.hash == row.text(8)?
        && a.tenant_id == row.text(9)?
        && h.department_id == row.text(10)?
        && h.department_path == row.text(11)?
        && a.entity_type.as_deref() == row.opt_text(12)?
        && a.entity_id.as_deref() == row.opt_text(13)?
        && a.session_id.as_deref() == row.opt_text(14)?
        && searchable_agree(&a, row.opt_text(20)?, row.opt_text(15)?, row.opt_text(16)?)
        && a.compliance.authentication_method.as_deref() == row.opt_text(17)?
        && a.credits.units() == row.int(18)?
        && a.personal.as_ref().map(|p| p.key_id.as_str()) == row.opt_text(19)?;
    if columns_agree {
        Ok((seq_col, Ok(a)))
    } else {
        Ok((
            seq_col,
            Err("the row's columns do not match its hashed record (altered)".to_owned()),
        ))
    }
}

/// Whether the IP address and location columns agree with the record. A sealed
/// record holds them encrypted: they are compared with what its key (`material`)
/// opens; once the key is destroyed the columns are the erasure's to scrub.
fn searchable_agree(
    a: &Activity,
    material: Option<&str>,
    ip: Option<&str>,
    location: Option<&str>,
) -> bool {
    if a.personal.is_none() {
        return a.compliance.ip_address.as_deref() == ip
            && a.compliance.location.as_deref() == location;
    }
    let mut opened = a.clone();
    crate::subject_keys::open(&mut opened, material);
    let erased = opened
        .personal
        .as_ref()
        .is_some_and(|p| p.state == Some(crm_core::personal::PersonalState::Erased));
    erased
        || (opened.compliance.ip_address.as_deref() == ip
            && opened.compliance.location.as_deref() == location)
}

/// Where a tenant's chain starts (the retention anchor) and ends (the head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub anchor_seq: u64,
    pub anchor_hash: String,
    pub head_seq: u64,
    pub head_hash: String,
    /// The ledger's size and the balance, in the same snapshot as the head.
    pub ledger: LedgerBounds,
}

pub fn bounds(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT anchor_seq, anchor_hash, head_seq, head_hash, {},
                    (SELECT COALESCE(MAX(entry), 0) FROM credit_ledger WHERE tenant_id = ?1)
             FROM tenants WHERE id = ?1",
            d.money("balance_units")
        ),
        vec![tenant_id.into()],
    )
}

pub fn decode_bounds(row: &Row) -> StoreResult<Bounds> {
    Ok(Bounds {
        anchor_seq: row.uint(0)?,
        anchor_hash: row.string(1)?,
        head_seq: row.uint(2)?,
        head_hash: row.string(3)?,
        ledger: LedgerBounds {
            balance_units: row.int(4)?,
            entries: row.uint(5)?,
        },
    })
}

/// The seq and record of an exported row, as readers see it (opened or erased).
pub fn decode_chunk_row(row: &Row) -> StoreResult<(u64, String)> {
    Ok((
        row.uint(0)?,
        crate::subject_keys::open_body(row.string(1)?, row.opt_text(2)?)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\r=1",
        ] {
            let cell = csv_cell(formula.to_owned());
            assert!(cell.starts_with('\''), "{formula:?} -> {cell:?}");
            assert_eq!(&cell[1..], formula);
        }
        for plain in ["deal-4711", "Berlin", "sso", "", "0.2500"] {
            assert_eq!(csv_cell(plain.to_owned()), plain);
        }
    }
}
