//! `GET /v1/keys`, `DELETE /v1/keys/{id}`, `DELETE /v1/viewer-tokens/{id}` and
//! `POST /v1/viewer-tokens/rotate`: an admin's reads and one-statement changes of the
//! tenant's credentials. (Creating a key stays with the runtimes: the edge registers
//! its hash in its control database first. Issuing a token is `viewer_token`.)

use crm_store::keys::{self, KeyScope};
use crm_store::{Row, Statement, StoreError};

use super::{Collected, Flow, FlowError, ReadContext, Step, Written, spent};
use crate::error::ApiError;
use crate::requests::KeyList;

/// `GET /v1/keys`.
#[derive(Debug)]
pub struct ListKeys<'a> {
    cx: ReadContext<'a>,
    rows: Option<Collected>,
}

impl<'a> ListKeys<'a> {
    pub fn new(cx: ReadContext<'a>) -> ListKeys<'a> {
        ListKeys { cx, rows: None }
    }
}

impl Flow for ListKeys<'_> {
    type Answer = KeyList;

    fn poll(&mut self) -> Result<Step<KeyList>, FlowError> {
        match self.rows.take() {
            None => {
                self.cx.principal.require(KeyScope::Admin)?;
                self.rows = Some(Collected::default());
                Ok(Step::Read(keys::list(self.cx.dialect, self.cx.tenant())))
            }
            Some(mut rows) => Ok(Step::Done(KeyList {
                keys: rows
                    .take()
                    .iter()
                    .map(keys::decode_info)
                    .collect::<Result<_, _>>()?,
            })),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        self.rows.as_mut().ok_or_else(spent)?.push(row);
        Ok(())
    }
}

/// An admin's change of one statement.
pub trait AdminChange {
    fn statement(&self, cx: ReadContext<'_>) -> Result<Statement, FlowError>;
    /// Whether the rows changed say the change happened.
    fn changed(&self, rows: u64) -> Result<(), FlowError>;
}

/// `DELETE /v1/keys/{id}`: refused from the next request on (within the key cache's
/// lifetime on other processes).
#[derive(Debug)]
pub struct RevokeKey(pub String);

impl AdminChange for RevokeKey {
    fn statement(&self, cx: ReadContext<'_>) -> Result<Statement, FlowError> {
        Ok(keys::revoke(
            cx.dialect,
            cx.tenant(),
            &self.0,
            cx.now.millis(),
        ))
    }

    fn changed(&self, rows: u64) -> Result<(), FlowError> {
        if rows == 0 {
            return Err(
                ApiError::not_found(format!("no key `{}`", crm_core::time::clip(&self.0))).into(),
            );
        }
        Ok(())
    }
}

/// `DELETE /v1/viewer-tokens/{id}`: that token is refused from the next request on.
#[derive(Debug)]
pub struct RevokeViewerToken(pub String);

impl AdminChange for RevokeViewerToken {
    fn statement(&self, cx: ReadContext<'_>) -> Result<Statement, FlowError> {
        let now = cx.now.millis();
        let (id, until) = crate::viewer_tokens::revocation(&self.0, now)?;
        Ok(crm_store::viewer_tokens::revoke(
            cx.dialect,
            cx.tenant(),
            &id,
            until,
            now,
        ))
    }

    fn changed(&self, _: u64) -> Result<(), FlowError> {
        Ok(())
    }
}

/// `POST /v1/viewer-tokens/rotate`: a fresh signing secret (hex of the runtime's
/// random bytes); every earlier token is refused from the next request on.
#[derive(Debug)]
pub struct RotateViewerSecret(pub String);

impl AdminChange for RotateViewerSecret {
    fn statement(&self, cx: ReadContext<'_>) -> Result<Statement, FlowError> {
        Ok(crm_store::tenants::rotate_secret(
            cx.dialect,
            cx.tenant(),
            &self.0,
        ))
    }

    fn changed(&self, rows: u64) -> Result<(), FlowError> {
        if rows == 0 {
            return Err(StoreError::NotFound("the key's tenant does not exist".to_owned()).into());
        }
        Ok(())
    }
}

/// The flow of an [`AdminChange`]; answers nothing (204).
#[derive(Debug)]
pub struct AdminWrite<'a, C> {
    cx: ReadContext<'a>,
    change: C,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Writing,
    Written(u64),
    Spent,
}

impl<'a, C: AdminChange> AdminWrite<'a, C> {
    pub fn new(cx: ReadContext<'a>, change: C) -> AdminWrite<'a, C> {
        AdminWrite {
            cx,
            change,
            state: State::Start,
        }
    }
}

impl<C: AdminChange> Flow for AdminWrite<'_, C> {
    type Answer = ();

    fn poll(&mut self) -> Result<Step<()>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let statement = self.change.statement(self.cx)?;
                self.state = State::Writing;
                Ok(Step::Write(vec![statement]))
            }
            State::Written(rows) => {
                self.change.changed(rows)?;
                Ok(Step::Done(()))
            }
            State::Writing | State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, _: &Row) -> Result<(), FlowError> {
        Err(spent())
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, &self.state) {
            (Written::Committed(rows), State::Writing) => {
                self.state = State::Written(rows.first().copied().unwrap_or(0));
                Ok(())
            }
            // No guard or key is on these statements: a refusal is a broken store.
            (Written::Refused, State::Writing) => Err(FlowError::Internal(
                "a constraint refused a credential change".to_owned(),
            )),
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, key, refusal, run_writing, snapshot};
    use crm_store::Dialect;

    #[test]
    fn revoking_an_unknown_key_is_404_and_a_read_key_may_not_revoke() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let flow = AdminWrite::new(cx, RevokeKey("k-missing".to_owned()));
        let (answer, asked) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![0]));
        assert_eq!(refusal(answer).message, "no key `k-missing`");
        assert_eq!(asked.len(), 1);
        let flow = AdminWrite::new(cx, RevokeKey("k1".to_owned()));
        let (answer, _) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![1]));
        assert!(answer.is_ok());
        let read = key();
        let cx = ReadContext {
            principal: &read,
            ..cx
        };
        let flow = AdminWrite::new(cx, RotateViewerSecret("00".to_owned()));
        let (answer, asked) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![1]));
        assert_eq!(refusal(answer).status(), 403);
        assert!(asked.is_empty());
    }

    #[test]
    fn a_malformed_token_id_is_refused_before_anything_is_written() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let flow = AdminWrite::new(cx, RevokeViewerToken(String::new()));
        let (answer, asked) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![1]));
        assert_eq!(refusal(answer).status(), 400);
        assert!(asked.is_empty());
    }
}
