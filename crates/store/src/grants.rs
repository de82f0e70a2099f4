//! Credit grants as stored (`credit_grants`), and the one plan both runtimes run to
//! change a wallet outside ingest — add a grant, void one, take credits off — in one
//! transaction with its ledger entries and the balance (issue 27). Ingest spends from
//! the same wallet in its own transaction (`crate::ingest::write`).
//!
//! Every write is guarded on what was read: a grant's update on its stored remainder
//! and status, the balance on its stored value. A guard that fails sets a NOT NULL
//! column to NULL, so the whole transaction (or D1 batch) rolls back and the caller
//! reads again — the safety net where no row lock is held.

use std::collections::HashMap;

use crm_core::alerts::AlertRule;
use crm_core::wallet::{Change, ChangeKind, Grant, GrantStatus, Wallet};
use crm_core::{CoreError, Credits, Timestamp};
use serde::Serialize;

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};
use crate::tenants::{self, Head};

/// Open grants a tenant may hold at once. Every balance-changing transaction reads
/// them all (one small indexed read), and one transaction may close every one of them
/// (an expiry entry and a grant update each): 100 keeps that within ~200 of the D1
/// queries an edge invocation may make (1,000). Billing plans hold a handful.
pub const MAX_OPEN_GRANTS: usize = 100;

/// The id of the grant a tenant is created with (its opening balance).
pub const OPENING_GRANT_ID: &str = "opening-balance";

/// The columns [`decode_grant`] reads (money as text on D1, which would otherwise
/// round it past 2^53).
fn columns(d: Dialect) -> String {
    format!(
        "id, {}, {}, effective_at, expires_at, priority, created_at, status, closed_at",
        d.money("amount_units"),
        d.money("remaining_units")
    )
}

/// The open grants (pending or active): the wallet a transaction works on.
pub fn open(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT {}, reason, external_id FROM credit_grants
             WHERE tenant_id = ?1 AND status IN ('pending', 'active')
             ORDER BY created_at, id LIMIT {}",
            columns(d),
            MAX_OPEN_GRANTS + 1
        ),
        vec![tenant_id.into()],
    )
}

fn decode_grant(row: &Row) -> StoreResult<Grant> {
    let status = row.text(7)?;
    Ok(Grant {
        id: row.string(0)?,
        amount: row.int(1)?,
        remaining: row.int(2)?,
        effective_at: row.int(3)?,
        expires_at: row.opt_int(4)?,
        priority: u8::try_from(row.int(5)?)
            .map_err(|_| StoreError::decode("stored grant priority"))?,
        created_at: row.int(6)?,
        status: GrantStatus::parse(status)
            .ok_or_else(|| StoreError::decode(format!("stored grant status `{status}`")))?,
        closed_at: row.opt_int(8)?,
    })
}

/// What is said of a grant besides its amounts and instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub reason: String,
    pub external_id: Option<String>,
}

fn decode_label(row: &Row) -> StoreResult<Label> {
    Ok(Label {
        reason: row.string(9)?,
        external_id: row.opt_string(10)?,
    })
}

/// A tenant's open grants as read by [`open`]: the wallet, and what each grant says.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub wallet: Wallet,
    pub labels: HashMap<String, Label>,
}

pub fn load(rows: &[Row]) -> StoreResult<Loaded> {
    let mut grants = Vec::with_capacity(rows.len());
    let mut labels = HashMap::with_capacity(rows.len());
    for row in rows {
        let g = decode_grant(row)?;
        labels.insert(g.id.clone(), decode_label(row)?);
        grants.push(g);
    }
    Ok(Loaded {
        wallet: Wallet::new(grants)?,
        labels,
    })
}

