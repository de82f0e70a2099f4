//! A tenant's credits as grants (issue 27): each grant has an amount, an instant it
//! takes effect, an optional expiry, a priority, and burns down as credits are spent.
//! The balance is the sum of the remainders of the grants in effect. Pure rules, run by
//! every runtime's writer in the transaction that changes the balance; crm-store keeps
//! the grants and writes what the wallet says happened to the ledger.
//!
//! Time is applied first ([`Wallet::tick`]): grants that took effect and grants that
//! expired since the last transaction do so *at their own instants*, in order, so the
//! ledger is exact whether the next write comes a millisecond or a month later.
//! Charges then consume the grants in effect by priority (lower first), then earliest
//! expiry (none last), then age.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult, ErrorCode};
use crate::limits::MAX_CREDITS_UNITS;

/// The priority of a grant that names none (Stripe's credit grants use the same
/// 0–100 scale and middle default, so a migrated rule keeps its meaning).
pub const DEFAULT_PRIORITY: u8 = 50;
pub const MAX_PRIORITY: u8 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GrantStatus {
    /// Takes effect later.
    Pending,
    /// In effect, with credits left.
    Active,
    /// Spent down to zero.
    Exhausted,
    /// Its expiry passed; the remainder was forfeited.
    Expired,
    /// Voided; the remainder was forfeited.
    Voided,
}

impl GrantStatus {
    pub const ALL: [GrantStatus; 5] = [
        GrantStatus::Pending,
        GrantStatus::Active,
        GrantStatus::Exhausted,
        GrantStatus::Expired,
        GrantStatus::Voided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Active => "active",
            GrantStatus::Exhausted => "exhausted",
            GrantStatus::Expired => "expired",
            GrantStatus::Voided => "voided",
        }
    }

    pub fn parse(text: &str) -> Option<GrantStatus> {
        GrantStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether time or spending can still change it.
    pub fn is_open(self) -> bool {
        matches!(self, GrantStatus::Pending | GrantStatus::Active)
    }
}

/// One grant, in units (1/10 000 credit) and milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub amount: i64,
    pub remaining: i64,
    pub effective_at: i64,
    pub expires_at: Option<i64>,
    pub priority: u8,
    pub created_at: i64,
    pub status: GrantStatus,
    /// When it was exhausted, expired or voided.
    pub closed_at: Option<i64>,
}

impl Grant {
    /// A new grant as of `now`: in effect at once unless `effective_at` is later.
    pub fn new(
        id: String,
        amount: i64,
        effective_at: i64,
        expires_at: Option<i64>,
        priority: u8,
        now: i64,
    ) -> CoreResult<Grant> {
        if amount <= 0 || amount > MAX_CREDITS_UNITS {
            return Err(CoreError::invalid("amount", "a grant must be positive"));
        }
        if priority > MAX_PRIORITY {
            return Err(CoreError::invalid(
                "priority",
                format!("priority is 0-{MAX_PRIORITY} (lower is spent first)"),
            ));
        }
        if let Some(end) = expires_at {
            if end <= effective_at {
                return Err(CoreError::invalid(
                    "expiresAt",
                    "a grant must expire after it takes effect",
                ));
            }
            if end <= now {
                return Err(CoreError::invalid(
                    "expiresAt",
                    "the grant would already have expired",
                ));
            }
        }
        Ok(Grant {
            id,
            amount,
            remaining: amount,
            effective_at,
            expires_at,
            priority,
            created_at: now,
            status: GrantStatus::Pending,
            closed_at: None,
        })
    }

    /// Burn-down order: priority, then earliest expiry (none last), then age.
    fn burn_key(&self) -> (u8, i64, i64, &str) {
        (
            self.priority,
            self.expires_at.unwrap_or(i64::MAX),
            self.created_at,
            &self.id,
        )
    }
}

/// Why the balance changed (the ledger entry's kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A grant took effect.
    Grant,
    /// A grant expired with credits left.
    Expiry,
    /// A grant was voided with credits left.
    Void,
    /// Credits taken off by an operator (a refund, a correction).
    Adjustment,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Grant => "grant",
            ChangeKind::Expiry => "expiry",
            ChangeKind::Void => "void",
            ChangeKind::Adjustment => "adjustment",
        }
    }
}

