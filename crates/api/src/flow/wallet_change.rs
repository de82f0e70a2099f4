//! `POST /v1/credits/grants`, `/v1/credits/adjustments` and
//! `/v1/credits/grants/{id}/void`: a wallet change planned on the head, the balance and
//! the open grants read (`crm_store::grants::plan`), every statement guarded on what
//! was read — so neither it nor a concurrent charge overwrites the other — and planned
//! again when a guard refuses. With an `Idempotency-Key`, a retry answers the first
//! answer and changes nothing.

use crm_store::grants::{self, WalletOp};
use crm_store::idempotency::{self, Recorded};
use crm_store::keys::KeyScope;
use crm_store::{Row, StoreError, tenants};
use serde_json::value::RawValue;

use super::tenant_update::UPDATE_ATTEMPTS;
use super::{Collected, Flow, FlowError, Idempotency, ReadContext, Step, Written, spent};
use crate::error::ApiError;
use crate::wallet::WalletAnswer;

/// The flow of a wallet change; answers the change's JSON (`WalletAnswer`), or the
/// first answer again for a replayed key.
#[derive(Debug)]
pub struct WalletChange<'a> {
    cx: ReadContext<'a>,
    op: WalletOp,
    idempotency: Option<Idempotency>,
    attempts: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Replay(Option<Row>),
    Head(Option<Row>),
    Grants { head: Row, rows: Collected },
    Writing(Box<RawValue>),
    Spent,
}

impl<'a> WalletChange<'a> {
    pub fn new(
        cx: ReadContext<'a>,
        op: WalletOp,
        idempotency: Option<Idempotency>,
    ) -> WalletChange<'a> {
        WalletChange {
            cx,
            op,
            idempotency,
            attempts: 0,
            state: State::Start,
        }
    }

    fn begin(&mut self) -> Result<Step<Box<RawValue>>, FlowError> {
        if self.attempts == UPDATE_ATTEMPTS {
            return Err(ApiError::conflict("the balance kept changing; retry").into());
        }
        self.attempts += 1;
        let (d, tenant) = (self.cx.dialect, self.cx.tenant());
        Ok(Step::Read(match &self.idempotency {
            Some(i) => {
                self.state = State::Replay(None);
                idempotency::get(d, tenant, &i.key)
            }
            None => {
                self.state = State::Head(None);
                tenants::head(d, tenant)
            }
        }))
    }

    fn plan(&mut self, head: &Row, rows: &[Row]) -> Result<Step<Box<RawValue>>, FlowError> {
        let (d, tenant) = (self.cx.dialect, self.cx.tenant());
        let now = self.cx.now.millis();
        let planned = grants::plan(
            d,
            tenant,
            &tenants::decode_head(head)?,
            grants::load(rows)?,
            &tenants::decode_alert_rules(head)?,
            self.op.clone(),
            now,
        )?;
        let mut statements = planned.statements.clone();
        let answer = serde_json::value::to_raw_value(&WalletAnswer::new(planned)?)
            .map_err(|e| FlowError::Internal(e.to_string()))?;
        if let Some(i) = &self.idempotency {
            let recorded = Recorded {
                request_hash: i.request_hash.clone(),
                status: 200,
                response: answer.get().to_owned(),
            };
            // In the change's own transaction: a concurrent first use of the same key
            // loses on the primary key, and its change is never written.
            statements.push(idempotency::insert(d, tenant, &i.key, &recorded, now));
        }
        self.state = State::Writing(answer);
        Ok(Step::Write(statements))
    }
}

