//! `GET /v1/directory`, `/v1/session`, `/v1/policy`, `/v1/credits/prices` and
//! `/v1/credits/prices/{operation}`: the tenant's documents. The directory and the
//! session read the directory as stored (the compiled snapshot does not keep the
//! document); the others answer from the snapshot the caller's request already holds.

use crm_core::pricing::PriceTable;
use crm_store::keys::KeyScope;
use crm_store::tenants::{self, TenantRow};
use crm_store::{Row, StoreError};
use serde_json::Value;

use super::{Flow, FlowError, ReadContext, Step, spent};
use crate::access::Session;
use crate::credits::Price;
use crate::versioned::{DirectoryDocument, PolicyDocument};

/// What is answered from the stored tenant row.
pub trait RowDocument: Sized {
    /// Checks the caller before anything is read.
    fn authorise(cx: ReadContext<'_>) -> Result<(), FlowError>;
    fn answer(cx: ReadContext<'_>, row: TenantRow) -> Result<Self, FlowError>;
}

fn stored_directory(row: &TenantRow) -> Result<Value, FlowError> {
    serde_json::from_str(&row.directory).map_err(|e| FlowError::Internal(e.to_string()))
}

impl RowDocument for DirectoryDocument {
    fn authorise(cx: ReadContext<'_>) -> Result<(), FlowError> {
        Ok(cx.principal.require_tenant_wide()?)
    }

    fn answer(_: ReadContext<'_>, row: TenantRow) -> Result<Self, FlowError> {
        Ok(DirectoryDocument {
            directory: stored_directory(&row)?,
            version: row.version,
        })
    }
}

impl RowDocument for Session {
    fn authorise(cx: ReadContext<'_>) -> Result<(), FlowError> {
        Ok(cx.principal.require(KeyScope::Read)?)
    }

    fn answer(cx: ReadContext<'_>, row: TenantRow) -> Result<Self, FlowError> {
        let spec = stored_directory(&row)?;
        Ok(cx
            .principal
            .session(cx.tenant(), &spec, &cx.snapshot.directory)?)
    }
}

/// The flow of a [`RowDocument`].
#[derive(Debug)]
pub struct ReadRow<'a, D> {
    cx: ReadContext<'a>,
    /// `None` before the read; then the row, once it came.
    read: Option<Option<Row>>,
    answer: std::marker::PhantomData<D>,
}

impl<'a, D: RowDocument> ReadRow<'a, D> {
    pub fn new(cx: ReadContext<'a>) -> ReadRow<'a, D> {
        ReadRow {
            cx,
            read: None,
            answer: std::marker::PhantomData,
        }
    }
}

impl<D: RowDocument> Flow for ReadRow<'_, D> {
    type Answer = D;

    fn poll(&mut self) -> Result<Step<D>, FlowError> {
        match self.read.take() {
            None => {
                D::authorise(self.cx)?;
                self.read = Some(None);
                Ok(Step::Read(tenants::get(
                    self.cx.dialect,
                    self.cx.tenant(),
                    false,
                )))
            }
            Some(row) => {
                let row = row.ok_or_else(|| {
                    StoreError::NotFound("the key's tenant does not exist".to_owned())
                })?;
                Ok(Step::Done(D::answer(self.cx, tenants::decode(&row)?)?))
            }
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.read {
            Some(first @ None) => {
                *first = Some(row.clone());
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

/// `GET /v1/policy`.
pub fn policy(cx: ReadContext<'_>) -> Result<PolicyDocument, FlowError> {
    cx.principal.require_tenant_wide()?;
    Ok(PolicyDocument {
        version: cx.snapshot.version,
        policy: cx.snapshot.policy.clone(),
    })
}

/// `GET /v1/credits/prices`: the bare table, so that it can be sent back as a `PUT`.
pub fn prices(cx: ReadContext<'_>) -> Result<PriceTable, FlowError> {
    cx.principal.require_tenant_wide()?;
    Ok(cx.snapshot.policy.prices.clone())
}

/// `GET /v1/credits/prices/{operation}`.
pub fn price(cx: ReadContext<'_>, operation: &str) -> Result<Price, FlowError> {
    cx.principal.require_tenant_wide()?;
    Ok(crate::credits::price(
        &cx.snapshot.policy.prices,
        operation,
    )?)
}

/// A flow answered from the request's snapshot alone, without reads.
#[derive(Debug)]
pub struct FromSnapshot<A>(Option<Result<A, FlowError>>);

impl<A> FromSnapshot<A> {
    pub fn new(answer: Result<A, FlowError>) -> FromSnapshot<A> {
        FromSnapshot(Some(answer))
    }
}

impl<A> Flow for FromSnapshot<A> {
    type Answer = A;

    fn poll(&mut self) -> Result<Step<A>, FlowError> {
        self.0.take().ok_or_else(spent)?.map(Step::Done)
    }

    fn row(&mut self, _: &Row) -> Result<(), FlowError> {
        Err(spent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{context, key, now, refusal, run, snapshot};
    use crm_core::viewer_token::TokenScope;
    use crm_store::{Dialect, Value as Column};

    fn stored() -> Row {
        let t = |s: &str| Column::Text(Some(s.to_owned()));
        Row(vec![
            t("t"),
            t("T"),
            Column::Int(Some(7)),
            t(r#"{"timezone":"UTC"}"#),
            t(&crate::flow::testing::fixture()["directory"].to_string()),
            Column::Int(Some(0)),
            Column::Int(Some(0)),
            t(&"0".repeat(64)),
        ])
    }

    #[test]
    fn the_directory_is_answered_as_stored_and_only_to_the_whole_tenant() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let (doc, asked) = run(ReadRow::<DirectoryDocument>::new(cx), |_| vec![stored()]);
        let doc = doc.expect("a document");
        assert_eq!(doc.version, 7);
        assert_eq!(doc.directory["users"][0]["id"], "user-123");
        assert_eq!(asked.len(), 1);
        let viewer = crate::access::Principal::Viewer {
            scope: TokenScope::User("user-123".to_owned()),
            expires_at: now().millis() + 3_600_000,
        };
        let cx = ReadContext {
            principal: &viewer,
            ..cx
        };
        let (doc, asked) = run(ReadRow::<DirectoryDocument>::new(cx), |_| vec![stored()]);
        assert_eq!(refusal(doc).status(), 403);
        assert!(asked.is_empty());
        assert_eq!(
            refusal(run(FromSnapshot::new(policy(cx)), |_| Vec::new()).0).status(),
            403
        );
        // A session is for every reader, a limited viewer included.
        let (session, _) = run(ReadRow::<Session>::new(cx), |_| vec![stored()]);
        let session = serde_json::to_value(session.expect("a session")).expect("JSON");
        assert_eq!(session["tenantId"], "t", "{session}");
    }

    #[test]
    fn a_price_names_the_entry_that_decides_it() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::Postgres, &snap, &principal);
        let (answer, _) = run(FromSnapshot::new(price(cx, "crm.leads.read")), |_| {
            Vec::new()
        });
        assert_eq!(answer.expect("a price").operation, "crm.leads.read");
        let (answer, _) = run(FromSnapshot::new(price(cx, "not an op")), |_| Vec::new());
        assert_eq!(refusal(answer).status(), 400);
    }
}