/// A balance change the wallet made, for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at: i64,
    pub delta: i64,
    /// The balance after it.
    pub balance: i64,
    pub kind: ChangeKind,
    /// The grant it concerns (none for an adjustment, which may span several).
    pub grant_id: Option<String>,
}

/// The open grants of a tenant and the balance they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    grants: Vec<Grant>,
    /// Each grant as it was stored (`None` for one added since): what the writer
    /// compares with to know what to store back, and guards its writes with.
    stored: Vec<Option<Grant>>,
    balance: i64,
}

fn insufficient() -> CoreError {
    CoreError::new(
        ErrorCode::InsufficientCredits,
        "the balance cannot cover this amount",
    )
}

impl Wallet {
    /// From the stored open grants; the balance is what the active ones hold.
    pub fn new(grants: Vec<Grant>) -> CoreResult<Wallet> {
        let mut balance: i64 = 0;
        for g in &grants {
            if !g.status.is_open() || g.remaining < 0 || g.remaining > g.amount {
                return Err(CoreError::new(
                    ErrorCode::ChainBroken,
                    format!("stored grant `{}` is inconsistent", g.id),
                ));
            }
            if g.status == GrantStatus::Active {
                balance = balance
                    .checked_add(g.remaining)
                    .filter(|b| *b <= MAX_CREDITS_UNITS)
                    .ok_or_else(|| CoreError::new(ErrorCode::Overflow, "balance out of range"))?;
            }
        }
        Ok(Wallet {
            stored: grants.iter().cloned().map(Some).collect(),
            grants,
            balance,
        })
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// Every grant loaded or added, open or closed since.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The grants changed since they were stored: (as stored, or `None` if new; now).
    pub fn changed(&self) -> impl Iterator<Item = (Option<&Grant>, &Grant)> + Clone {
        self.grants
            .iter()
            .zip(&self.stored)
            .filter(|(g, s)| s.as_ref() != Some(*g))
            .map(|(g, s)| (s.as_ref(), g))
    }

    /// The writer stored every change: what is stored now is what the wallet holds,
    /// and closed grants are no longer carried.
    pub fn stored_all(&mut self) {
        self.grants.retain(|g| g.status.is_open());
        self.stored = self.grants.iter().cloned().map(Some).collect();
    }

    /// The active grants in the order they are spent.
    pub fn burn_order(&self) -> Vec<&Grant> {
        let mut active: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.status == GrantStatus::Active)
            .collect();
        active.sort_by(|a, b| a.burn_key().cmp(&b.burn_key()));
        active
    }

    /// The earliest instant after which time alone changes the balance.
    pub fn due_at(&self) -> Option<i64> {
        self.grants
            .iter()
            .filter_map(|g| match g.status {
                GrantStatus::Pending => Some(g.effective_at),
                GrantStatus::Active => g.expires_at,
                _ => None,
            })
            .min()
    }

    /// Applies time up to `now`: grants take effect at `effective_at` and expire at
    /// `expires_at` (the remainder forfeited), each at its instant, in order.
    pub fn tick(&mut self, now: i64) -> CoreResult<Vec<Change>> {
        // (instant, activation before expiry at one instant, grant index)
        let mut events: Vec<(i64, u8, usize)> = Vec::new();
        for (i, g) in self.grants.iter().enumerate() {
            if g.status == GrantStatus::Pending && g.effective_at <= now {
                events.push((g.effective_at, 0, i));
            }
            if g.status.is_open()
                && let Some(end) = g.expires_at
                && end <= now
            {
                events.push((end, 1, i));
            }
        }
        events.sort_unstable();
        let mut changes = Vec::with_capacity(events.len());
        for (at, what, i) in events {
            let g = &mut self.grants[i];
            if what == 0 {
                g.status = GrantStatus::Active;
                self.balance = self
                    .balance
                    .checked_add(g.remaining)
                    .filter(|b| *b <= MAX_CREDITS_UNITS)
                    .ok_or_else(|| CoreError::new(ErrorCode::Overflow, "balance out of range"))?;
                changes.push(Change {
                    at,
                    delta: g.remaining,
                    balance: self.balance,
                    kind: ChangeKind::Grant,
                    grant_id: Some(g.id.clone()),
                });
            } else {
                let forfeited = g.remaining;
                g.status = GrantStatus::Expired;
                g.closed_at = Some(at);
                g.remaining = 0;
                if forfeited > 0 {
                    self.balance -= forfeited;
                    changes.push(Change {
                        at,
                        delta: -forfeited,
                        balance: self.balance,
                        kind: ChangeKind::Expiry,
                        grant_id: Some(g.id.clone()),
                    });
                }
            }
        }
        Ok(changes)
    }

