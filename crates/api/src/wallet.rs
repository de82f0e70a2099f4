//! The credit wallet's endpoints, answered alike by every runtime (issue 27):
//! `POST /v1/credits/grants` (a grant with an effective instant, an expiry, a
//! priority), `POST /v1/credits/grants/{id}/void`, `POST /v1/credits/adjustments`,
//! `GET /v1/credits/grants` and `GET /v1/credits/balance` broken down by grant. The
//! rules are crm-core's wallet; the statements crm-store's `grants::plan`.

use std::collections::BTreeMap;

use crm_core::wallet::{DEFAULT_PRIORITY, Grant, GrantStatus};
use crm_core::{Credits, Timestamp};
use crm_store::grants::{GrantView, Label, Loaded, WalletOp};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Longest grant id accepted in a path (ids are ULIDs; room for migrated ones).
const MAX_GRANT_ID_LEN: usize = 64;
/// Grants per page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

/// `POST /v1/credits/grants`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantRequest {
    pub amount: Credits,
    #[serde(default)]
    pub reason: Option<String>,
    /// When it takes effect (default: now).
    #[serde(default)]
    pub effective_at: Option<Timestamp>,
    /// When its remainder is forfeited (default: never).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// 0–100, lower is spent first (default 50).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub priority: Option<u8>,
    /// The caller's own id for it (an invoice, a contract line).
    #[serde(default)]
    pub external_id: Option<String>,
}

impl GrantRequest {
    /// The wallet change: a grant with id `id` (the runtime's fresh ULID) as of `now`.
    pub fn op(self, id: String, now: i64) -> Result<WalletOp, ApiError> {
        let reason = self.reason.unwrap_or_else(|| "grant".to_owned());
        crm_core::names::validate_text("reason", &reason, crm_core::limits::MAX_TEXT_LEN)?;
        if let Some(x) = &self.external_id {
            crm_core::names::validate_text("externalId", x, crm_core::limits::MAX_TEXT_LEN)?;
        }
        let grant = Grant::new(
            id,
            self.amount.units(),
            self.effective_at.map_or(now, Timestamp::millis),
            self.expires_at.map(Timestamp::millis),
            self.priority.unwrap_or(DEFAULT_PRIORITY),
            now,
        )?;
        Ok(WalletOp::Grant {
            grant,
            label: Label {
                reason,
                external_id: self.external_id,
            },
        })
    }
}

/// `POST /v1/credits/adjustments`: credits taken off (a refund, a correction).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// How much to take off (positive).
    pub amount: Credits,
    pub reason: String,
}

impl AdjustmentRequest {
    pub fn op(self) -> Result<WalletOp, ApiError> {
        crm_core::names::validate_text("reason", &self.reason, crm_core::limits::MAX_TEXT_LEN)?;
        if self.amount.units() <= 0 {
            return Err(ApiError::invalid(
                "an adjustment's `amount` is what it takes off: positive",
            ));
        }
        Ok(WalletOp::Adjust {
            units: self.amount.units(),
            reason: self.reason,
        })
    }
}

/// The grant id of `POST /v1/credits/grants/{id}/void`.
pub fn void(id: &str) -> Result<WalletOp, ApiError> {
    if id.is_empty() || id.len() > MAX_GRANT_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("not a grant id"));
    }
    Ok(WalletOp::Void { id: id.to_owned() })
}

/// What a wallet change answers: the balance after it, and the grant it added or
/// voided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletAnswer {
    pub balance: Credits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantView>,
}

impl WalletAnswer {
    pub fn new(planned: crm_store::grants::Planned) -> Result<WalletAnswer, ApiError> {
        Ok(WalletAnswer {
            balance: Credits::from_units(planned.balance)?,
            grant: planned.grant,
        })
    }
}

/// One grant's part of the balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalancePart {
    pub grant_id: String,
    pub remaining: Credits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub priority: u8,
}

/// `GET /v1/credits/balance`: the balance now and the grants that hold it, in the
/// order they are spent; grants still to take effect apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub balance: Credits,
    pub grants: Vec<BalancePart>,
    pub pending: Vec<BalancePart>,
}

/// The balance as of `now`, from the open grants read (time applied without writing:
/// a grant that expired since the last write no longer counts).
pub fn balance(loaded: Loaded, now: i64) -> Result<Balance, ApiError> {
    let mut wallet = loaded.wallet;
    wallet.tick(now)?;
    let part = |g: &Grant| -> Result<BalancePart, ApiError> {
        Ok(BalancePart {
            grant_id: g.id.clone(),
            remaining: Credits::from_units(g.remaining)?,
            expires_at: g.expires_at.map(Timestamp::from_millis).transpose()?,
            priority: g.priority,
        })
    };
    let grants = wallet
        .burn_order()
        .into_iter()
        .map(part)
        .collect::<Result<Vec<_>, _>>()?;
    let pending = wallet
        .grants()
        .iter()
        .filter(|g| g.status == GrantStatus::Pending)
        .map(part)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Balance {
        balance: Credits::from_units(wallet.balance())?,
        grants,
        pending,
    })
}

