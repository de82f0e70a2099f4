//! `POST /v1/viewer-tokens`: a short-lived, read-only token for a dashboard, for the
//! whole tenant or one user or department subtree, signed with the tenant's secret
//! (created on first use; two writers racing keep the first). With an
//! `Idempotency-Key` the first request's id, expiry and scope are kept — never the
//! token — and every retry signs the same token from them.

use crm_store::idempotency::{self, Recorded};
use crm_store::keys::KeyScope;
use crm_store::{Row, StoreError, tenants};

use super::{Flow, FlowError, Idempotency, ReadContext, Step, Written, spent};
use crate::requests::ViewerTokenRequest;
use crate::viewer_tokens::{IssuedViewerToken, Remembered};

/// The flow of `createViewerToken`.
#[derive(Debug)]
pub struct IssueViewerToken<'a> {
    cx: ReadContext<'a>,
    request: Option<ViewerTokenRequest>,
    idempotency: Option<Idempotency>,
    /// The runtime's fresh token id, and a fresh secret (hex) should none be set.
    fresh_id: String,
    fresh_secret: String,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    /// The fresh token offered under the idempotency key; the kept one is read next.
    Remembering,
    Remembered,
    Kept(Option<Row>),
    /// Reading the tenant's secret; `initialised` once this flow set one.
    Secret {
        token: Remembered,
        row: Option<Row>,
        initialised: bool,
    },
    Initialising(Remembered),
    SecretSet(Remembered),
    Spent,
}

impl<'a> IssueViewerToken<'a> {
    pub fn new(
        cx: ReadContext<'a>,
        request: ViewerTokenRequest,
        idempotency: Option<Idempotency>,
        fresh_id: String,
        fresh_secret: String,
    ) -> IssueViewerToken<'a> {
        IssueViewerToken {
            cx,
            request: Some(request),
            idempotency,
            fresh_id,
            fresh_secret,
            state: State::Start,
        }
    }

    fn read_secret(&mut self, token: Remembered, initialised: bool) -> Step<IssuedViewerToken> {
        self.state = State::Secret {
            token,
            row: None,
            initialised,
        };
        Step::Read(tenants::secret(self.cx.dialect, self.cx.tenant()))
    }
}

