//! `GET /v1/reports`, `/v1/reports/users/{id}` and `/v1/reports/departments/{id}`:
//! rollups for the whole buckets of the window and raw rows at its edges
//! (`crm_store::report::parts`), each folded as its rows arrive and merged by the core —
//! equal to aggregating every raw row.

use crm_core::report::{Aggregate, ReportFold};
use crm_store::activities::Filter;
use crm_store::keys::KeyScope;
use crm_store::listing::{self as stored, Subject, UnknownSubject};
use crm_store::report::Part;

use super::{Collected, Flow, FlowError, Params, ReadContext, Step, spent};
use crate::error::ApiError;
use crate::reports::{Report, ReportRequest, USER_DETAIL_PAGE, user_details};

/// A report endpoint's flow (and the report inside a dashboard).
#[derive(Debug)]
pub struct ReportFlow<'a> {
    cx: ReadContext<'a>,
    state: State,
}

#[derive(Debug)]
enum State {
    Start {
        subject: Subject,
        params: Params,
    },
    Parts(Box<Parts>),
    Details {
        report: Box<Report>,
        rows: Collected,
    },
    Spent,
}

/// The reads of the report's parts, one at a time.
#[derive(Debug)]
struct Parts {
    subject: Subject,
    req: ReportRequest,
    filter: Filter,
    left: std::vec::IntoIter<Part>,
    /// The part being read and what its rows folded to so far.
    current: Option<(Part, ReportFold)>,
    partials: Vec<Aggregate>,
}

impl<'a> ReportFlow<'a> {
    pub fn new(cx: ReadContext<'a>, subject: Subject, params: Params) -> ReportFlow<'a> {
        ReportFlow {
            cx,
            state: State::Start { subject, params },
        }
    }

    /// Authorises the subject, parses the request and plans the reads.
    fn plan(&self, subject: Subject, params: &Params) -> Result<Parts, FlowError> {
        let cx = self.cx;
        let dir = &cx.snapshot.directory;
        if subject == Subject::Tenant {
            cx.principal.require_tenant_wide()?;
        } else {
            cx.principal.require(KeyScope::Read)?;
            cx.principal.may_read(&subject, dir)?;
        }
        let req = ReportRequest::parse(params, cx.now, &cx.snapshot.policy)?;
        let mut filter = subject
            .filter(dir, req.range)
            .map_err(|UnknownSubject(m)| ApiError::not_found(m))?;
        cx.principal.narrow_to_view(&mut filter, dir)?;
        let tier = req.tz.time_tier(req.range.from, req.range.to);
        let left = crm_store::report::parts(cx.dialect, cx.tenant(), &filter, tier).into_iter();
        Ok(Parts {
            subject,
            req,
            filter,
            left,
            current: None,
            partials: Vec::new(),
        })
    }

    /// The next part's read, or the report once every part is folded.
    fn next(&mut self, mut p: Box<Parts>) -> Result<Step<Report>, FlowError> {
        if let Some((_, fold)) = p.current.take() {
            p.partials.push(fold.finish());
        }
        if let Some(part) = p.left.next() {
            let read = part.statement.clone();
            let fold = ReportFold::new(Aggregate::new(p.req.group_by, p.req.tz.clone()));
            p.current = Some((part, fold));
            self.state = State::Parts(p);
            return Ok(Step::Read(read));
        }
        let Parts {
            subject,
            req,
            filter,
            partials,
            ..
        } = *p;
        let dir = &self.cx.snapshot.directory;
        let report = Report::new(partials, &subject, req.range, dir)?;
        if !req.include_user_details {
            return Ok(Step::Done(report));
        }
        self.state = State::Details {
            report: Box::new(report),
            rows: Collected::default(),
        };
        Ok(Step::Read(stored::page(
            self.cx.dialect,
            self.cx.tenant(),
            &filter,
            None,
            USER_DETAIL_PAGE,
        )))
    }
}

impl Flow for ReportFlow<'_> {
    type Answer = Report;

