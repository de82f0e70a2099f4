//! Audit: runs `crm_store::audit` over the store — recompute a tenant's hash chain from
//! its anchor to its head and name the first sequence number that is wrong.

pub use crm_store::audit::Verification;
use crm_store::audit::{Audit, Paused};
use crm_store::dialect::Dialect;
use crm_store::export::{self, Bounds};

use crate::error::{HostError, HostResult};
use crate::store::{Conn, Store};

/// The tenant's chain anchor and head.
pub fn bounds(c: &mut dyn Conn, d: Dialect, tenant: &str) -> HostResult<Bounds> {
    let row = c
        .query_opt(&export::bounds(d, tenant))?
        .ok_or_else(|| HostError::NotFound(format!("tenant `{tenant}` does not exist")))?;
    Ok(export::decode_bounds(&row)?)
}

/// Where a verification starts: from the anchor (with a kept checkpoint, if named) or
/// where an earlier call paused.
#[derive(Debug, Clone)]
pub enum Start {
    Anchor(Option<(u64, String)>),
    Resume(Paused),
}

/// Verifies the chain and the ledger (blocking) from `start`, pausing after `budget`
/// records if one is given. `progress` sees the records verified so far.
pub fn verify(
    store: &Store,
    tenant: &str,
    start: Start,
    budget: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> HostResult<(Verification, Option<Paused>)> {
    let d = store.dialect();
    let bounds = store.read_blocking(|c| bounds(c, d, tenant))?;
    let mut audit = match start {
        Start::Anchor(kept) => Audit::new(tenant, bounds).with_checkpoint(kept),
        Start::Resume(paused) => Audit::resume(bounds, paused)
            .map_err(|m| HostError::Api(crm_api::ApiError::conflict(m)))?,
    };
    if let Some(b) = budget {
        audit = audit.with_budget(b);
    }
    while let Some(st) = audit.next(d) {
        let rows = store.read_blocking(|c| Ok(c.query(&st)?))?;
        audit.feed(&rows)?;
        let (done, total) = audit.progress();
        progress(done, total);
    }
    Ok(audit.finish())
}
