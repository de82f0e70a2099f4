//! Credit alerts as stored (`credit_alerts`): each crossing of a tenant's rules
//! (`crm_core::alerts`), numbered per tenant and written in the transaction whose
//! balance change crossed it; read newest first by `GET /v1/credits/alerts`.

use crm_core::alerts::{AlertRule, AlertState, Crossing};
use crm_core::{Credits, Timestamp};
use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};

/// The statements recording `crossings` at `at`.
pub fn record(d: Dialect, tenant_id: &str, at: i64, crossings: &[Crossing]) -> Vec<Statement> {
    crossings
        .iter()
        .map(|c| {
            d.stmt(
                "INSERT INTO credit_alerts (tenant_id, entry, at, rule_id, state, grant_id, balance_units)
                 VALUES (?1, (SELECT COALESCE(MAX(entry), 0) + 1 FROM credit_alerts WHERE tenant_id = ?1),
                         ?2, ?3, ?4, ?5, ?6)",
                vec![
                    tenant_id.into(),
                    at.into(),
                    c.rule_id.as_str().into(),
                    c.state.as_str().into(),
                    Value::Text(c.grant_id.clone()),
                    c.balance.into(),
                ],
            )
        })
        .collect()
}

/// The expiry-window alerts due at `now` (`crm_core::alerts::expiring`), from the
/// tenant's open grants as [`crate::grants::open`] reads them: one statement per open
/// window, each inserting only while that rule has not fired for that grant. The
/// scheduled pass that runs them (every runtime's) may repeat, overlap a charge or run
/// on two hosts at once; the alert is recorded once.
pub fn expiring(
    d: Dialect,
    tenant_id: &str,
    rules: &[AlertRule],
    grant_rows: &[Row],
    now: i64,
) -> StoreResult<Vec<Statement>> {
    let mut wallet = crate::grants::load(grant_rows)?.wallet;
    // The wallet as of `now` (a pending grant may have begun, another expired); what
    // the tick changed is stored by the next transaction that touches the balance.
    wallet.tick(now)?;
    let due = crm_core::alerts::expiring(rules, wallet.grants(), wallet.balance(), now);
    Ok(due
        .iter()
        .map(|c| {
            d.stmt(
                "INSERT INTO credit_alerts (tenant_id, entry, at, rule_id, state, grant_id, balance_units)
                 SELECT ?1, (SELECT COALESCE(MAX(entry), 0) + 1 FROM credit_alerts WHERE tenant_id = ?1),
                        CAST(?2 AS BIGINT), ?3, ?4, ?5, CAST(?6 AS BIGINT)
                 WHERE NOT EXISTS (SELECT 1 FROM credit_alerts
                                   WHERE tenant_id = ?1 AND rule_id = ?3 AND grant_id = ?5)",
                vec![
                    tenant_id.into(),
                    now.into(),
                    c.rule_id.as_str().into(),
                    c.state.as_str().into(),
                    Value::Text(c.grant_id.clone()),
                    c.balance.into(),
                ],
            )
        })
        .collect())
}

/// The alert rules in a tenant's stored policy (its other fields ignored): what the
/// edge's writers, which hold no compiled snapshot, evaluate.
pub fn rules_of_policy(policy: &str) -> StoreResult<Vec<AlertRule>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Rules {
        #[serde(default)]
        credit_alerts: Vec<AlertRule>,
    }
    serde_json::from_str::<Rules>(policy)
        .map(|r| r.credit_alerts)
        .map_err(|e| StoreError::decode(format!("stored policy: {e}")))
}

/// One recorded crossing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    pub entry: u64,
    pub at: Timestamp,
    pub rule_id: String,
    pub state: AlertState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The balance after the transaction that crossed.
    pub balance: Credits,
}

/// A page of events, newest first, numbered below `before` if given; one more than
/// `limit` is read.
pub fn page(d: Dialect, tenant_id: &str, before: Option<u64>, limit: usize) -> Statement {
    let mut sql = format!(
        "SELECT entry, at, rule_id, state, grant_id, {} FROM credit_alerts WHERE tenant_id = ?1",
        d.money("balance_units")
    );
    let mut params: Vec<Value> = vec![tenant_id.into()];
    if let Some(b) = before {
        params.push(crate::sql::seq(b));
        sql.push_str(" AND entry < ?2");
    }
    sql.push_str(&format!(" ORDER BY entry DESC LIMIT {}", limit + 1));
    d.stmt(&sql, params)
}

pub fn decode(row: &Row) -> StoreResult<AlertEvent> {
    let state = row.text(3)?;
    Ok(AlertEvent {
        entry: row.uint(0)?,
        at: Timestamp::from_millis(row.int(1)?)?,
        rule_id: row.string(2)?,
        state: AlertState::parse(state)
            .ok_or_else(|| StoreError::decode(format!("stored alert state `{state}`")))?,
        grant_id: row.opt_string(4)?,
        balance: Credits::from_units(row.int(5)?)?,
    })
}

/// Tenants with alert events `sink` has not delivered yet: the alerts' own outbox,
/// numbered by `entry` as the activity log is by `seq`, with its cursor in
/// `sink_cursors` under the sink's name (decoded by `crate::outbox::decode_pending`).
pub fn pending(d: Dialect, sink: &str) -> Statement {
    d.stmt(
        "SELECT a.tenant_id, MAX(a.entry), COALESCE(MAX(c.delivered_seq), 0) FROM credit_alerts a
         LEFT JOIN sink_cursors c ON c.tenant_id = a.tenant_id AND c.sink = ?1
         GROUP BY a.tenant_id
         HAVING MAX(a.entry) > COALESCE(MAX(c.delivered_seq), 0)
         ORDER BY a.tenant_id",
        vec![sink.into()],
    )
}

/// The tenant's alert events after `after_entry`, oldest first (decoded by
/// [`decode_outgoing`]).
pub fn after(d: Dialect, tenant_id: &str, after_entry: u64, limit: usize) -> Statement {
    d.stmt(
        &format!(
            "SELECT entry, at, rule_id, state, grant_id, {} FROM credit_alerts
             WHERE tenant_id = ?1 AND entry > ?2 ORDER BY entry LIMIT {limit}",
            d.money("balance_units")
        ),
        vec![tenant_id.into(), crate::sql::seq(after_entry)],
    )
}

/// An alert event as fan-out delivers it: the event and its tenant.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertMessage<'a> {
    tenant_id: &'a str,
    #[serde(flatten)]
    event: &'a AlertEvent,
}

/// One row of [`after`] as a fan-out message (id `alert-{entry}`, for deduplication).
pub fn decode_outgoing(tenant_id: &str, row: &Row) -> StoreResult<crate::outbox::Outgoing> {
    let event = decode(row)?;
    let body = serde_json::to_string(&AlertMessage {
        tenant_id,
        event: &event,
    })
    .map_err(|e| StoreError::decode(format!("an alert event: {e}")))?;
    Ok(crate::outbox::Outgoing {
        seq: event.entry,
        id: format!("alert-{}", event.entry),
        received_at: event.at.millis(),
        body,
    })
}