fn insert(d: Dialect, tenant_id: &str, g: &Grant, label: &Label) -> Statement {
    d.stmt(
        "INSERT INTO credit_grants (tenant_id, id, amount_units, remaining_units, effective_at,
             expires_at, priority, created_at, status, closed_at, reason, external_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        vec![
            tenant_id.into(),
            g.id.as_str().into(),
            g.amount.into(),
            g.remaining.into(),
            g.effective_at.into(),
            Value::Int(g.expires_at),
            i64::from(g.priority).into(),
            g.created_at.into(),
            g.status.as_str().into(),
            Value::Int(g.closed_at),
            label.reason.as_str().into(),
            Value::Text(label.external_id.clone()),
        ],
    )
}

/// Stores a grant's new remainder and status, only if it still holds what was read.
fn update(d: Dialect, tenant_id: &str, was: &Grant, now: &Grant) -> Statement {
    d.stmt(
        "UPDATE credit_grants SET
             status = CASE WHEN remaining_units = ?4 AND status = ?5 THEN ?6 ELSE NULL END,
             remaining_units = ?3, closed_at = ?7
         WHERE tenant_id = ?1 AND id = ?2",
        vec![
            tenant_id.into(),
            now.id.as_str().into(),
            now.remaining.into(),
            was.remaining.into(),
            was.status.as_str().into(),
            now.status.as_str().into(),
            Value::Int(now.closed_at),
        ],
    )
}

/// The statements storing what changed in `wallet` (new grants need their label).
pub fn store_back(
    d: Dialect,
    tenant_id: &str,
    wallet: &Wallet,
    label: Option<&Label>,
) -> StoreResult<Vec<Statement>> {
    wallet
        .changed()
        .map(|(was, now)| match (was, label) {
            (Some(was), _) => Ok(update(d, tenant_id, was, now)),
            (None, Some(label)) => Ok(insert(d, tenant_id, now, label)),
            (None, None) => Err(StoreError::decode("a new grant without its reason")),
        })
        .collect()
}

/// The ledger entries of wallet changes (the grant's id as the detail).
pub fn ledger_entries(
    d: Dialect,
    tenant_id: &str,
    changes: &[Change],
    reason: &str,
) -> Vec<Statement> {
    changes
        .iter()
        .map(|c| {
            let detail = match (&c.grant_id, c.kind) {
                (_, ChangeKind::Adjustment) => reason.to_owned(),
                (Some(id), _) => format!("grant {id}"),
                (None, _) => String::new(),
            };
            tenants::ledger_entry(
                d,
                tenant_id,
                c.at,
                c.delta,
                c.balance,
                c.kind.as_str(),
                &detail,
            )
        })
        .collect()
}

/// What an administrator asks of a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletOp {
    Grant {
        grant: Grant,
        label: Label,
    },
    Void {
        id: String,
    },
    /// Takes `units` off (a refund or correction), spent in burn-down order.
    Adjust {
        units: i64,
        reason: String,
    },
}

/// The result of a planned wallet change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub statements: Vec<Statement>,
    pub balance: i64,
    /// The grant added or voided, as it is after the change.
    pub grant: Option<GrantView>,
}

