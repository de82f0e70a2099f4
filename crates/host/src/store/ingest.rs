//! The ingest transaction, on any backend: classify the batch against stored ids,
//! seal the fresh activities after the tenant's head (crm-core, natively), write them.
//! The decisions are `crm_store::ingest`'s; this file only drives the connection.

use std::collections::HashMap;

use crm_core::Activity;
use crm_core::wallet::Wallet;
use crm_store::activities::{self, Existing};
use crm_store::grants;
use crm_store::ingest::{self as plan, Candidate, IdConflict, Stored};
use crm_store::subject_keys::{self, Sealing};
use crm_store::tenants::{self, Head};
use serde_json::json;

use super::driver::Conn;
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};

/// An enriched activity waiting to be recorded.
#[derive(Debug, Clone)]
pub struct IngestItem {
    pub activity: Activity,
    /// SHA-256 of the client's input, for idempotent replays.
    pub input_hash: String,
}

pub fn conflict(c: &IdConflict) -> HostError {
    HostError::Conflict {
        message: c.message(),
        details: json!({ "id": c.id, "index": c.index }),
    }
}

/// A tenant's head and open grants as this transaction left them: several jobs of one
/// group may write for one tenant, and read them once.
pub type Heads = HashMap<String, (Head, Wallet)>;

/// The keys of `fresh`'s subjects, as this transaction sees them, and new ones (from
/// the operating system's generator) for subjects that have none.
fn sealing(conn: &mut dyn Conn, tenant: &Tenant, fresh: &[Activity]) -> HostResult<Sealing> {
    let d = conn.dialect();
    let personal_keys = &tenant.snapshot.policy.personal_keys;
    let mut rows = Vec::new();
    for st in subject_keys::for_subjects(
        d,
        tenant.id(),
        &subject_keys::subjects(fresh, personal_keys),
    ) {
        rows.extend(conn.query(&st)?);
    }
    let mut sealing = Sealing::from_rows(&rows, personal_keys)?;
    let mut random = vec![0u8; sealing.random_needed(fresh)];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
    sealing.supply(fresh, &random)?;
    Ok(sealing)
}

/// Records `items` for `tenant` inside the caller's transaction.
pub fn record(
    conn: &mut dyn Conn,
    tenant: &Tenant,
    items: Vec<IngestItem>,
    received_at: i64,
    heads: &mut Heads,
) -> HostResult<Vec<Stored>> {
    let d = conn.dialect();
    let tenant_id = tenant.id();
    let ids: Vec<&str> = items.iter().map(|i| i.activity.id.as_str()).collect();
    let mut stored: HashMap<String, Existing> = HashMap::new();
    for st in activities::lookup(d, tenant_id, &ids) {
        for row in conn.query(&st)? {
            let e = activities::decode_existing(&row)?;
            stored.insert(e.id.clone(), e);
        }
    }
    let candidates: Vec<Candidate<'_>> = items
        .iter()
        .map(|i| Candidate {
            id: &i.activity.id,
            input_hash: &i.input_hash,
        })
        .collect();
    let dispositions = plan::classify(&candidates, &stored).map_err(|c| conflict(&c))?;
    let (mut fresh, mut hashes) = (Vec::new(), Vec::new());
    for (item, d) in items.into_iter().zip(&dispositions) {
        if *d == plan::Disposition::Fresh {
            fresh.push(item.activity);
            hashes.push(item.input_hash);
        }
    }
    if fresh.is_empty() {
        return Ok(plan::answers(dispositions, &[]));
    }
    let (before, mut wallet) = match heads.remove(tenant_id) {
        Some(cached) => cached,
        None => {
            let row = conn
                .query_opt(&tenants::head(d, tenant_id))?
                .ok_or_else(|| {
                    HostError::NotFound(format!("tenant `{tenant_id}` does not exist"))
                })?;
            let open = conn.query(&grants::open(d, tenant_id))?;
            (tenants::decode_head(&row)?, grants::load(&open)?.wallet)
        }
    };
    // Sealing is the store's part: charge in order and chain after the head, natively
    // in the writer (crm-core's code, as every runtime); only the tenant's rules
    // (enrichment) run in the engine.
    let mut sealed = fresh;
    let arrivals: Vec<crm_store::activities::Arrival<'_>> = hashes
        .iter()
        .map(|h| crm_store::activities::Arrival {
            input_hash: h,
            received_at,
        })
        .collect();
    let mut sealing = sealing(conn, tenant, &sealed)?;
    let (balance, statements) = plan::seal_and_write(
        d,
        tenant_id,
        plan::Account {
            head: &before,
            wallet: &mut wallet,
            rules: &tenant.snapshot.policy.credit_alerts,
            sealing: &mut sealing,
        },
        &mut sealed,
        &arrivals,
    )?;
    conn.execute_all(&statements)?;
    wallet.stored_all();
    let last = sealed
        .last()
        .expect("fresh is not empty, so neither is sealed");
    heads.insert(
        tenant_id.to_owned(),
        (
            Head {
                seq: last.seq,
                hash: last.hash.clone(),
                balance,
            },
            wallet,
        ),
    );
    Ok(plan::answers(dispositions, &sealed))
}
