//! Audit: recompute a tenant's hash chain from its anchor to its head and name the
//! first sequence number that is wrong — a record altered (content or columns),
//! deleted, reordered, or cut off the end.

use crm_core::chain::Verifier;
use crm_store::export;
use serde::Serialize;

use crate::error::{HostError, HostResult};
use crate::store::Store;

/// Records per read.
const CHUNK: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub ok: bool,
    /// Records whose hash and links were checked.
    pub verified: u64,
    /// The chain starts after this seq (records before it were removed by retention).
    pub anchor_seq: u64,
    pub head_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Verifies the chain (blocking). `progress` sees the records verified so far.
pub fn verify(
    store: &Store,
    tenant: &str,
    mut progress: impl FnMut(u64, u64),
) -> HostResult<Verification> {
    let d = store.dialect();
    let bounds = store.read_blocking(|c| {
        let row = c
            .query_opt(&export::bounds(d, tenant))?
            .ok_or_else(|| HostError::NotFound(format!("tenant `{tenant}` does not exist")))?;
        Ok(export::decode_bounds(&row)?)
    })?;
    let mut v = Verifier::new(bounds.anchor_seq, &bounds.anchor_hash);
    let answer = |v: &Verifier, bad: Option<crm_core::chain::Break>| Verification {
        ok: bad.is_none(),
        verified: v.verified(),
        anchor_seq: bounds.anchor_seq,
        head_seq: bounds.head_seq,
        first_bad_seq: bad.as_ref().map(|b| b.seq),
        reason: bad.map(|b| b.reason),
    };
    let mut after = bounds.anchor_seq;
    while after < bounds.head_seq {
        let rows =
            store.read_blocking(|c| Ok(c.query(&export::audit_chunk(d, tenant, after, CHUNK))?))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let (seq, record) = export::decode_audited(row)?;
            if seq > bounds.head_seq {
                break; // appended after the audit started
            }
            after = seq;
            let pushed = match record {
                Ok(a) => v.push(&a),
                Err(reason) => Err(crm_core::chain::Break { seq, reason }),
            };
            if let Err(b) = pushed {
                return Ok(answer(&v, Some(b)));
            }
        }
        progress(v.verified(), bounds.head_seq - bounds.anchor_seq);
    }
    Ok(answer(
        &v,
        v.finish(bounds.head_seq, &bounds.head_hash).err(),
    ))
}
