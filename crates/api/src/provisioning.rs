//! Provisioning (issue 25.11): `POST /v1/operator/tenants` creates a tenant with its
//! opening balance and its first admin key, so a deployment — the edge above all —
//! needs no SQL to take on a customer. It is guarded by the operator's secret (a
//! Worker secret `OPERATOR_SECRET`; crm-host's `--operator-secret` file), never by an
//! API key: keys belong to tenants, and this endpoint makes tenants.

use sha2::{Digest, Sha256};

use crm_core::Credits;
use crm_core::report::ReportTz;
use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::requests::NewKeyAnswer;

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

#[cfg(test)]
mod tests {
    use super::*;

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
