//! `POST /v1/keys`: 201 with the new key's text, shown this once. With an
//! `Idempotency-Key`, a retry answers 200 with the first key's id and without its
//! text; a concurrent first use of the same key loses on the primary key and is
//! answered as the retry it is. (The edge registers the key's hash in its control
//! database before this flow runs: a registration whose key row is never written
//! resolves to no key.)

use crm_store::Row;
use crm_store::idempotency::{self, Recorded};
use crm_store::keys::{self, KeyScope, NewKey};

use super::{Flow, FlowError, Idempotency, ReadContext, Step, Written, spent};
use crate::error::ApiError;
use crate::requests::{KeyPlan, NewKeyAnswer, NewKeyRequest};

/// Times the flow looks for a kept answer after its insert lost to a concurrent one.
const ATTEMPTS: usize = 2;

/// What `createKey` answers: a new key (201) or the first one again (200).
#[derive(Debug)]
pub struct CreatedKey {
    pub fresh: bool,
    pub answer: NewKeyAnswer,
}

/// The flow of `createKey`.
#[derive(Debug)]
pub struct CreateKey<'a> {
    cx: ReadContext<'a>,
    request: Option<NewKeyRequest>,
    idempotency: Option<Idempotency>,
    /// The runtime's random bytes for the key.
    random: [u8; keys::KEY_RANDOM_BYTES],
    attempts: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Replay(Option<Row>, KeyPlan),
    Writing(NewKeyAnswer, KeyPlan),
    Written(NewKeyAnswer),
    Lost(KeyPlan),
    Spent,
}

impl<'a> CreateKey<'a> {
    pub fn new(
        cx: ReadContext<'a>,
        request: NewKeyRequest,
        idempotency: Option<Idempotency>,
        random: [u8; keys::KEY_RANDOM_BYTES],
    ) -> CreateKey<'a> {
        CreateKey {
            cx,
            request: Some(request),
            idempotency,
            random,
            attempts: 0,
            state: State::Start,
        }
    }

    /// Looks for a kept answer under the idempotency key, or writes the key.
    fn look(&mut self, plan: KeyPlan) -> Result<Step<CreatedKey>, FlowError> {
        if self.attempts == ATTEMPTS {
            return Err(ApiError::conflict("the Idempotency-Key is in use; retry").into());
        }
        self.attempts += 1;
        match &self.idempotency {
            Some(i) => {
                let read = idempotency::get(self.cx.dialect, self.cx.tenant(), &i.key);
                self.state = State::Replay(None, plan);
                Ok(Step::Read(read))
            }
            None => self.write(plan),
        }
    }

    fn write(&mut self, plan: KeyPlan) -> Result<Step<CreatedKey>, FlowError> {
        let (d, tenant, now) = (self.cx.dialect, self.cx.tenant(), self.cx.now.millis());
        let (id, key) = keys::from_random(&self.random);
        let hash = keys::hash_key(&key);
        let mut statements = vec![keys::insert(
            d,
            &NewKey {
                id: &id,
                tenant_id: tenant,
                key_hash: &hash,
                scopes: &plan.scopes,
                label: plan.label.as_deref(),
                created_at: now,
                expires_at: plan.expires_at,
            },
        )?];
        let answer = NewKeyAnswer::new(id, key, &plan)?;
        if let Some(i) = &self.idempotency {
            let recorded = Recorded {
                request_hash: i.request_hash.clone(),
                status: 201,
                response: answer.remembered(),
            };
            // In the key's own transaction: a concurrent first use of the same key
            // loses on the primary key, and its key row is never written.
            statements.push(idempotency::insert(d, tenant, &i.key, &recorded, now));
        }
        self.state = State::Writing(answer, plan);
        Ok(Step::Write(statements))
    }
}

impl Flow for CreateKey<'_> {
    type Answer = CreatedKey;

    fn poll(&mut self) -> Result<Step<CreatedKey>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let request = self.request.take().ok_or_else(spent)?;
                let plan = request.plan(self.cx.now.millis())?;
                self.look(plan)
            }
            State::Replay(Some(row), _) => {
                let first = idempotency::decode(&row)?;
                let i = self.idempotency.as_ref().ok_or_else(spent)?;
                crate::request::same_request(&first.request_hash, &i.request_hash)?;
                Ok(Step::Done(CreatedKey {
                    fresh: false,
                    answer: NewKeyAnswer::replayed(&first.response)?,
                }))
            }
            State::Replay(None, plan) => self.write(plan),
            State::Written(answer) => Ok(Step::Done(CreatedKey {
                fresh: true,
                answer,
            })),
            State::Lost(plan) => self.look(plan),
            State::Writing(..) | State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Replay(first @ None, _) => {
                *first = Some(row.clone());
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, std::mem::replace(&mut self.state, State::Spent)) {
            (Written::Committed(_), State::Writing(answer, _)) => {
                self.state = State::Written(answer);
                Ok(())
            }
            // Another request under the same key came first: answer as its retry.
            (Written::Refused, State::Writing(_, plan)) if self.idempotency.is_some() => {
                self.state = State::Lost(plan);
                Ok(())
            }
            (Written::Refused, State::Writing(..)) => Err(FlowError::Internal(
                "a constraint refused a new key".to_owned(),
            )),
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, refusal, run_writing, snapshot};
    use crm_store::{Dialect, Statement, Value};

    fn request() -> NewKeyRequest {
        serde_json::from_value(serde_json::json!({ "scopes": ["read"], "label": "ci" }))
            .expect("a request")
    }

    #[test]
    fn a_new_key_is_shown_once_and_a_lost_race_answers_the_first_key() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let random = [5u8; keys::KEY_RANDOM_BYTES];
        let (created, asked) = run_writing(
            CreateKey::new(cx, request(), None, random),
            |_| Vec::new(),
            |_| Written::Committed(vec![1]),
        );
        let created = created.expect("created");
        assert!(created.fresh);
        let key = created.answer.key.clone().expect("the text, once");
        assert_eq!(keys::from_random(&random).1, key);
        assert_eq!(asked.len(), 1, "one write, nothing read");

        // Under an idempotency key, a concurrent first use wins the insert: this
        // request reads its kept answer and answers it.
        let i = Idempotency::of("createKey", "k", &serde_json::json!({ "scopes": ["read"] }));
        let kept = Row(vec![
            Value::Text(Some(i.request_hash.clone())),
            Value::Int(Some(201)),
            Value::Text(Some(
                r#"{"id":"key_first","scopes":["read"],"label":"ci"}"#.to_owned(),
            )),
        ]);
        let reads = std::cell::Cell::new(0);
        let (created, _) = run_writing(
            CreateKey::new(cx, request(), Some(i), random),
            |_: &Statement| {
                reads.set(reads.get() + 1);
                if reads.get() == 1 {
                    Vec::new()
                } else {
                    vec![kept.clone()]
                }
            },
            |_| Written::Refused,
        );
        let created = created.expect("the first key");
        assert!(!created.fresh);
        assert_eq!(created.answer.id, "key_first");
        assert_eq!(created.answer.key, None);
    }

    #[test]
    fn a_read_key_may_not_create_keys() {
        let snap = snapshot();
        let read = crate::flow::testing::key();
        let cx = context(Dialect::Sqlite, &snap, &read);
        let (created, asked) = run_writing(
            CreateKey::new(cx, request(), None, [1; keys::KEY_RANDOM_BYTES]),
            |_| Vec::new(),
            |_| Written::Committed(vec![1]),
        );
        assert_eq!(refusal(created).status(), 403);
        assert!(asked.is_empty());
    }
}