impl Flow for WalletChange<'_> {
    type Answer = Box<RawValue>;

    fn poll(&mut self) -> Result<Step<Box<RawValue>>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                self.begin()
            }
            State::Replay(Some(row)) => {
                let first = idempotency::decode(&row)?;
                let i = self.idempotency.as_ref().ok_or_else(spent)?;
                crate::request::same_request(&first.request_hash, &i.request_hash)?;
                let answer = RawValue::from_string(first.response)
                    .map_err(|e| FlowError::Internal(e.to_string()))?;
                Ok(Step::Done(answer))
            }
            State::Replay(None) => {
                self.state = State::Head(None);
                Ok(Step::Read(tenants::head(self.cx.dialect, self.cx.tenant())))
            }
            State::Head(row) => {
                let head = row.ok_or_else(|| {
                    StoreError::NotFound("the key's tenant does not exist".to_owned())
                })?;
                self.state = State::Grants {
                    head,
                    rows: Collected::default(),
                };
                Ok(Step::Read(grants::open(self.cx.dialect, self.cx.tenant())))
            }
            State::Grants { head, mut rows } => self.plan(&head, &rows.take()),
            State::Writing(answer) => Ok(Step::Done(answer)),
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Replay(first @ None) | State::Head(first @ None) => {
                *first = Some(row.clone());
                Ok(())
            }
            State::Grants { rows, .. } => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, &self.state) {
            (Written::Committed(_), State::Writing(_)) => Ok(()),
            // A guard or the key refused: what was read moved; read and plan again.
            (Written::Refused, State::Writing(_)) => {
                self.state = State::Start;
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, now, refusal, run_writing, snapshot};
    use crm_store::{Dialect, Value};

    /// A `tenants::head` row: head seq and hash, balance, policy.
    fn head(balance: i64) -> Row {
        Row(vec![
            Value::Int(Some(0)),
            Value::Text(Some("0".repeat(64))),
            Value::Int(Some(balance)),
            Value::Text(Some(r#"{"timezone":"UTC"}"#.to_owned())),
        ])
    }

    fn adjustment() -> WalletOp {
        serde_json::from_value::<crate::wallet::AdjustmentRequest>(
            serde_json::json!({ "amount": "5", "reason": "goodwill" }),
        )
        .expect("a request")
        .op()
        .expect("an op")
    }

    fn grant() -> WalletOp {
        serde_json::from_value::<crate::wallet::GrantRequest>(serde_json::json!({ "amount": "5" }))
            .expect("a request")
            .op("g1".to_owned(), now().millis())
            .expect("an op")
    }

    #[test]
    fn a_replayed_key_answers_the_first_answer_and_writes_nothing() {
        let snap = snapshot();
        let principal = admin();
        let cx = context(Dialect::D1, &snap, &principal);
        let body = serde_json::json!({ "amount": "5" });
        let i = Idempotency::of("adjustCredits", "k1", &body);
        let first = Row(vec![
            Value::Text(Some(i.request_hash.clone())),
            Value::Int(Some(200)),
            Value::Text(Some(r#"{"balance":"5.0000"}"#.to_owned())),
        ]);
        let flow = WalletChange::new(cx, adjustment(), Some(i.clone()));
        let (answer, asked) = run_writing(
            flow,
            |_| vec![first.clone()],
            |_| panic!("a replay writes nothing"),
        );
        assert_eq!(answer.expect("replayed").get(), r#"{"balance":"5.0000"}"#);
        assert_eq!(asked.len(), 1);
        // The same key with another body is refused.
        let other = Idempotency::of("adjustCredits", "k1", &serde_json::json!({ "amount": "6" }));
        let flow = WalletChange::new(cx, adjustment(), Some(other));
        let (answer, _) = run_writing(
            flow,
            |_| vec![first.clone()],
            |_| panic!("a refusal writes nothing"),
        );
        assert_eq!(refusal(answer).status(), 409);
    }

    #[test]
    fn a_refused_guard_plans_again_and_the_key_is_kept_with_the_change() {
        let snap = snapshot();
        let principal = admin();
        let cx = context(Dialect::Sqlite, &snap, &principal);
        let i = Idempotency::of("adjustCredits", "k2", &serde_json::json!({}));
        let mut writes = 0;
        let (answer, _) = run_writing(
            WalletChange::new(cx, grant(), Some(i)),
            |st| {
                if st.sql.contains("FROM tenants") {
                    vec![head(0)]
                } else {
                    Vec::new()
                }
            },
            |statements| {
                writes += 1;
                let last = statements.last().expect("statements");
                assert!(
                    last.sql.starts_with("INSERT INTO idempotency"),
                    "{}",
                    last.sql
                );
                if writes == 1 {
                    Written::Refused
                } else {
                    Written::Committed(vec![1; statements.len()])
                }
            },
        );
        let answer: serde_json::Value =
            serde_json::from_str(answer.expect("changed").get()).expect("JSON");
        assert_eq!(writes, 2);
        assert_eq!(answer["balance"], "5.0000");
    }

    #[test]
    fn a_read_key_may_not_change_the_wallet() {
        let snap = snapshot();
        let principal = crate::flow::testing::key();
        let cx = context(Dialect::Postgres, &snap, &principal);
        let (answer, asked) = run_writing(
            WalletChange::new(cx, adjustment(), None),
            |_| Vec::new(),
            |_| panic!("nothing is written"),
        );
        assert_eq!(refusal(answer).status(), 403);
        assert!(asked.is_empty());
    }
}
