//! `GET /v1/credits/balance`, `/v1/credits/grants`, `/v1/credits/alerts` and
//! `/v1/credits/ledger`: tenant-wide reads of one statement each — the caller must see
//! the whole tenant, the query is parsed, one read, one typed answer.

use crm_core::Timestamp;
use crm_store::ledger::LedgerQuery;
use crm_store::{Dialect, Row, Statement};

use super::{Collected, Flow, FlowError, Params, ReadContext, Step, spent};
use crate::credits::LedgerPage;
use crate::error::ApiError;
use crate::wallet::{AlertsPage, Balance, GrantsPage, GrantsQuery};

/// A tenant-wide read of one statement.
pub trait CreditQuery: Sized {
    type Answer;
    /// The request's query, checked (after the caller is authorised).
    fn parse(params: &Params, now: Timestamp) -> Result<Self, ApiError>;
    fn statement(&self, d: Dialect, tenant: &str) -> Statement;
    fn answer(self, rows: &[Row], now: Timestamp) -> Result<Self::Answer, FlowError>;
}

/// The flow of a [`CreditQuery`].
#[derive(Debug)]
pub struct CreditRead<'a, Q> {
    cx: ReadContext<'a>,
    state: State<Q>,
}

#[derive(Debug)]
enum State<Q> {
    Start(Params),
    Reading(Q, Collected),
    Spent,
}

impl<'a, Q: CreditQuery> CreditRead<'a, Q> {
    pub fn new(cx: ReadContext<'a>, params: Params) -> CreditRead<'a, Q> {
        CreditRead {
            cx,
            state: State::Start(params),
        }
    }
}

impl<Q: CreditQuery> Flow for CreditRead<'_, Q> {
    type Answer = Q::Answer;

    fn poll(&mut self) -> Result<Step<Q::Answer>, FlowError> {
        let cx = self.cx;
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start(params) => {
                cx.principal.require_tenant_wide()?;
                let q = Q::parse(&params, cx.now)?;
                let read = q.statement(cx.dialect, cx.tenant());
                self.state = State::Reading(q, Collected::default());
                Ok(Step::Read(read))
            }
            State::Reading(q, mut rows) => Ok(Step::Done(q.answer(&rows.take(), cx.now)?)),
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Reading(_, rows) => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

/// `GET /v1/credits/balance`: the open grants, time applied as of now.
#[derive(Debug)]
pub struct BalanceQuery;

impl CreditQuery for BalanceQuery {
    type Answer = Balance;

    fn parse(_: &Params, _: Timestamp) -> Result<Self, ApiError> {
        Ok(BalanceQuery)
    }

    fn statement(&self, d: Dialect, tenant: &str) -> Statement {
        crm_store::grants::open(d, tenant)
    }

    fn answer(self, rows: &[Row], now: Timestamp) -> Result<Balance, FlowError> {
        Ok(crate::wallet::balance(
            crm_store::grants::load(rows)?,
            now.millis(),
        )?)
    }
}

impl CreditQuery for GrantsQuery {
    type Answer = GrantsPage;

    fn parse(params: &Params, _: Timestamp) -> Result<Self, ApiError> {
        crate::wallet::grants_query(params)
    }

    fn statement(&self, d: Dialect, tenant: &str) -> Statement {
        crm_store::grants::page(
            d,
            tenant,
            self.status,
            self.before.as_ref().map(|(at, g)| (*at, g.as_str())),
            self.limit,
        )
    }

    fn answer(self, rows: &[Row], _: Timestamp) -> Result<GrantsPage, FlowError> {
        let grants = rows
            .iter()
            .map(crm_store::grants::decode_view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GrantsPage::new(grants, &self))
    }
}

/// `GET /v1/credits/alerts`: a page of alert events before a cursor.
#[derive(Debug)]
pub struct AlertsQuery {
    before: Option<u64>,
    limit: usize,
}

impl CreditQuery for AlertsQuery {
    type Answer = AlertsPage;

    fn parse(params: &Params, _: Timestamp) -> Result<Self, ApiError> {
        let (before, limit) = crate::wallet::alerts_query(params)?;
        Ok(AlertsQuery { before, limit })
    }

    fn statement(&self, d: Dialect, tenant: &str) -> Statement {
        crm_store::alerts::page(d, tenant, self.before, self.limit)
    }

    fn answer(self, rows: &[Row], _: Timestamp) -> Result<AlertsPage, FlowError> {
        let events = rows
            .iter()
            .map(crm_store::alerts::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AlertsPage::new(events, self.limit))
    }
}

impl CreditQuery for LedgerQuery {
    type Answer = LedgerPage;

    fn parse(params: &Params, now: Timestamp) -> Result<Self, ApiError> {
        crate::credits::ledger_query(params, now)
    }

    fn statement(&self, d: Dialect, tenant: &str) -> Statement {
        crm_store::ledger::page(d, tenant, self)
    }

    fn answer(self, rows: &[Row], _: Timestamp) -> Result<LedgerPage, FlowError> {
        let entries = rows
            .iter()
            .map(crm_store::ledger::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LedgerPage::new(entries, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{context, key, refusal, run, snapshot};
    use crm_core::viewer_token::TokenScope;
    use crm_store::Value;

    #[test]
    fn a_limited_viewer_sees_no_credits_and_bad_cursors_are_refused_unread() {
        let snap = snapshot();
        let viewer = crate::access::Principal::Viewer {
            scope: TokenScope::User("user-123".to_owned()),
            expires_at: i64::MAX,
        };
        let cx = context(Dialect::D1, &snap, &viewer);
        let (answer, asked) = run(CreditRead::<BalanceQuery>::new(cx, Params::new()), |_| {
            Vec::new()
        });
        assert_eq!(refusal(answer).status(), 403);
        assert!(asked.is_empty());
        let key = key();
        let cx = ReadContext {
            principal: &key,
            ..cx
        };
        let bad: Params = [("cursor".to_owned(), "x".to_owned())].into();
        let (answer, asked) = run(CreditRead::<LedgerQuery>::new(cx, bad.clone()), |_| {
            Vec::new()
        });
        assert_eq!(refusal(answer).status(), 400);
        assert!(asked.is_empty());
        let (answer, asked) = run(CreditRead::<GrantsQuery>::new(cx, bad.clone()), |_| {
            Vec::new()
        });
        assert_eq!(refusal(answer).status(), 400);
        assert!(asked.is_empty());
        let (answer, asked) = run(CreditRead::<AlertsQuery>::new(cx, bad), |_| Vec::new());
        assert_eq!(refusal(answer).message, "`cursor` is not an alerts cursor");
        assert!(asked.is_empty());
    }

    #[test]
    fn an_empty_wallet_has_no_balance_and_a_short_page_no_cursor() {
        let snap = snapshot();
        let key = key();
        let cx = context(Dialect::Sqlite, &snap, &key);
        let (balance, asked) = run(CreditRead::<BalanceQuery>::new(cx, Params::new()), |_| {
            Vec::new()
        });
        let balance = balance.expect("a balance");
        assert_eq!(balance.balance.units(), 0);
        assert!(asked[0].params.contains(&Value::Text(Some("t".to_owned()))));
        let (page, _) = run(CreditRead::<GrantsQuery>::new(cx, Params::new()), |_| {
            Vec::new()
        });
        assert_eq!(page.expect("a page").next_cursor, None);
    }
}
