//! Tenant policy: what enrichment and reports need to know about a tenant.

use serde::{Deserialize, Serialize};

use crate::alerts::AlertRule;
use crate::error::{CoreError, CoreResult};
use crate::limits::MAX_REDACTED_KEYS;
use crate::names::validate_label;
use crate::pricing::PriceTable;
use crate::report::ReportTz;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPolicy {
    /// IANA timezone for reports (`Europe/Berlin`); UTC when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub prices: PriceTable,
    /// Metadata keys (case-insensitive, any depth) whose values are replaced by
    /// `"[REDACTED]"` before anything is stored.
    #[serde(default)]
    pub redact_keys: Vec<String>,
    /// Top-level metadata keys (case-insensitive) whose values are personal: sealed
    /// under the subject's key with the user's name and the connection's details, and
    /// erased with them (`POST /v1/subjects/{userId}/erase`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_keys: Vec<String>,
    /// Days activities are kept; older ones are deleted in chain order (the chain stays
    /// verifiable from the last deleted record). Absent: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Credit alerts, each raised in the transaction that crosses its threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_alerts: Vec<AlertRule>,
}

/// Longest retention that can be set: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_600;

impl TenantPolicy {
    pub fn validate(&self) -> CoreResult<()> {
        self.prices.validate()?;
        self.report_tz()?;
        if self.redact_keys.len() > MAX_REDACTED_KEYS {
            return Err(CoreError::too_large(
                "redactKeys",
                format!("at most {MAX_REDACTED_KEYS} keys"),
            ));
        }
        for key in &self.redact_keys {
            validate_label("redactKeys", key)?;
        }
        if self.personal_keys.len() > MAX_REDACTED_KEYS {
            return Err(CoreError::too_large(
                "personalKeys",
                format!("at most {MAX_REDACTED_KEYS} keys"),
            ));
        }
        for key in &self.personal_keys {
            validate_label("personalKeys", key)?;
        }
        if self
            .retention_days
            .is_some_and(|d| d == 0 || d > MAX_RETENTION_DAYS)
        {
            return Err(CoreError::invalid(
                "retentionDays",
                format!("`retentionDays` must be 1..={MAX_RETENTION_DAYS}"),
            ));
        }
        crate::alerts::validate(&self.credit_alerts)
    }

    pub fn report_tz(&self) -> CoreResult<ReportTz> {
        ReportTz::parse(self.timezone.as_deref().unwrap_or("UTC"))
    }
}