impl Flow for IssueViewerToken<'_> {
    type Answer = IssuedViewerToken;

    fn poll(&mut self) -> Result<Step<IssuedViewerToken>, FlowError> {
        let (d, tenant, now) = (self.cx.dialect, self.cx.tenant(), self.cx.now.millis());
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let request = self.request.take().ok_or_else(spent)?;
                let (scope, ttl_ms) = request.plan(&self.cx.snapshot.directory)?;
                let fresh = Remembered {
                    id: std::mem::take(&mut self.fresh_id),
                    expires_at: now.saturating_add(ttl_ms),
                    scope,
                };
                let Some(i) = &self.idempotency else {
                    return Ok(self.read_secret(fresh, false));
                };
                let recorded = Recorded {
                    request_hash: i.request_hash.clone(),
                    status: 200,
                    response: fresh.to_json(),
                };
                self.state = State::Remembering;
                Ok(Step::Write(vec![idempotency::remember(
                    d, tenant, &i.key, &recorded, now,
                )]))
            }
            State::Remembered => {
                let i = self.idempotency.as_ref().ok_or_else(spent)?;
                self.state = State::Kept(None);
                Ok(Step::Read(idempotency::get(d, tenant, &i.key)))
            }
            State::SecretSet(token) => Ok(self.read_secret(token, true)),
            State::Kept(row) => {
                let i = self.idempotency.as_ref().ok_or_else(spent)?;
                let first =
                    idempotency::decode(&row.ok_or_else(|| {
                        FlowError::Internal("the kept answer is gone".to_owned())
                    })?)?;
                crate::request::same_request(&first.request_hash, &i.request_hash)?;
                let token = Remembered::from_json(&first.response)?;
                Ok(self.read_secret(token, false))
            }
            State::Secret {
                token,
                row,
                initialised,
            } => {
                let row = row.ok_or_else(|| {
                    StoreError::NotFound("the key's tenant does not exist".to_owned())
                })?;
                let stored = row.string(0)?;
                if stored.is_empty() {
                    if initialised {
                        return Err(FlowError::Internal(
                            "the tenant's secret stayed empty after it was set".to_owned(),
                        ));
                    }
                    let fresh = std::mem::take(&mut self.fresh_secret);
                    self.state = State::Initialising(token);
                    return Ok(Step::Write(vec![tenants::init_secret(d, tenant, &fresh)]));
                }
                let secret = hex::decode(&stored).map_err(|_| {
                    FlowError::Internal("the stored tenant secret is not hex".to_owned())
                })?;
                Ok(Step::Done(token.issue(tenant, &secret)?))
            }
            State::Remembering | State::Initialising(_) | State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Kept(first @ None)
            | State::Secret {
                row: first @ None, ..
            } => {
                *first = Some(row.clone());
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        if outcome == Written::Refused {
            return Err(FlowError::Internal(
                "a constraint refused an insert-if-absent".to_owned(),
            ));
        }
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Remembering => {
                self.state = State::Remembered;
                Ok(())
            }
            State::Initialising(token) => {
                self.state = State::SecretSet(token);
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, refusal, run_writing, snapshot};
    use crm_store::{Dialect, Statement, Value};

    fn request(body: serde_json::Value) -> ViewerTokenRequest {
        serde_json::from_value(body).expect("a request")
    }

    fn secret_row(secret: &str) -> Row {
        Row(vec![
            Value::Text(Some(secret.to_owned())),
            Value::Int(Some(3)),
        ])
    }

    #[test]
    fn a_tenant_without_a_secret_gets_one_and_the_token_is_signed_with_it() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let fresh = "ab".repeat(32);
        let stored = std::cell::RefCell::new(String::new());
        let flow = IssueViewerToken::new(
            cx,
            request(serde_json::json!({ "userId": "user-123" })),
            None,
            "vt1".to_owned(),
            fresh.clone(),
        );
        let (token, asked) = run_writing(
            flow,
            |_| vec![secret_row(&stored.borrow())],
            |statements: &[Statement]| {
                assert!(
                    statements[0].sql.contains("secret = ''"),
                    "only an unset secret"
                );
                *stored.borrow_mut() = fresh.clone();
                Written::Committed(vec![1])
            },
        );
        let token = token.expect("a token");
        assert_eq!(asked.len(), 3, "read, set, read again");
        let secret = hex::decode(&fresh).expect("hex");
        let now = crate::flow::testing::now().millis();
        let claims = crm_core::viewer_token::verify(&token.token, &secret, now)
            .expect("signed with the new secret");
        assert_eq!(
            claims.scope,
            crm_core::viewer_token::TokenScope::User("user-123".to_owned())
        );
    }

    #[test]
    fn a_replayed_key_signs_the_kept_token_and_another_body_is_409() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let body = serde_json::json!({});
        let first = Remembered {
            id: "vtfirst".to_owned(),
            expires_at: crate::flow::testing::now().millis() + 60_000,
            scope: crm_core::viewer_token::TokenScope::Tenant,
        };
        let kept = |hash: &str| {
            Row(vec![
                Value::Text(Some(hash.to_owned())),
                Value::Int(Some(200)),
                Value::Text(Some(first.to_json())),
            ])
        };
        let i = Idempotency::of("createViewerToken", "k", &body);
        let hash = i.request_hash.clone();
        let rows = |st: &Statement| {
            if st.sql.contains("idempotency") {
                vec![kept(&hash)]
            } else {
                vec![secret_row(&"cd".repeat(32))]
            }
        };
        let flow = IssueViewerToken::new(
            cx,
            request(body.clone()),
            Some(i),
            "vt2".to_owned(),
            String::new(),
        );
        let (token, _) = run_writing(flow, rows, |_| Written::Committed(vec![0]));
        assert_eq!(token.expect("the kept token").id, "vtfirst");
        let other = Idempotency::of(
            "createViewerToken",
            "k",
            &serde_json::json!({ "userId": "user-123" }),
        );
        let flow = IssueViewerToken::new(
            cx,
            request(serde_json::json!({ "userId": "user-123" })),
            Some(other),
            "vt3".to_owned(),
            String::new(),
        );
        let (token, _) = run_writing(flow, rows, |_| Written::Committed(vec![0]));
        assert_eq!(refusal(token).status(), 409);
    }
}
