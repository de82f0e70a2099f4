//! Credit alerts (issue 27): per-tenant rules on the wallet, decided by comparing the
//! wallet before and after the transaction that changes it. An alert is a *crossing*
//! — the balance falls below a threshold, a grant's consumption passes a share — so
//! it is raised exactly once, in the transaction that crossed, and never missed or
//! repeated by a retry (a retried write either committed its alert or nothing). A
//! balance that rises back over its threshold (a grant, an activation) resolves it.

use serde::{Deserialize, Serialize};

use crate::credits::Credits;
use crate::duration::DAY_MS;
use crate::error::{CoreError, CoreResult};
use crate::names::validate_label;
use crate::wallet::{Grant, GrantStatus};

/// Rules a tenant may set: each is evaluated in every balance-changing transaction.
pub const MAX_ALERT_RULES: usize = 20;

/// The widest expiry window a rule may watch: a year ahead covers annual commitments.
pub const MAX_EXPIRY_WINDOW_DAYS: u16 = 365;

/// One rule: exactly one condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRule {
    pub id: String,
    /// Fires when the balance falls below this; resolves when it is back at or over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_below: Option<Credits>,
    /// Fires when spending passes this share (1–100 %) of a grant's amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_consumed_percent: Option<u8>,
    /// Fires once per grant when it still holds credits this many days (1–365) before
    /// it expires; raised by the scheduled pass, time being what crosses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_expiring_within_days: Option<u16>,
}

impl AlertRule {
    pub fn validate(&self) -> CoreResult<()> {
        validate_label("creditAlerts.id", &self.id)?;
        match (
            self.balance_below,
            self.grant_consumed_percent,
            self.grant_expiring_within_days,
        ) {
            (Some(b), None, None) if !b.is_negative() => Ok(()),
            (None, Some(p), None) if (1..=100).contains(&p) => Ok(()),
            (None, None, Some(d)) if (1..=MAX_EXPIRY_WINDOW_DAYS).contains(&d) => Ok(()),
            _ => Err(CoreError::invalid(
                "creditAlerts",
                format!(
                    "a rule has an `id` and exactly one of `balanceBelow` (credits, not negative), `grantConsumedPercent` (1-100) or `grantExpiringWithinDays` (1-{MAX_EXPIRY_WINDOW_DAYS})"
                ),
            )),
        }
    }
}

