//! Tenant and key administration, shared by the CLI (`tenant create`, `key create`,
//! `directory import`), the demo and the tests.

use crm_api::requests::KeyPlan;
use std::path::Path;

use anyhow::Context;
use crm_core::directory::DirectorySpec;
use crm_core::engine::TenantSnapshot;
use crm_core::{Credits, TenantPolicy};

use crate::engine::NativeEngine;
use crate::service::clock;
use crate::store::{Location, Store};
use crm_store::keys::KeyScope;

fn open(db: &Location) -> anyhow::Result<Store> {
    // Admin commands never enrich; the native engine avoids compiling the component.
    Store::open(db)
}

/// Creates a tenant; shared with the demo.
pub async fn create_tenant_in(
    store: &Store,
    id: &str,
    name: &str,
    policy: &TenantPolicy,
    directory: &DirectorySpec,
    balance: Credits,
) -> anyhow::Result<()> {
    crm_core::names::validate_id("id", id)?;
    crm_core::names::validate_text("name", name, crm_core::limits::MAX_TEXT_LEN)?;
    let policy_json = serde_json::to_string(policy)?;
    let directory_json = serde_json::to_string(directory)?;
    TenantSnapshot::from_json(id, 1, &policy_json, &directory_json)?;
    let now = clock::now().millis();
    store
        .create_tenant(id, name, policy_json, directory_json, balance.units(), now)
        .await?;
    Ok(())
}

pub async fn create_key_in(
    store: &Store,
    tenant: &str,
    scopes: &[KeyScope],
    label: Option<&str>,
) -> anyhow::Result<String> {
    let now = clock::now().millis();
    let plan = KeyPlan {
        scopes: scopes.to_vec(),
        label: label.map(str::to_owned),
        expires_at: None,
    };
    let (answer, _) = store.create_key(tenant, plan, now, None).await?;
    answer.key.context("a new key has its text")
}

pub fn create_tenant(
    db: &Location,
    id: &str,
    name: &str,
    timezone: &str,
    balance: &str,
) -> anyhow::Result<()> {
    let store = open(db)?;
    let policy = TenantPolicy {
        timezone: Some(timezone.to_owned()),
        ..TenantPolicy::default()
    };
    let balance = Credits::parse(balance)?;
    block_on(create_tenant_in(
        &store,
        id,
        name,
        &policy,
        &DirectorySpec::default(),
        balance,
    ))?;
    println!("created tenant {id}");
    Ok(())
}

pub fn create_key(
    db: &Location,
    tenant: &str,
    scopes: &[KeyScope],
    label: Option<&str>,
    expires_in_days: Option<u32>,
) -> anyhow::Result<()> {
    let store = open(db)?;
    let now = clock::now().millis();
    let expires_at = expires_in_days.map(|d| now + i64::from(d) * crm_core::duration::DAY_MS);
    let plan = KeyPlan {
        scopes: scopes.to_vec(),
        label: label.map(str::to_owned),
        expires_at,
    };
    let (answer, _) = block_on(store.create_key(tenant, plan, now, None))?;
    println!("{}", answer.key.context("a new key has its text")?);
    Ok(())
}

pub fn list_keys(db: &Location, tenant: &str) -> anyhow::Result<()> {
    let store = open(db)?;
    let keys = block_on(store.list_keys(tenant))?;
    let when = |t: Option<i64>| {
        t.and_then(|t| crm_core::Timestamp::from_millis(t).ok())
            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
    };
    println!(
        "{:<22} {:<20} {:<16} {:<26} {:<26}",
        "id", "scopes", "label", "expires", "revoked"
    );
    for k in keys {
        println!(
            "{:<22} {:<20} {:<16} {:<26} {:<26}",
            k.id,
            k.scopes.join(","),
            k.label.unwrap_or_default(),
            when(k.expires_at),
            when(k.revoked_at)
        );
    }
    Ok(())
}

pub fn revoke_key(db: &Location, tenant: &str, id: &str) -> anyhow::Result<()> {
    let store = open(db)?;
    if block_on(store.revoke_key(tenant, id, clock::now().millis()))? {
        println!("revoked {id}");
        Ok(())
    } else {
        anyhow::bail!("tenant {tenant} has no key {id}")
    }
}

/// Replaces the tenant's viewer-token signing secret: every token issued before is
/// refused by running servers from their next request on.
pub fn rotate_viewer_secret(db: &Location, tenant: &str) -> anyhow::Result<()> {
    let store = open(db)?;
    let app = crate::service::App::new(store.clone(), std::sync::Arc::new(NativeEngine));
    let fresh = crate::store::random_secret();
    block_on(async {
        let current = app.tenants.get(tenant, None).await?;
        let build: crate::store::Build<()> = Box::new(move |cx| {
            let change = crm_api::flow::credentials::RotateViewerSecret(fresh);
            Box::new(crm_api::flow::credentials::AdminWrite::new(cx, change))
        });
        let operator = crm_api::access::Principal::operator();
        store.flow(current, operator, clock::now(), build).await
    })?;
    println!("tenant {tenant}: viewer-token secret rotated; earlier tokens are refused");
    Ok(())
}

/// Revokes one viewer token by id (as `DELETE /v1/viewer-tokens/{id}`).
pub fn revoke_viewer_token(db: &Location, tenant: &str, id: &str) -> anyhow::Result<()> {
    let now = clock::now().millis();
    let (id, until) =
        crm_api::viewer_tokens::revocation(id, now).map_err(|e| anyhow::anyhow!(e.message))?;
    let store = open(db)?;
    // The tenant must exist: the revocation row alone would not say so.
    block_on(store.viewer_check(tenant, None))?
        .ok_or_else(|| anyhow::anyhow!("no tenant {tenant}"))?;
    block_on(store.revoke_viewer_token(tenant, id.clone(), until, now))?;
    println!("revoked viewer token {id}");
    Ok(())
}

pub fn import_directory(db: &Location, tenant: &str, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let spec: DirectorySpec =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let store = open(db)?;
    let app = crate::service::App::new(store.clone(), std::sync::Arc::new(NativeEngine));
    let summary = block_on(async {
        let current = app.tenants.get(tenant, None).await?;
        let operator = crm_api::access::Principal::operator();
        let change = crm_api::flow::tenant_update::ReplaceDirectory(spec);
        app.tenants.change(current, operator, change).await
    })?;
    println!(
        "tenant {tenant}: directory version {} ({} users)",
        summary.version, summary.users
    );
    Ok(())
}

fn block_on<T, E: Into<anyhow::Error>>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
        .map_err(Into::into)
}
