//! `GET /v1/activities`, `/v1/users/{id}/activities`, `/v1/departments/{id}/activities`
//! and `/v1/entities/{type}/{id}/activities`: one page of the activities a filter
//! selects, newest first — authorised, then narrowed to what the caller may read.

use crm_core::query::Cursor;
use crm_store::keys::KeyScope;
use crm_store::listing::{self as stored, Page, Subject};

use super::{Collected, Flow, FlowError, Params, ReadContext, Step, spent};
use crate::error::ApiError;
use crate::listing::ActivityPage;

/// A listing endpoint's flow.
#[derive(Debug)]
pub struct ListingFlow<'a> {
    page: PageFlow<'a>,
}

impl<'a> ListingFlow<'a> {
    /// The activities of `subject` (a tenant-wide request may be narrowed by `userId`
    /// or `departmentId`).
    pub fn subject(cx: ReadContext<'a>, subject: Subject, params: Params) -> ListingFlow<'a> {
        ListingFlow {
            page: PageFlow::new(cx, subject, params, Scope::Subject),
        }
    }

    /// An entity's history: tenant-wide, so a limited viewer token sees the touches
    /// of its own user or subtree (its view narrows the filter).
    pub fn entity(
        cx: ReadContext<'a>,
        entity_type: String,
        entity_id: String,
        mut params: Params,
    ) -> ListingFlow<'a> {
        params.insert("entityType".to_owned(), entity_type);
        params.insert("entityId".to_owned(), entity_id);
        ListingFlow {
            page: PageFlow::new(cx, Subject::Tenant, params, Scope::Entity),
        }
    }
}

impl Flow for ListingFlow<'_> {
    type Answer = ActivityPage;

    fn poll(&mut self) -> Result<Step<ActivityPage>, FlowError> {
        Ok(match self.page.poll()?.into_answer() {
            Ok(page) => Step::Done(ActivityPage::from(page)),
            Err(pending) => pending,
        })
    }

    fn row(&mut self, row: &crm_store::Row) -> Result<(), FlowError> {
        self.page.row(row)
    }
}

/// Whom the subject authorisation is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The subject itself must be in the caller's view.
    Subject,
    /// Tenant-wide by nature (an entity's history): only a narrowed subject is asked.
    Entity,
}

/// One page as stored: the piece listings and dashboards share.
#[derive(Debug)]
pub(crate) struct PageFlow<'a> {
    cx: ReadContext<'a>,
    state: State,
}

#[derive(Debug)]
enum State {
    Start {
        subject: Subject,
        params: Params,
        scope: Scope,
    },
    Reading {
        limit: usize,
        rows: Collected,
    },
    Spent,
}

impl<'a> PageFlow<'a> {
    pub(crate) fn new(
        cx: ReadContext<'a>,
        subject: Subject,
        params: Params,
        scope: Scope,
    ) -> PageFlow<'a> {
        PageFlow {
            cx,
            state: State::Start {
                subject,
                params,
                scope,
            },
        }
    }

    fn start(
        &self,
        subject: Subject,
        params: &Params,
        scope: Scope,
    ) -> Result<(crm_store::Statement, usize), FlowError> {
        let cx = self.cx;
        cx.principal.require(KeyScope::Read)?;
        let dir = &cx.snapshot.directory;
        let range = crate::listing::range(params, cx.now)?;
        let mut filter = crate::listing::filter(dir, subject, params, range, |s| {
            if scope == Scope::Entity && *s == Subject::Tenant {
                return Ok(());
            }
            cx.principal
                .may_read(s, dir)
                .map_err(|crate::access::Denied(m)| ApiError::forbidden(m))
        })?;
        cx.principal.narrow_to_view(&mut filter, dir)?;
        let limit = crate::listing::limit(params)?;
        let cursor = params
            .get("cursor")
            .map(|c| Cursor::decode(c))
            .transpose()?;
        Ok((
            stored::page(cx.dialect, cx.tenant(), &filter, cursor, limit),
            limit,
        ))
    }
}

impl Flow for PageFlow<'_> {
    type Answer = Page;

    fn poll(&mut self) -> Result<Step<Page>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start {
                subject,
                params,
                scope,
            } => {
                let (statement, limit) = self.start(subject, &params, scope)?;
                self.state = State::Reading {
                    limit,
                    rows: Collected::default(),
                };
                Ok(Step::Read(statement))
            }
            State::Reading { limit, mut rows } => {
                Ok(Step::Done(stored::decode_page(&rows.take(), limit)?))
            }
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &crm_store::Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Reading { rows, .. } => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{context, key, params, refusal, run, snapshot};
    use crm_core::viewer_token::TokenScope;
    use crm_store::{Dialect, Row, Value};

    fn row(body: &str, at: i64, seq: i64) -> Row {
        Row(vec![
            Value::Text(Some(body.to_owned())),
            Value::Int(Some(at)),
            Value::Int(Some(seq)),
            Value::Text(None),
        ])
    }

    #[test]
    fn a_full_page_reads_one_more_row_and_answers_a_cursor() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let flow = ListingFlow::subject(cx, Subject::Tenant, params(&[("limit", "2")]));
        let (page, asked) = run(flow, |_| {
            vec![
                row(r#"{"id":"a3"}"#, 30, 3),
                row(r#"{"id":"a2"}"#, 20, 2),
                row(r#"{"id":"a1"}"#, 10, 1),
            ]
        });
        let page = page.expect("a page");
        assert_eq!(asked.len(), 1);
        assert!(asked[0].sql.contains("LIMIT 3"), "{}", asked[0].sql);
        assert_eq!(page.activities.len(), 2);
        assert_eq!(page.next_cursor.as_deref(), Some("c20.2"));
    }

    #[test]
    fn a_limited_viewer_is_refused_another_user_before_anything_is_read() {
        let snap = snapshot();
        let principal = crate::access::Principal::Viewer {
            scope: TokenScope::User("user-123".to_owned()),
            expires_at: i64::MAX,
        };
        let cx = context(Dialect::Sqlite, &snap, &principal);
        let flow = ListingFlow::subject(cx, Subject::User("user-200".to_owned()), Params::new());
        let (answer, asked) = run(flow, |_| Vec::new());
        assert_eq!(refusal(answer).status(), 403);
        assert!(asked.is_empty());
        // An entity's history is tenant-wide: the same viewer sees its own user's touches.
        let flow = ListingFlow::entity(cx, "lead".to_owned(), "L1".to_owned(), Params::new());
        let (answer, asked) = run(flow, |_| Vec::new());
        assert!(answer.is_ok());
        assert!(
            asked[0]
                .params
                .contains(&Value::Text(Some("user-123".to_owned())))
        );
    }

    #[test]
    fn unknown_users_and_bad_cursors_are_refused() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::Postgres, &snap, &principal);
        let flow = ListingFlow::subject(cx, Subject::User("nobody".to_owned()), Params::new());
        assert_eq!(refusal(run(flow, |_| Vec::new()).0).status(), 404);
        let flow = ListingFlow::subject(cx, Subject::Tenant, params(&[("cursor", "nope")]));
        assert_eq!(refusal(run(flow, |_| Vec::new()).0).status(), 400);
    }
}
