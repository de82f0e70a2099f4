//! Provisioning (issue 25.11): `POST /v1/operator/tenants` creates a tenant with its
//! opening balance and its first admin key, so a deployment — the edge above all —
//! needs no SQL to take on a customer. It is guarded by the operator's secret (a
//! Worker secret `OPERATOR_SECRET`; crm-host's `--operator-secret` file), never by an
//! API key: keys belong to tenants, and this endpoint makes tenants.

use sha2::{Digest, Sha256};

use crm_core::Credits;
use crm_core::TenantPolicy;
use crm_core::directory::DirectorySpec;
use crm_core::engine::TenantSnapshot;
use crm_core::report::ReportTz;
use crm_core::wallet::{DEFAULT_PRIORITY, Grant, Wallet};
use crm_store::grants::{self, WalletOp};
use crm_store::keys::{self, KeyScope, NewKey};
use crm_store::tenants::{self, Head};
use crm_store::{Dialect, Statement};
use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::flow::FlowError;
use crate::requests::{KeyPlan, NewKeyAnswer};

/// Shortest operator secret accepted: 128 bits as hex, so it cannot be guessed.
pub const MIN_SECRET_LEN: usize = 32;

/// Whether `presented` (the `Authorization` header) carries the operator's secret.
/// Without a configured secret provisioning is off (403); a missing or wrong secret is
/// 401. Both sides are hashed before comparing, so the time taken says nothing of how
/// much of a guess was right.
pub fn check_operator(configured: Option<&str>, presented: Option<&str>) -> Result<(), ApiError> {
    let Some(secret) = configured.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(ApiError::forbidden(
            "provisioning is off: no operator secret is configured",
        ));
    };
    let given = presented
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if Sha256::digest(given.as_bytes()) == Sha256::digest(secret.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("not the operator's secret"))
    }
}