pub fn validate(rules: &[AlertRule]) -> CoreResult<()> {
    if rules.len() > MAX_ALERT_RULES {
        return Err(CoreError::too_large(
            "creditAlerts",
            format!("at most {MAX_ALERT_RULES} rules"),
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        r.validate()?;
        if rules[..i].iter().any(|o| o.id == r.id) {
            return Err(CoreError::invalid(
                "creditAlerts",
                format!("two rules are named `{}`", r.id),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertState {
    Fired,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Fired => "fired",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<AlertState> {
        [AlertState::Fired, AlertState::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A crossing, to record with the transaction that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub rule_id: String,
    pub state: AlertState,
    /// The grant a consumption rule concerns.
    pub grant_id: Option<String>,
    /// The balance after the transaction.
    pub balance: i64,
}

/// What crossed between the wallet as a transaction found it (`balance_before`, each
/// changed grant as it was stored) and as it leaves it.
pub fn crossings<'a>(
    rules: &[AlertRule],
    balance_before: i64,
    balance_after: i64,
    changed: impl Iterator<Item = (Option<&'a Grant>, &'a Grant)> + Clone,
) -> Vec<Crossing> {
    let mut out = Vec::new();
    for rule in rules {
        if let Some(threshold) = rule.balance_below {
            let t = threshold.units();
            let state = if balance_before >= t && balance_after < t {
                Some(AlertState::Fired)
            } else if balance_before < t && balance_after >= t {
                Some(AlertState::Resolved)
            } else {
                None
            };
            out.extend(state.map(|state| Crossing {
                rule_id: rule.id.clone(),
                state,
                grant_id: None,
                balance: balance_after,
            }));
        }
        if let Some(percent) = rule.grant_consumed_percent {
            for (was, now) in changed.clone() {
                // Spending only: a grant forfeited at expiry or voided was not consumed.
                if !matches!(now.status, GrantStatus::Active | GrantStatus::Exhausted) {
                    continue;
                }
                let before = was.map_or(0, |w| w.amount - w.remaining);
                let after = now.amount - now.remaining;
                // consumed / amount ≥ percent / 100, in integers.
                let past = |consumed: i64| {
                    i128::from(consumed) * 100 >= i128::from(now.amount) * i128::from(percent)
                };
                if !past(before) && past(after) {
                    out.push(Crossing {
                        rule_id: rule.id.clone(),
                        state: AlertState::Fired,
                        grant_id: Some(now.id.clone()),
                        balance: balance_after,
                    });
                }
            }
        }
    }
    out
}

/// Whether any rule watches expiry windows (the scheduled pass reads grants only then).
pub fn watches_expiry(rules: &[AlertRule]) -> bool {
    rules.iter().any(|r| r.grant_expiring_within_days.is_some())
}

/// The expiry windows open at `now`: each active grant that still holds credits and
/// expires within a rule's days. The pass that raises them runs again and again, so the
/// store records one per rule and grant and drops the rest (`crm_store::alerts`).
pub fn expiring(rules: &[AlertRule], grants: &[Grant], balance: i64, now: i64) -> Vec<Crossing> {
    let mut out = Vec::new();
    for rule in rules {
        let Some(days) = rule.grant_expiring_within_days else {
            continue;
        };
        let window = i64::from(days) * DAY_MS;
        for g in grants {
            let Some(expires_at) = g.expires_at else {
                continue;
            };
            let open = g.status == GrantStatus::Active
                && g.remaining > 0
                && now < expires_at
                && now >= expires_at.saturating_sub(window);
            if open {
                out.push(Crossing {
                    rule_id: rule.id.clone(),
                    state: AlertState::Fired,
                    grant_id: Some(g.id.clone()),
                    balance,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, below: Option<i64>, percent: Option<u8>) -> AlertRule {
        AlertRule {
            id: id.into(),
            balance_below: below.map(|u| Credits::from_units(u).expect("units")),
            grant_consumed_percent: percent,
            grant_expiring_within_days: None,
        }
    }

    fn window(id: &str, days: u16) -> AlertRule {
        AlertRule {
            grant_expiring_within_days: Some(days),
            ..rule(id, None, None)
        }
    }

    #[test]
    fn an_expiry_window_opens_days_before_expiry_for_grants_still_holding_credits() {
        let rules = &[window("soon", 7), rule("low", Some(1), None)];
        let expiring_at = |expires_at: Option<i64>, remaining: i64, status: GrantStatus| {
            let g = Grant {
                expires_at,
                ..grant(remaining, status)
            };
            move |now: i64| expiring(rules, std::slice::from_ref(&g), 5, now).len()
        };
        let day = DAY_MS;
        let soon = expiring_at(Some(30 * day), 40, GrantStatus::Active);
        assert_eq!(soon(22 * day), 0, "8 days before");
        assert_eq!(soon(23 * day), 1, "7 days before: the window opens");
        assert_eq!(soon(30 * day - 1), 1);
        assert_eq!(soon(30 * day), 0, "expired");
        assert_eq!(
            expiring_at(None, 40, GrantStatus::Active)(0),
            0,
            "never expires"
        );
        assert_eq!(
            expiring_at(Some(day), 0, GrantStatus::Exhausted)(0),
            0,
            "spent"
        );
        assert_eq!(expiring_at(Some(day), 40, GrantStatus::Voided)(0), 0);
        assert_eq!(expiring_at(Some(day), 40, GrantStatus::Pending)(0), 0);
        let fired = expiring(&[window("soon", 7)], &[grant(1, GrantStatus::Active)], 1, 0);
        assert!(fired.is_empty(), "no expiry, no window");
    }

    fn grant(remaining: i64, status: GrantStatus) -> Grant {
        Grant {
            id: "g".into(),
            amount: 100,
            remaining,
            effective_at: 0,
            expires_at: None,
            priority: 50,
            created_at: 0,
            status,
            closed_at: None,
        }
    }

    #[test]
    fn a_balance_threshold_fires_once_when_crossed_and_resolves_when_lifted() {
        let rules = [rule("low", Some(50), None)];
        let none = std::iter::empty();
        let states = |before, after| {
            crossings(&rules, before, after, none.clone())
                .into_iter()
                .map(|c| c.state)
                .collect::<Vec<_>>()
        };
        assert_eq!(states(60, 40), [AlertState::Fired]);
        assert_eq!(states(40, 30), [], "already below: nothing new");
        assert_eq!(states(50, 49), [AlertState::Fired]);
        assert_eq!(states(49, 50), [AlertState::Resolved]);
        assert_eq!(states(60, 55), []);
    }

    #[test]
    fn a_grant_share_fires_when_spending_passes_it_and_not_on_forfeiture() {
        let rules = [rule("eighty", None, Some(80))];
        let was = grant(30, GrantStatus::Active);
        let fired = |now: &Grant| crossings(&rules, 0, 0, std::iter::once((Some(&was), now))).len();
        assert_eq!(fired(&grant(20, GrantStatus::Active)), 1, "70 % -> 80 %");
        assert_eq!(fired(&grant(0, GrantStatus::Exhausted)), 1);
        assert_eq!(fired(&grant(25, GrantStatus::Active)), 0, "75 %");
        assert_eq!(
            fired(&grant(0, GrantStatus::Expired)),
            0,
            "forfeited, not spent"
        );
        let already = grant(20, GrantStatus::Active);
        let again = crossings(
            &rules,
            0,
            0,
            std::iter::once((Some(&already), &grant(10, GrantStatus::Active))),
        );
        assert!(again.is_empty(), "past it before");
    }

    #[test]
    fn rules_are_checked() {
        assert!(
            validate(&[
                rule("a", Some(1), None),
                rule("b", None, Some(50)),
                window("c", 365)
            ])
            .is_ok()
        );
        for bad in [
            vec![rule("a", Some(1), Some(5))],
            vec![rule("a", None, None)],
            vec![rule("a", None, Some(0))],
            vec![rule("a", None, Some(101))],
            vec![rule("a", Some(-1), None)],
            vec![rule("a", Some(1), None), rule("a", Some(2), None)],
            vec![window("a", 0)],
            vec![window("a", 366)],
            vec![AlertRule {
                balance_below: Some(Credits::ZERO),
                ..window("a", 3)
            }],
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }
}
