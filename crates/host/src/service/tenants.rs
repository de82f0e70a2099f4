//! Tenant snapshots: compiled once per version and shared; replaced atomically when the
//! directory or policy changes (through the writer, so versions are strictly ordered).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crm_core::TenantPolicy;
use crm_core::directory::{DirectoryPatch, DirectorySpec};
use crm_core::engine::TenantSnapshot;

use crate::engine::{SharedEngine, Tenant};
use crate::error::{HostError, HostResult};
use crate::store::{Store, TenantRow};

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
        directory_json: row.directory.clone(),
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

    /// The current snapshot of `tenant_id`.
    pub async fn get(&self, tenant_id: &str) -> HostResult<Arc<Tenant>> {
        if let Some(t) = self.cached(tenant_id) {
            return Ok(t);
        }
        let id = tenant_id.to_owned();
        let row = self
            .store
            .read(move |c| crate::store::tenant_row(c, &id))
            .await?;
        self.install(&row)
    }

    fn cached(&self, tenant_id: &str) -> Option<Arc<Tenant>> {
        self.cache.read().ok()?.get(tenant_id).cloned()
    }

    fn install(&self, row: &TenantRow) -> HostResult<Arc<Tenant>> {
        let mut cache = self
            .cache
            .write()
            .map_err(|_| HostError::internal(anyhow::anyhow!("tenant cache poisoned")))?;
        // Never replace a newer snapshot with an older one read concurrently.
        if let Some(existing) = cache.get(&row.id)
            && existing.version() >= row.version
        {
            return Ok(existing.clone());
        }
        let tenant = Arc::new(build(row)?);
        cache.insert(row.id.clone(), tenant.clone());
        Ok(tenant)
    }

    /// Replaces the directory and/or policy through the writer: validated by compiling
    /// before anything is stored, so a bad directory changes nothing.
    pub async fn update(
        &self,
        tenant_id: &str,
        change: impl FnOnce(&mut DirectorySpec, &mut TenantPolicy) -> HostResult<()> + Send + 'static,
    ) -> HostResult<Arc<Tenant>> {
        let id = tenant_id.to_owned();
        let now = super::clock::now().millis();
        let row = self
            .store
            .writer()
            .exec(move |conn| {
                let row = crate::store::tenant_row(conn, &id)?;
                let mut spec: DirectorySpec =
                    serde_json::from_str(&row.directory).map_err(HostError::internal)?;
                let mut policy: TenantPolicy =
                    serde_json::from_str(&row.policy).map_err(HostError::internal)?;
                change(&mut spec, &mut policy)?;
                let directory = serde_json::to_string(&spec).map_err(HostError::internal)?;
                let policy = serde_json::to_string(&policy).map_err(HostError::internal)?;
                // Validate before storing.
                TenantSnapshot::from_json(&id, row.version + 1, &policy, &directory)?;
                let version = crate::store::update_snapshot(conn, &id, &policy, &directory, now)?;
                Ok(TenantRow {
                    version,
                    policy,
                    directory,
                    ..row
                })
            })
            .await?;
        self.install(&row)
    }

    pub async fn replace_directory(
        &self,
        tenant_id: &str,
        spec: DirectorySpec,
    ) -> HostResult<Arc<Tenant>> {
        self.update(tenant_id, move |current, _| {
            *current = spec;
            Ok(())
        })
        .await
    }

    pub async fn patch_directory(
        &self,
        tenant_id: &str,
        patch: DirectoryPatch,
    ) -> HostResult<Arc<Tenant>> {
        self.update(tenant_id, move |current, _| {
            *current = current.patched(&patch)?;
            Ok(())
        })
        .await
    }
}