/// Whether a configured secret is long enough to use (checked where it is loaded).
pub fn usable_secret(secret: &str) -> Result<(), String> {
    if secret.trim().len() < MIN_SECRET_LEN {
        return Err(format!(
            "an operator secret has at least {MIN_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

/// `POST /v1/operator/tenants`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionRequest {
    pub id: String,
    pub name: String,
    /// The reports' default zone (IANA), UTC unless given.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The opening balance (a grant), none unless given.
    #[serde(default)]
    pub balance: Option<Credits>,
    /// The edge shard to place it on (0 unless given; crm-host has one database).
    #[serde(default)]
    pub shard: Option<u32>,
}

/// A checked provisioning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlan {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub balance: Credits,
    pub shard: u32,
}

impl ProvisionRequest {
    /// Checks the request against the deployment's `shards` (databases).
    pub fn plan(self, shards: u32) -> Result<TenantPlan, ApiError> {
        crm_core::names::validate_id("id", &self.id)?;
        crm_core::names::validate_text("name", &self.name, crm_core::limits::MAX_TEXT_LEN)?;
        let timezone = self.timezone.unwrap_or_else(|| "UTC".to_owned());
        ReportTz::parse(&timezone)?;
        let balance = self.balance.unwrap_or(Credits::ZERO);
        if balance.is_negative() {
            return Err(ApiError::invalid("`balance` cannot be negative"));
        }
        let shard = self.shard.unwrap_or(0);
        if shard >= shards {
            return Err(ApiError::invalid(format!(
                "`shard` is 0-{} here (this deployment has {shards})",
                shards.saturating_sub(1)
            )));
        }
        Ok(TenantPlan {
            id: self.id,
            name: self.name,
            timezone,
            balance,
            shard,
        })
    }
}

/// What provisioning answers: where the tenant lives and its first admin key (the
/// key's text shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    pub tenant_id: String,
    pub shard: u32,
    pub balance: Credits,
    pub admin_key: NewKeyAnswer,
}

/// What creating a tenant writes — one transaction on its database: the tenant row,
/// its opening balance as a grant with its ledger entry, its first admin key — and
/// what provisioning answers.
#[derive(Debug)]
pub struct NewTenant {
    pub statements: Vec<Statement>,
    /// The first admin key's hash (the edge registers it in its control database
    /// before the tenant's transaction).
    pub key_hash: String,
    pub answer: Provisioned,
}

impl TenantPlan {
    /// The tenant's writes at `now`; `key_random` is the runtime's random bytes for the
    /// first admin key.
    pub fn writes(
        self,
        d: Dialect,
        now: i64,
        key_random: &[u8; keys::KEY_RANDOM_BYTES],
    ) -> Result<NewTenant, FlowError> {
        let internal = |e: serde_json::Error| FlowError::Internal(e.to_string());
        let policy = serde_json::to_string(&TenantPolicy {
            timezone: Some(self.timezone.clone()),
            ..TenantPolicy::default()
        })
        .map_err(internal)?;
        let directory = serde_json::to_string(&DirectorySpec::default()).map_err(internal)?;
        TenantSnapshot::from_json(&self.id, 1, &policy, &directory)?;
        let mut statements = tenants::create(d, &self.id, &self.name, &policy, &directory, now);
        if self.balance.units() > 0 {
            let empty = Head {
                seq: 0,
                hash: crm_core::chain::GENESIS.to_owned(),
                balance: Credits::ZERO,
            };
            let opening = Grant::new(
                grants::OPENING_GRANT_ID.to_owned(),
                self.balance.units(),
                now,
                None,
                DEFAULT_PRIORITY,
                now,
            )?;
            let loaded = grants::Loaded {
                wallet: Wallet::new(Vec::new())?,
                labels: Default::default(),
            };
            let op = WalletOp::Grant {
                grant: opening,
                label: grants::Label {
                    reason: "opening balance".to_owned(),
                    external_id: None,
                },
            };
            statements.extend(grants::plan(d, &self.id, &empty, loaded, &[], op, now)?.statements);
        }
        let (key_id, key) = keys::from_random(key_random);
        let key_hash = keys::hash_key(&key);
        let key_plan = KeyPlan {
            scopes: vec![KeyScope::Admin],
            label: Some("first admin key".to_owned()),
            expires_at: None,
        };
        statements.push(keys::insert(
            d,
            &NewKey {
                id: &key_id,
                tenant_id: &self.id,
                key_hash: &key_hash,
                scopes: &key_plan.scopes,
                label: key_plan.label.as_deref(),
                created_at: now,
                expires_at: None,
            },
        )?);
        Ok(NewTenant {
            statements,
            key_hash,
            answer: Provisioned {
                admin_key: NewKeyAnswer::new(key_id, key, &key_plan)?,
                tenant_id: self.id,
                shard: self.shard,
                balance: self.balance,
            },
        })
    }
}

/// The refusal of a tenant id already taken.
pub fn exists(id: &str) -> ApiError {
    ApiError::conflict(format!("tenant `{id}` already exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tenant_is_one_transaction_with_its_grant_and_its_key() {
        let plan = |balance: &str| TenantPlan {
            id: "t-new".to_owned(),
            name: "New".to_owned(),
            timezone: "Europe/Berlin".to_owned(),
            balance: Credits::parse(balance).expect("an amount"),
            shard: 1,
        };
        let random = [9u8; keys::KEY_RANDOM_BYTES];
        let empty = plan("0")
            .writes(Dialect::D1, 1_000, &random)
            .expect("writes");
        let funded = plan("25")
            .writes(Dialect::D1, 1_000, &random)
            .expect("writes");
        assert!(
            funded.statements.len() > empty.statements.len(),
            "the opening grant"
        );
        let key = funded
            .answer
            .admin_key
            .key
            .clone()
            .expect("the key, shown once");
        assert_eq!(keys::hash_key(&key), funded.key_hash);
        let last = funded.statements.last().expect("statements");
        assert!(last.sql.contains("api_keys"), "{}", last.sql);
        assert_eq!(
            (funded.answer.shard, funded.answer.tenant_id.as_str()),
            (1, "t-new")
        );
    }

    #[test]
    fn only_the_configured_secret_opens_provisioning() {
        let secret = "s".repeat(40);
        assert!(check_operator(Some(&secret), Some(&format!("Bearer {secret}"))).is_ok());
        for presented in [
            None,
            Some("Bearer nope"),
            Some(secret.as_str()),
            Some("Bearer "),
        ] {
            let e = check_operator(Some(&secret), presented).expect_err("refused");
            assert_eq!(e.status(), 401, "{presented:?}");
        }
        assert_eq!(
            check_operator(None, Some("Bearer x"))
                .expect_err("off")
                .status(),
            403
        );
        assert_eq!(
            check_operator(Some("  "), None).expect_err("off").status(),
            403
        );
        assert!(usable_secret("short").is_err());
        assert!(usable_secret(&secret).is_ok());
    }

    #[test]
    fn tenants_are_checked_before_anything_is_made() {
        let req = |body: &str| serde_json::from_str::<ProvisionRequest>(body).expect("parses");
        let plan = req(r#"{"id": "acme", "name": "Acme", "balance": "10"}"#)
            .plan(1)
            .expect("valid");
        assert_eq!(
            (plan.timezone.as_str(), plan.balance.units(), plan.shard),
            ("UTC", 100_000, 0)
        );
        for bad in [
            r#"{"id": "a b", "name": "x"}"#,
            r#"{"id": "ok", "name": "x", "timezone": "Mars/Olympus"}"#,
            r#"{"id": "ok", "name": "x", "balance": "-1"}"#,
            r#"{"id": "ok", "name": "x", "shard": 1}"#,
        ] {
            assert!(req(bad).plan(1).is_err(), "{bad}");
        }
        assert_eq!(
            req(r#"{"id": "ok", "name": "x", "shard": 1}"#)
                .plan(2)
                .expect("two shards")
                .shard,
            1
        );
    }
}
