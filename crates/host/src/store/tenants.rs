//! Tenant operations: the row (snapshot source and version), creation, optimistic
//! directory/policy replacement, and balance changes with their ledger entries.

use crm_api::wallet::WalletAnswer;
use crm_store::grants::{self, WalletOp};
use crm_store::tenants::{self, TenantRow};
use crm_store::viewer_tokens;

use super::Store;
use crate::error::{HostError, HostResult};

/// Bytes of a tenant secret: 256 bits.
const SECRET_BYTES: usize = 32;

/// A fresh viewer-token signing secret (hex).
pub fn random_secret() -> String {
    super::keys::random_hex(SECRET_BYTES)
}

fn missing(id: &str) -> HostError {
    HostError::NotFound(format!(
        "tenant `{}` does not exist",
        crm_core::time::clip(id)
    ))
}

impl Store {
    pub async fn tenant(&self, id: &str) -> HostResult<TenantRow> {
        let (d, id) = (self.dialect(), id.to_owned());
        self.read(move |c| {
            let row = c
                .query_opt(&tenants::get(d, &id, false))?
                .ok_or_else(|| missing(&id))?;
            Ok(tenants::decode(&row)?)
        })
        .await
    }

    /// A new tenant with an opening balance (a grant and its ledger entry when positive).
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        policy: String,
        directory: String,
        opening_units: i64,
        now: i64,
    ) -> HostResult<()> {
        let (d, id, name) = (self.dialect(), id.to_owned(), name.to_owned());
        let lock = id.clone();
        self.write(Some(&lock), move |c| {
            if c.query_opt(&tenants::get(d, &id, false))?.is_some() {
                return Err(HostError::Conflict {
                    message: format!("tenant `{id}` already exists"),
                    details: serde_json::json!({ "tenantId": id }),
                });
            }
            c.execute_all(&tenants::create(d, &id, &name, &policy, &directory, now))?;
            if opening_units > 0 {
                let opening = crm_core::wallet::Grant::new(
                    grants::OPENING_GRANT_ID.to_owned(),
                    opening_units,
                    now,
                    None,
                    crm_core::wallet::DEFAULT_PRIORITY,
                    now,
                )?;
                change(
                    c,
                    &id,
                    WalletOp::Grant {
                        grant: opening,
                        label: grants::Label {
                            reason: "opening balance".to_owned(),
                            external_id: None,
                        },
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .await
    }

    /// What a presented viewer token is checked against: the tenant's secret as stored
    /// and whether the token's id is revoked, in one read. Never writes (an empty
    /// secret verifies nothing, as no token was ever signed with it); `None` when the
    /// tenant does not exist.
    pub async fn viewer_check(
        &self,
        tenant: &str,
        token_id: Option<String>,
    ) -> HostResult<Option<crm_store::viewer_tokens::ViewerSecret>> {
        let d = self.dialect();
        let tenant = tenant.to_owned();
        self.read(move |c| {
            c.query_opt(&viewer_tokens::check(d, &tenant, token_id.as_deref()))?
                .map(|row| Ok(viewer_tokens::decode_check(&row)?))
                .transpose()
        })
        .await
    }

    /// Revokes one viewer token by id until `expires_at`.
    pub async fn revoke_viewer_token(
        &self,
        tenant: &str,
        token_id: String,
        expires_at: i64,
        now: i64,
    ) -> HostResult<()> {
        let d = self.dialect();
        let tenant = tenant.to_owned();
        self.write(None, move |c| {
            c.execute(&viewer_tokens::revoke(
                d, &tenant, &token_id, expires_at, now,
            ))?;
            Ok(())
        })
        .await
    }

    pub async fn tenant_secret(&self, id: &str) -> HostResult<(Vec<u8>, u64)> {
        let d = self.dialect();
        let read = move |c: &mut dyn super::Conn, id: &str| -> HostResult<(String, u64)> {
            let row = c
                .query_opt(&tenants::secret(d, id))?
                .ok_or_else(|| missing(id))?;
            Ok((row.string(0)?, row.uint(1)?))
        };
        let owned = id.to_owned();
        let (mut secret, mut version) = self.read(move |c| read(c, &owned)).await?;
        if secret.is_empty() {
            let fresh = super::keys::random_hex(SECRET_BYTES);
            let owned = id.to_owned();
            (secret, version) = self
                .write(None, move |c| {
                    c.execute(&tenants::init_secret(d, &owned, &fresh))?;
                    read(c, &owned)
                })
                .await?;
        }
        let bytes = hex::decode(&secret)
            .map_err(|_| HostError::internal(anyhow::anyhow!("stored tenant secret is not hex")))?;
        Ok((bytes, version))
    }
}

/// A wallet change with its ledger entries, inside the caller's transaction.
pub fn change(
    c: &mut dyn super::Conn,
    id: &str,
    op: WalletOp,
    now: i64,
) -> HostResult<WalletAnswer> {
    let d = c.dialect();
    let row = c
        .query_opt(&tenants::head(d, id))?
        .ok_or_else(|| missing(id))?;
    let head = tenants::decode_head(&row)?;
    let rules = tenants::decode_alert_rules(&row)?;
    let loaded = grants::load(&c.query(&grants::open(d, id))?)?;
    let planned = grants::plan(d, id, &head, loaded, &rules, op, now)?;
    c.execute_all(&planned.statements)?;
    WalletAnswer::new(planned).map_err(HostError::Api)
}
