//! Tenant snapshots: compiled once per version and shared; replaced when the directory
//! or policy changes (stored through the writer, so versions are strictly ordered).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crm_core::TenantPolicy;
use crm_core::directory::{DirectoryPatch, DirectorySpec};
use crm_core::engine::TenantSnapshot;

use crate::engine::{SharedEngine, Tenant};
use crate::error::{HostError, HostResult};
use crate::store::Store;
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

/// Attempts at an optimistic directory or policy change before giving up: each retry
/// means another change landed in between, which is rare.
const UPDATE_ATTEMPTS: usize = 5;

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

    /// Changes the directory and/or policy: the change is applied to the current row
    /// and compiled off the writer (a bad directory changes nothing), then stored only
    /// if no other change landed meanwhile — otherwise recomputed from the newer row.
    pub async fn update(
        &self,
        tenant_id: &str,
        change: impl Fn(&mut DirectorySpec, &mut TenantPolicy) -> HostResult<()> + Send + Sync + 'static,
    ) -> HostResult<Arc<Tenant>> {
        let change = Arc::new(change);
        for _ in 0..UPDATE_ATTEMPTS {
            let row = self.store.tenant(tenant_id).await?;
            let change = change.clone();
            let (next, compiled) =
                tokio::task::spawn_blocking(move || -> HostResult<(TenantRow, Tenant)> {
                    let mut spec: DirectorySpec =
                        serde_json::from_str(&row.directory).map_err(HostError::internal)?;
                    let mut policy: TenantPolicy =
                        serde_json::from_str(&row.policy).map_err(HostError::internal)?;
                    change(&mut spec, &mut policy)?;
                    let next = TenantRow {
                        version: row.version + 1,
                        directory: serde_json::to_string(&spec).map_err(HostError::internal)?,
                        policy: serde_json::to_string(&policy).map_err(HostError::internal)?,
                        ..row
                    };
                    let compiled = build(&next)?;
                    Ok((next, compiled))
                })
                .await
                .map_err(|e| HostError::internal(anyhow::anyhow!("compile task: {e}")))??;
            let now = super::clock::now().millis();
            let stored = self
                .store
                .replace_snapshot(
                    tenant_id,
                    next.version - 1,
                    next.policy.clone(),
                    next.directory.clone(),
                    now,
                )
                .await?;
            if let Some(version) = stored {
                debug_assert_eq!(version, next.version);
                let tenant = Arc::new(compiled);
                let mut cache = self
                    .cache
                    .write()
                    .map_err(|_| HostError::internal(anyhow::anyhow!("tenant cache poisoned")))?;
                cache.insert(tenant_id.to_owned(), tenant.clone());
                return Ok(tenant);
            }
        }
        Err(HostError::Conflict {
            message: "the directory kept changing while this change was applied; retry".to_owned(),
            details: serde_json::json!({}),
        })
    }

    pub async fn replace_directory(
        &self,
        tenant_id: &str,
        spec: DirectorySpec,
    ) -> HostResult<Arc<Tenant>> {
        self.update(tenant_id, move |current, _| {
            current.clone_from(&spec);
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