/// What `GET /v1/credits/grants` asks for: a `status`, a page (`limit`, `cursor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantsQuery {
    pub status: Option<GrantStatus>,
    /// The last grant of the previous page (created at, id).
    pub before: Option<(i64, String)>,
    pub limit: usize,
}

pub fn grants_query(params: &BTreeMap<String, String>) -> Result<GrantsQuery, ApiError> {
    let status = params
        .get("status")
        .map(|s| {
            GrantStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("`status` is pending, active, exhausted, expired or voided")
            })
        })
        .transpose()?;
    let before = params
        .get("cursor")
        .map(|c| {
            c.strip_prefix('g')
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .filter(|(_, id)| !id.is_empty() && id.len() <= MAX_GRANT_ID_LEN)
                .ok_or_else(|| ApiError::invalid("`cursor` is not a grants cursor"))
        })
        .transpose()?;
    let limit = crate::paging::limit(params, DEFAULT_LIMIT, MAX_LIMIT)?;
    Ok(GrantsQuery {
        status,
        before,
        limit,
    })
}

/// A page of grants, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantsPage {
    pub grants: Vec<GrantView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl GrantsPage {
    /// From the rows `crm_store::grants::page` read (one past the limit, if any).
    pub fn new(grants: Vec<GrantView>, q: &GrantsQuery) -> GrantsPage {
        let (grants, next_cursor) = crate::paging::cut(grants, q.limit, |g| {
            format!("g{}.{}", g.created_at.millis(), g.id)
        });
        GrantsPage {
            grants,
            next_cursor,
        }
    }
}

/// What `GET /v1/credits/alerts` asks for: a page (`limit`, `cursor`).
pub fn alerts_query(params: &BTreeMap<String, String>) -> Result<(Option<u64>, usize), ApiError> {
    let before = params
        .get("cursor")
        .map(|c| {
            c.strip_prefix('a')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid("`cursor` is not an alerts cursor"))
        })
        .transpose()?;
    Ok((
        before,
        crate::paging::limit(params, DEFAULT_LIMIT, MAX_LIMIT)?,
    ))
}

/// A page of alert events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertsPage {
    pub alerts: Vec<crm_store::alerts::AlertEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl AlertsPage {
    /// From the rows `crm_store::alerts::page` read (one past the limit, if any).
    pub fn new(alerts: Vec<crm_store::alerts::AlertEvent>, limit: usize) -> AlertsPage {
        let (alerts, next_cursor) = crate::paging::cut(alerts, limit, |a| format!("a{}", a.entry));
        AlertsPage {
            alerts,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn grant_requests_default_to_now_forever_and_the_middle_priority() {
        let req: GrantRequest = serde_json::from_str(r#"{"amount": "5"}"#).expect("parses");
        let WalletOp::Grant { grant, label } = req.op("g1".into(), 1_000).expect("valid") else {
            panic!("a grant");
        };
        assert_eq!(
            (
                grant.amount,
                grant.effective_at,
                grant.expires_at,
                grant.priority
            ),
            (50_000, 1_000, None, DEFAULT_PRIORITY)
        );
        assert_eq!(label.reason, "grant");
        for bad in [
            r#"{"amount": "0"}"#,
            r#"{"amount": "5", "priority": 101}"#,
            r#"{"amount": "5", "priority": 300}"#,
            r#"{"amount": "5", "expiresAt": "1970-01-01T00:00:00.500Z"}"#,
            r#"{"amount": "5", "bogus": 1}"#,
        ] {
            let refused = serde_json::from_str::<GrantRequest>(bad)
                .map_err(|e| e.to_string())
                .and_then(|r| r.op("g".into(), 1_000).map_err(|e| e.message));
            assert!(refused.is_err(), "{bad}");
        }
    }

    #[test]
    fn adjustments_take_a_positive_amount_off() {
        let req: AdjustmentRequest =
            serde_json::from_str(r#"{"amount": "2", "reason": "refund"}"#).expect("parses");
        assert_eq!(
            req.op().expect("valid"),
            WalletOp::Adjust {
                units: 20_000,
                reason: "refund".into()
            }
        );
        let negative: AdjustmentRequest =
            serde_json::from_str(r#"{"amount": "-2", "reason": "x"}"#).expect("parses");
        assert!(negative.op().is_err());
    }

    #[test]
    fn grant_cursors_round_trip_and_bad_ones_are_refused() {
        let q = grants_query(&p(&[("cursor", "g17.01ABC"), ("status", "active")])).expect("valid");
        assert_eq!(q.before, Some((17, "01ABC".to_owned())));
        assert_eq!(q.status, Some(GrantStatus::Active));
        for bad in ["17.x", "gx.y", "g17.", "g17"] {
            assert!(grants_query(&p(&[("cursor", bad)])).is_err(), "{bad}");
        }
        assert!(grants_query(&p(&[("status", "open")])).is_err());
    }
}