    fn poll(&mut self) -> Result<Step<Report>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start { subject, params } => {
                let parts = self.plan(subject, &params)?;
                self.next(Box::new(parts))
            }
            State::Parts(p) => self.next(p),
            State::Details { report, mut rows } => {
                let mut report = *report;
                let page = stored::decode_page(&rows.take(), USER_DETAIL_PAGE)?;
                report.user_details = Some(user_details(&page, &self.cx.snapshot.directory)?);
                Ok(Step::Done(report))
            }
            State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &crm_store::Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Parts(p) => match &mut p.current {
                Some((part, fold)) => Ok(fold.add(&part.decode(row)?)?),
                None => Err(spent()),
            },
            State::Details { rows, .. } => {
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
    use crate::flow::testing::{context, key, now, params, refusal, run, snapshot};
    use crm_core::viewer_token::TokenScope;
    use crm_store::{Dialect, Row, Value};

    /// A raw report row (`crm_store::activities::report_rows`' columns).
    fn raw(at: i64, user: &str, credits: i64) -> Row {
        let t = |s: &str| Value::Text(Some(s.to_owned()));
        Row(vec![
            Value::Int(Some(at)),
            t(user),
            t("dept-sales"),
            t("crm.leads.read"),
            t("success"),
            Value::Text(None),
            Value::Int(Some(credits)),
            Value::Text(None),
            Value::Text(None),
            Value::Text(None),
        ])
    }

    /// Whether a raw part's window `[from, to)` (two of its bound integers) holds `at`.
    fn covers(st: &crm_store::Statement, at: i64) -> bool {
        let ints: Vec<i64> = st
            .params
            .iter()
            .filter_map(|v| match v {
                Value::Int(Some(i)) => Some(*i),
                _ => None,
            })
            .collect();
        ints.iter().any(|from| *from <= at) && ints.iter().any(|to| at < *to)
    }

    #[test]
    fn every_part_is_read_and_folded_into_one_report() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        // 90 minutes ending now: whole hours from rollups, both edges raw.
        let flow = ReportFlow::new(cx, Subject::Tenant, params(&[("since", "3h")]));
        let at = now().millis() - 60_000;
        let (report, asked) = run(flow, |st| {
            if st.sql.contains("FROM activities") && covers(st, at) {
                vec![raw(at, "user-123", 2_500), raw(at, "user-200", 500)]
            } else {
                Vec::new()
            }
        });
        let report = report.expect("a report");
        assert!(asked.len() >= 2, "rollups and raw edges: {asked:?}");
        let body = serde_json::to_value(&report).expect("encodes");
        assert_eq!(body["totalActivities"], 2, "{body}");
        // `since` ends just after now: what happened at this millisecond counts.
        let end = crm_core::Timestamp::from_millis(now().millis() + 1).expect("in range");
        assert_eq!(body["period"]["to"], serde_json::json!(end));
        assert!(body.get("userDetails").is_none());
    }

    #[test]
    fn refusals_come_before_any_read() {
        let snap = snapshot();
        let viewer = crate::access::Principal::Viewer {
            scope: TokenScope::User("user-123".to_owned()),
            expires_at: i64::MAX,
        };
        let key = key();
        let cases: [(&crate::access::Principal, Subject, Params, u16); 4] = [
            (&viewer, Subject::Tenant, Params::new(), 403),
            (
                &viewer,
                Subject::User("user-200".to_owned()),
                Params::new(),
                403,
            ),
            (
                &key,
                Subject::Department("nope".to_owned()),
                Params::new(),
                404,
            ),
            (
                &key,
                Subject::Tenant,
                params(&[("groupBy", "fortnight")]),
                400,
            ),
        ];
        for (principal, subject, params, status) in cases {
            let cx = ReadContext {
                dialect: Dialect::Sqlite,
                snapshot: &snap,
                principal,
                now: now(),
            };
            let (answer, asked) = run(ReportFlow::new(cx, subject, params), |_| Vec::new());
            assert_eq!(refusal(answer).status(), status);
            assert!(asked.is_empty());
        }
    }

    #[test]
    fn user_details_read_one_page_after_the_parts() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::Postgres, &snap, &principal);
        let flow = ReportFlow::new(
            cx,
            Subject::Department("dept-sales".to_owned()),
            params(&[("since", "1d"), ("includeUserDetails", "true")]),
        );
        let record = snap
            .enrich_json(
                r#"{"id":"a1","userId":"user-123","operation":"crm.leads.read"}"#,
                "unused",
                now(),
                None,
            )
            .expect("valid input");
        let body = serde_json::to_string(&record).expect("encodes");
        let (report, asked) = run(flow, |st| {
            if st.sql.starts_with("SELECT body") {
                vec![Row(vec![
                    Value::Text(Some(body.to_owned())),
                    Value::Int(Some(1)),
                    Value::Int(Some(1)),
                    Value::Text(None),
                ])]
            } else {
                Vec::new()
            }
        });
        let last = asked.last().expect("reads");
        assert!(last.sql.starts_with("SELECT body"), "{}", last.sql);
        let details = report.expect("a report").user_details.expect("details");
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].user_id, "user-123");
        assert_eq!(details[0].name.as_deref(), Some("John Doe"));
        assert_eq!(details[0].recent[0].id, "a1");
    }
}
