//! Tenant snapshots: compiled once per version and shared; replaced when the directory
//! or policy changes (stored through the writer, so versions are strictly ordered).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crm_api::access::Principal;
use crm_api::flow::tenant_update::{Change, TenantUpdate, Updated};
use crm_core::engine::TenantSnapshot;

use crate::engine::{SharedEngine, Tenant};
use crate::error::{HostError, HostResult};
use crate::store::{Build, Store};
use crm_store::tenants::TenantRow;

#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    engine: SharedEngine,
    cache: Arc<RwLock<HashMap<String, Arc<Tenant>>>>,
}

fn build(row: &TenantRow) -> HostResult<Tenant> {
    Ok(Tenant {
        snapshot: TenantSnapshot::from_json(&row.id, row.version, &row.policy, &row.directory)?,
        policy_json: row.policy.clone(),
    })
}

impl Registry {
    pub fn new(store: Store, engine: SharedEngine) -> Registry {
        Registry {
            store,
            engine,
            cache: Arc::default(),
        }
    }

    pub fn engine(&self) -> &SharedEngine {
        &self.engine
    }

    /// The snapshot of `tenant_id` at `version` or newer (the version comes with the
    /// caller's key, so a change made by another process or the CLI is seen on the
    /// next request). Without a version, whatever is cached.
    pub async fn get(&self, tenant_id: &str, version: Option<u64>) -> HostResult<Arc<Tenant>> {
        if let Some(t) = self.cached(tenant_id)
            && version.is_none_or(|v| t.version() >= v)
        {
            return Ok(t);
        }
        let row = self.store.tenant(tenant_id).await?;
        self.install(row).await
    }

    fn cached(&self, tenant_id: &str) -> Option<Arc<Tenant>> {
        self.cache.read().ok()?.get(tenant_id).cloned()
    }

    /// Compiles the row off the async runtime and outside the cache lock, then
    /// installs it unless a newer snapshot got there first.
    async fn install(&self, row: TenantRow) -> HostResult<Arc<Tenant>> {
        let tenant = Arc::new(
            tokio::task::spawn_blocking(move || build(&row))
                .await
                .map_err(|e| HostError::internal(anyhow::anyhow!("compile task: {e}")))??,
        );
        self.keep(tenant)
    }

    /// Caches `tenant` unless a newer snapshot got there first; answers the cached one.
    fn keep(&self, tenant: Arc<Tenant>) -> HostResult<Arc<Tenant>> {
        let mut cache = self
            .cache
            .write()
            .map_err(|_| HostError::internal(anyhow::anyhow!("tenant cache poisoned")))?;
        if let Some(existing) = cache.get(tenant.id())
            && existing.version() >= tenant.version()
        {
            return Ok(existing.clone());
        }
        cache.insert(tenant.id().to_owned(), tenant.clone());
        Ok(tenant)
    }

    /// Stores a change of the tenant's directory or policy as its next version
    /// (`crm_api::flow::tenant_update`, the edge's flow too) and caches the snapshot.
    pub async fn change<C>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        change: C,
    ) -> HostResult<C::Answer>
    where
        C: Change + Send + 'static,
        C::Answer: Send + 'static,
    {
        let build: Build<Updated<C::Answer>> =
            Box::new(move |cx| Box::new(TenantUpdate::new(cx, change, None)));
        let updated = self
            .store
            .flow(tenant, principal, super::clock::now(), build)
            .await?;
        self.keep(Arc::new(Tenant {
            snapshot: updated.snapshot,
            policy_json: updated.policy_json,
        }))?;
        Ok(updated.answer)
    }
}
