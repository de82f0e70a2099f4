//! Audit: runs `crm_store::audit` over the store — recompute a tenant's hash chain from
//! its anchor to its head and name the first sequence number that is wrong.

use crm_store::audit::Audit;
pub use crm_store::audit::Verification;
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

/// Verifies the chain (blocking), and a kept checkpoint (seq, hash) if one is named.
/// `progress` sees the records verified so far.
pub fn verify(
    store: &Store,
    tenant: &str,
    kept: Option<(u64, String)>,
    mut progress: impl FnMut(u64, u64),
) -> HostResult<Verification> {
    let d = store.dialect();
    let bounds = store.read_blocking(|c| bounds(c, d, tenant))?;
    let mut audit = Audit::new(tenant, bounds).with_checkpoint(kept);
    while let Some(st) = audit.next(d) {
        let rows = store.read_blocking(|c| Ok(c.query(&st)?))?;
        audit.feed(&rows)?;
        let (done, total) = audit.progress();
        progress(done, total);
    }
    Ok(audit.finish())
}
