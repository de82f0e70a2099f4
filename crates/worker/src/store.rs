//! Tenant snapshots at the edge: compiled once per version and cached per isolate
//! (within a memory bound), checked against the version D1 holds (which comes with
//! every key lookup).

use std::cell::RefCell;
use std::rc::Rc;

use crm_core::alerts::AlertRule;
use crm_core::engine::TenantSnapshot;
use crm_store::bounded_cache::BoundedCache;
use crm_store::grants;
use crm_store::subject_keys::{self, Sealing};
use crm_store::tenants::{self, Head, TenantRow};
use worker::Env;

use crate::auth::Caller;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};

/// Stored directory and policy bytes of the snapshots an isolate keeps at most: the
/// compiled form is a small multiple of it, and an isolate has 128 MB for everything.
/// Past it (or past [`MAX_SNAPSHOTS`]) the cache starts over, so an isolate serving
/// many tenants recompiles rather than running out of memory.
const MAX_SNAPSHOT_BYTES: usize = 16 << 20;
const MAX_SNAPSHOTS: usize = 256;

thread_local! {
    static SNAPSHOTS: RefCell<BoundedCache<Rc<TenantSnapshot>>> =
        RefCell::new(BoundedCache::new(MAX_SNAPSHOT_BYTES, MAX_SNAPSHOTS));
}

fn missing() -> Failure {
    Failure::not_found("the key's tenant does not exist")
}

pub async fn tenant_row(env: &Env, tenant: &str) -> ApiResult<TenantRow> {
    let db = Db::of_tenant(env, tenant).await?;
    let row = d1::query_opt(&db, &tenants::get(DIALECT, tenant, false))
        .await?
        .ok_or_else(missing)?;
    Ok(tenants::decode(&row)?)
}

/// What a balance-changing write works on: the tenant's head, open grants and alert
/// rules.
pub struct Account {
    pub head: Head,
    pub loaded: grants::Loaded,
    pub rules: Vec<AlertRule>,
    /// The policy's personal metadata keys (`crm_core::personal`).
    pub personal_keys: Vec<String>,
}

pub async fn account(env: &Env, tenant: &str) -> ApiResult<Account> {
    let db = Db::of_tenant(env, tenant).await?;
    let row = d1::query_opt(&db, &tenants::head(DIALECT, tenant))
        .await?
        .ok_or_else(missing)?;
    let open = d1::query(&db, &grants::open(DIALECT, tenant)).await?;
    Ok(Account {
        head: tenants::decode_head(&row)?,
        rules: tenants::decode_alert_rules(&row)?,
        personal_keys: tenants::decode_personal_keys(&row)?,
        loaded: grants::load(&open)?,
    })
}

/// The keys of `fresh`'s subjects and new ones (from the runtime's CSPRNG) for
/// subjects that have none, for one write.
pub async fn sealing(
    db: &Db,
    tenant: &str,
    personal_keys: &[String],
    fresh: &[crm_core::Activity],
) -> ApiResult<Sealing> {
    let mut rows = Vec::new();
    for st in subject_keys::for_subjects(
        DIALECT,
        tenant,
        &subject_keys::subjects(fresh, personal_keys),
    ) {
        rows.extend(d1::query(db, &st).await?);
    }
    let mut sealing = Sealing::from_rows(&rows, personal_keys)?;
    let mut random = vec![0u8; sealing.random_needed(fresh)];
    crate::random::fill(&mut random)?;
    sealing.supply(fresh, &random)?;
    Ok(sealing)
}

/// The caller's tenant snapshot, at least as new as the version its key lookup saw.
pub async fn snapshot(env: &Env, caller: &Caller) -> ApiResult<Rc<TenantSnapshot>> {
    let tenant = caller.tenant();
    let version = caller.tenant_version;
    if let Some(s) =
        SNAPSHOTS.with_borrow(|m| m.get(tenant).filter(|s| s.version >= version).cloned())
    {
        return Ok(s);
    }
    let row = tenant_row(env, tenant).await?;
    let snap = Rc::new(TenantSnapshot::from_json(
        tenant,
        row.version,
        &row.policy,
        &row.directory,
    )?);
    let bytes = row.policy.len() + row.directory.len();
    SNAPSHOTS.with_borrow_mut(|m| m.insert(tenant.to_owned(), snap.clone(), bytes));
    Ok(snap)
}

/// Caches a snapshot this isolate just stored, from `bytes` of stored document (a
/// newer one already cached wins).
pub fn install(snap: TenantSnapshot, bytes: usize) -> Rc<TenantSnapshot> {
    let snap = Rc::new(snap);
    SNAPSHOTS.with_borrow_mut(|m| {
        if m.get(&snap.tenant_id)
            .is_none_or(|s| s.version < snap.version)
        {
            m.insert(snap.tenant_id.clone(), snap.clone(), bytes);
        }
    });
    snap
}