    /// Adds a new grant (time applied to `now` first by the caller); in effect at once
    /// if its instant has come.
    pub fn add(&mut self, grant: Grant, now: i64) -> CoreResult<Vec<Change>> {
        if self.grants.iter().any(|g| g.id == grant.id) {
            return Err(CoreError::new(
                ErrorCode::Duplicate,
                format!("grant `{}` exists", grant.id),
            ));
        }
        self.grants.push(grant);
        self.stored.push(None);
        self.tick(now)
    }

    /// Takes `units` off the active grants in burn-down order; answers what it took
    /// from each. Refused whole when the balance cannot cover it.
    pub fn spend(&mut self, units: i64, now: i64) -> CoreResult<Vec<(String, i64)>> {
        if units < 0 {
            return Err(CoreError::invalid(
                "amount",
                "cannot spend a negative amount",
            ));
        }
        if units > self.balance {
            return Err(insufficient());
        }
        let mut order: Vec<usize> = (0..self.grants.len())
            .filter(|&i| self.grants[i].status == GrantStatus::Active)
            .collect();
        order.sort_by(|&a, &b| self.grants[a].burn_key().cmp(&self.grants[b].burn_key()));
        let mut left = units;
        let mut taken = Vec::new();
        for i in order {
            if left == 0 {
                break;
            }
            let g = &mut self.grants[i];
            let take = left.min(g.remaining);
            if take == 0 {
                continue;
            }
            g.remaining -= take;
            left -= take;
            if g.remaining == 0 {
                g.status = GrantStatus::Exhausted;
                g.closed_at = Some(now);
            }
            taken.push((g.id.clone(), take));
        }
        if left != 0 {
            // The balance and the grants disagree: never charge past the grants.
            return Err(CoreError::new(
                ErrorCode::ChainBroken,
                "the active grants do not hold the balance",
            ));
        }
        self.balance -= units;
        Ok(taken)
    }

    /// An operator's deduction (a refund, a correction), spent like a charge.
    pub fn adjust(&mut self, units: i64, now: i64) -> CoreResult<Change> {
        if units <= 0 {
            return Err(CoreError::invalid(
                "amount",
                "an adjustment takes a positive amount off",
            ));
        }
        self.spend(units, now)?;
        Ok(Change {
            at: now,
            delta: -units,
            balance: self.balance,
            kind: ChangeKind::Adjustment,
            grant_id: None,
        })
    }

    /// Voids an open grant: what is left of it is forfeited (a zero change for one not
    /// yet in effect). `None` when no open grant has this id.
    pub fn void(&mut self, id: &str, now: i64) -> Option<Change> {
        let i = self
            .grants
            .iter()
            .position(|g| g.id == id && g.status.is_open())?;
        let g = &mut self.grants[i];
        let forfeited = if g.status == GrantStatus::Active {
            g.remaining
        } else {
            0
        };
        g.status = GrantStatus::Voided;
        g.closed_at = Some(now);
        g.remaining = 0;
        self.balance -= forfeited;
        Some(Change {
            at: now,
            delta: -forfeited,
            balance: self.balance,
            kind: ChangeKind::Void,
            grant_id: Some(g.id.clone()),
        })
    }
}
