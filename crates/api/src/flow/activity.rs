//! `GET /v1/activities/{id}`: one record as stored and hashed (opened, or in its
//! erased form); 404 when it does not exist or lies outside a limited viewer token's
//! user or subtree — the same answer, so its existence is not revealed.

use crm_store::keys::KeyScope;
use serde_json::value::RawValue;

use super::{Flow, FlowError, ReadContext, Step, spent};
use crate::error::ApiError;

/// The flow of `getActivity`.
#[derive(Debug)]
pub struct ActivityFlow<'a> {
    cx: ReadContext<'a>,
    id: String,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Reading(Option<crm_store::Row>),
    Spent,
}

impl<'a> ActivityFlow<'a> {
    pub fn new(cx: ReadContext<'a>, id: String) -> ActivityFlow<'a> {
        ActivityFlow {
            cx,
            id,
            state: State::Start,
        }
    }

    fn missing(&self) -> FlowError {
        FlowError::Refused(ApiError::not_found(format!(
            "no activity `{}`",
            crm_core::time::clip(&self.id)
        )))
    }

    fn answer(&self, row: Option<crm_store::Row>) -> Result<Box<RawValue>, FlowError> {
        let row = row.ok_or_else(|| self.missing())?;
        let (body, user, path) = crm_store::activities::decode_by_id(&row)?;
        let dir = &self.cx.snapshot.directory;
        if !self.cx.principal.may_read_record(&user, &path, dir) {
            return Err(self.missing());
        }
        RawValue::from_string(body).map_err(|e| FlowError::Internal(e.to_string()))
    }
}

impl Flow for ActivityFlow<'_> {
    type Answer = Box<RawValue>;

    fn poll(&mut self) -> Result<Step<Box<RawValue>>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Read)?;
                self.state = State::Reading(None);
                Ok(Step::Read(crm_store::activities::by_id(
                    self.cx.dialect,
                    self.cx.tenant(),
                    &self.id,
                )))
            }
            State::Reading(row) => Ok(Step::Done(self.answer(row)?)),
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &crm_store::Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Reading(first @ None) => {
                *first = Some(row.clone());
                Ok(())
            }
            // The id is the key: a second row would be a broken store.
            State::Reading(Some(_)) => Err(FlowError::Internal(
                "two stored activities share an id".to_owned(),
            )),
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{context, key, now, refusal, run, snapshot};
    use crm_core::viewer_token::TokenScope;
    use crm_store::{Dialect, Row, Value};

    fn stored(user: &str, path: &str) -> Row {
        Row(vec![
            Value::Text(Some(r#"{"id":"a1","userId":"x"}"#.to_owned())),
            Value::Text(Some(user.to_owned())),
            Value::Text(Some(path.to_owned())),
            Value::Text(None),
        ])
    }

    #[test]
    fn a_record_outside_the_viewers_subtree_reads_as_missing() {
        let snap = snapshot();
        let viewer = crate::access::Principal::Viewer {
            scope: TokenScope::Department("dept-sales-emea".to_owned()),
            expires_at: i64::MAX,
        };
        let key = key();
        for (principal, path, found) in [
            (&key, "/dept-eng/", true),
            (&viewer, "/dept-eng/", false),
            (&viewer, "/dept-sales/dept-sales-emea/", true),
        ] {
            let cx = ReadContext {
                dialect: Dialect::D1,
                snapshot: &snap,
                principal,
                now: now(),
            };
            let (answer, asked) = run(ActivityFlow::new(cx, "a1".to_owned()), |_| {
                vec![stored("user-9", path)]
            });
            assert_eq!(asked.len(), 1);
            match answer {
                Ok(body) => assert!(found && body.get().contains("\"a1\"")),
                Err(e) => assert!(!found && refusal::<()>(Err(e)).status() == 404),
            }
        }
        let cx = context(Dialect::D1, &snap, &key);
        let (answer, _) = run(ActivityFlow::new(cx, "a2".to_owned()), |_| Vec::new());
        assert_eq!(refusal(answer).message, "no activity `a2`");
    }
}