/// Plans `op` on a tenant's wallet as of `now`: time applied first (expiries and
/// activations since the last write, at their instants), then the change, its ledger
/// entries, the alert `rules` it crosses, the grants stored back and the balance — all
/// guarded on what was read.
pub fn plan(
    d: Dialect,
    tenant_id: &str,
    head: &Head,
    loaded: Loaded,
    rules: &[AlertRule],
    op: WalletOp,
    now: i64,
) -> StoreResult<Planned> {
    let Loaded {
        mut wallet,
        mut labels,
    } = loaded;
    if wallet.balance() != head.balance.units() {
        return Err(StoreError::Core(CoreError::new(
            crm_core::ErrorCode::ChainBroken,
            "the tenant's balance is not what its active grants hold",
        )));
    }
    let mut changes = wallet.tick(now)?;
    let (label, reason, grant) = match op {
        WalletOp::Grant { grant, label } => {
            if wallet
                .grants()
                .iter()
                .filter(|g| g.status.is_open())
                .count()
                >= MAX_OPEN_GRANTS
            {
                return Err(StoreError::Core(CoreError::invalid(
                    "grants",
                    format!(
                        "a tenant holds at most {MAX_OPEN_GRANTS} open grants; void or spend some first"
                    ),
                )));
            }
            let id = grant.id.clone();
            changes.extend(wallet.add(grant, now)?);
            labels.insert(id.clone(), label.clone());
            (Some(label), String::new(), Some(id))
        }
        WalletOp::Void { id } => {
            let change = wallet.void(&id, now).ok_or_else(|| {
                StoreError::NotFound(format!("no open grant `{}`", crm_core::time::clip(&id)))
            })?;
            changes.push(change);
            (None, String::new(), Some(id))
        }
        WalletOp::Adjust { units, reason } => {
            changes.push(wallet.adjust(units, now)?);
            (None, reason, None)
        }
    };
    let grant = match grant.and_then(|id| wallet.grants().iter().find(|g| g.id == id)) {
        Some(g) => Some(GrantView::of(
            g,
            labels
                .get(&g.id)
                .ok_or_else(|| StoreError::decode("a grant without its reason"))?,
        )?),
        None => None,
    };
    let mut statements = ledger_entries(d, tenant_id, &changes, &reason);
    let crossed = crm_core::alerts::crossings(
        rules,
        head.balance.units(),
        wallet.balance(),
        wallet.changed(),
    );
    statements.extend(crate::alerts::record(d, tenant_id, now, &crossed));
    statements.extend(store_back(d, tenant_id, &wallet, label.as_ref())?);
    statements.push(tenants::set_balance(
        d,
        tenant_id,
        head.balance.units(),
        wallet.balance(),
    ));
    Ok(Planned {
        statements,
        balance: wallet.balance(),
        grant,
    })
}

/// A grant as `GET /v1/credits/grants` and the grant endpoints answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub id: String,
    pub amount: Credits,
    pub remaining: Credits,
    pub effective_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub priority: u8,
    pub status: GrantStatus,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
}

impl GrantView {
    pub fn of(g: &Grant, label: &Label) -> StoreResult<GrantView> {
        let at = |ms: i64| Timestamp::from_millis(ms).map_err(StoreError::Core);
        Ok(GrantView {
            id: g.id.clone(),
            amount: Credits::from_units(g.amount)?,
            remaining: Credits::from_units(g.remaining)?,
            effective_at: at(g.effective_at)?,
            expires_at: g.expires_at.map(at).transpose()?,
            priority: g.priority,
            status: g.status,
            reason: label.reason.clone(),
            external_id: label.external_id.clone(),
            created_at: at(g.created_at)?,
            closed_at: g.closed_at.map(at).transpose()?,
        })
    }
}

/// A page of a tenant's grants, newest first: those created before the cursor's
/// (created_at, id), optionally of one status. One more than `limit` is read.
pub fn page(
    d: Dialect,
    tenant_id: &str,
    status: Option<GrantStatus>,
    before: Option<(i64, &str)>,
    limit: usize,
) -> Statement {
    let mut sql = format!(
        "SELECT {}, reason, external_id FROM credit_grants WHERE tenant_id = ?1",
        columns(d)
    );
    let mut params: Vec<Value> = vec![tenant_id.into()];
    if let Some(s) = status {
        params.push(s.as_str().into());
        sql.push_str(&format!(" AND status = ?{}", params.len()));
    }
    if let Some((created, id)) = before {
        params.push(created.into());
        params.push(id.into());
        sql.push_str(&format!(
            " AND (created_at < ?{a} OR (created_at = ?{a} AND id < ?{b}))",
            a = params.len() - 1,
            b = params.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {}",
        limit + 1
    ));
    d.stmt(&sql, params)
}

/// A row of [`page`].
pub fn decode_view(row: &Row) -> StoreResult<GrantView> {
    GrantView::of(&decode_grant(row)?, &decode_label(row)?)
}
