//! `GET /v1/reports`, `/v1/reports/users/{id}` and `/v1/reports/departments/{id}`:
//! rollups for the whole buckets of the window and raw rows at its edges
//! (`crm_store::report::parts`), each folded as its rows arrive and merged by the core —
//! equal to aggregating every raw row.

use std::collections::VecDeque;

use crm_core::query::TrimmedHour;
use crm_core::report::{Aggregate, ReportFold, ReportInput, TrimFold, Trimmed};
use crm_store::activities::Filter;
use crm_store::keys::KeyScope;
use crm_store::listing::{self as stored, Subject, UnknownSubject};
use crm_store::report::{self as parts, Part, PartKind};

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
    left: VecDeque<Part>,
    /// The read under way and what its rows folded to so far.
    current: Option<Reading>,
    partials: Vec<Aggregate>,
}

/// What the read under way folds into.
#[derive(Debug)]
enum Reading {
    Part(Part, Box<ReportFold>),
    /// A trimmed piece's rollups and rest.
    Trim(Part, TrimFold),
    /// The newest instants of a trimmed piece's operations that `asked` names.
    Newest {
        piece: TrimmedHour,
        trimmed: Trimmed,
        asked: Vec<(String, String)>,
    },
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
        let left = parts::parts(cx.dialect, cx.tenant(), &filter, tier, cx.now).into();
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
        if let Some(read) = p
            .current
            .take()
            .and_then(|r| self.finish(&mut p, r))
            .transpose()?
        {
            self.state = State::Parts(p);
            return Ok(Step::Read(read));
        }
        if let Some(part) = p.left.pop_front() {
            let read = part.statement.clone();
            p.current = Some(match part.kind {
                PartKind::Trimmed { piece, time_tier } => {
                    Reading::Trim(part, TrimFold::new(piece, time_tier))
                }
                PartKind::Rollups | PartKind::Raw => Reading::Part(part, self.fold(&p)),
            });
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

impl ReportFlow<'_> {
    fn fold(&self, p: &Parts) -> Box<ReportFold> {
        Box::new(ReportFold::new(Aggregate::new(
            p.req.group_by,
            p.req.tz.clone(),
        )))
    }

    /// Ends the read under way: its partial aggregate, or the read a trimmed piece
    /// needs next (its operations' newest instants, or its raw rows when it does not
    /// add up).
    fn finish(
        &self,
        p: &mut Parts,
        reading: Reading,
    ) -> Option<Result<crm_store::Statement, FlowError>> {
        let (piece, trimmed) = match reading {
            Reading::Part(_, fold) => {
                p.partials.push(fold.finish());
                return None;
            }
            Reading::Trim(part, fold) => {
                let PartKind::Trimmed { piece, .. } = part.kind else {
                    return Some(Err(spent()));
                };
                (piece, fold.finish())
            }
            Reading::Newest {
                piece,
                trimmed,
                asked,
            } => {
                // A pair asked and still stale has no activity in the piece after all.
                let stale = trimmed.stale();
                let settled = !asked.iter().any(|a| stale.contains(a));
                (piece, settled.then_some(trimmed))
            }
        };
        let cx = self.cx;
        let Some(trimmed) = trimmed else {
            let raw = parts::raw(cx.dialect, cx.tenant(), &p.filter, piece.from, piece.to);
            let read = raw.statement.clone();
            p.current = Some(Reading::Part(raw, self.fold(p)));
            return Some(Ok(read));
        };
        let stale = trimmed.stale();
        if stale.is_empty() {
            let mut fold = self.fold(p);
            for row in trimmed.into_rows().unwrap_or_default() {
                if let Err(e) = fold.add(&ReportInput::Rollup(row)) {
                    return Some(Err(e.into()));
                }
            }
            p.partials.push(fold.finish());
            return None;
        }
        let asked: Vec<(String, String)> = stale.into_iter().take(parts::NEWEST_PER_READ).collect();
        let read = parts::newest(cx.dialect, cx.tenant(), piece, &asked);
        p.current = Some(Reading::Newest {
            piece,
            trimmed,
            asked,
        });
        Some(Ok(read))
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
                Some(Reading::Part(part, fold)) => Ok(fold.add(&part.decode(row)?)?),
                Some(Reading::Trim(part, fold)) => Ok(fold.add(part.decode(row)?)?),
                Some(Reading::Newest { trimmed, .. }) => {
                    let (department, operation, latest) = parts::decode_newest(row)?;
                    trimmed.settle(&department, &operation, latest);
                    Ok(())
                }
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

    /// A trimmed read's row: `r` and a rollup row of `dim`, or `a` and a raw row.
    fn marked(rollup: Option<(i64, &str, &str, u64, i64, i64)>, raw_row: Option<Row>) -> Row {
        let t = |s: &str| Value::Text(Some(s.to_owned()));
        let mut cols = Vec::new();
        match rollup {
            Some((period, dim, value, count, credits, latest)) => {
                cols.push(t("r"));
                cols.extend([
                    Value::Int(Some(period)),
                    t("dept-sales"),
                    t(dim),
                    t(value),
                    Value::Int(Some(i64::try_from(count).expect("small"))),
                    Value::Int(Some(credits)),
                    Value::Int(Some(latest)),
                ]);
                cols.extend(std::iter::repeat_n(Value::Text(None), 10));
            }
            None => {
                cols.push(t("a"));
                cols.extend(std::iter::repeat_n(Value::Text(None), 7));
                cols.extend(raw_row.expect("a raw row").0);
            }
        }
        Row(cols)
    }

    /// The rollup rows (hour tier, and the time tier `time` names) of `users`' one
    /// activity each of `crm.leads.read` at `at`.
    fn rollups_of(users: &[(&str, i64)], at: i64, time: &str, latest: i64) -> Vec<Row> {
        let tier = if time == "tq" {
            crm_core::report::Tier::TimeQuarter
        } else {
            crm_core::report::Tier::TimeHour
        };
        let hour = crm_core::report::Tier::Hour.start(at);
        let n = users.len() as u64;
        let credits: i64 = users.iter().map(|u| u.1).sum();
        let mut rows = vec![
            marked(Some((tier.start(at), "time", "", n, credits, latest)), None),
            marked(
                Some((hour, "operation", "crm.leads.read", n, credits, latest)),
                None,
            ),
            marked(Some((hour, "entity", "", n, credits, latest)), None),
            marked(Some((hour, "outcome", "success", n, credits, latest)), None),
            marked(Some((hour, "location", "", n, credits, latest)), None),
            marked(Some((hour, "auth", "", n, credits, latest)), None),
            marked(Some((hour, "ip", "", n, credits, latest)), None),
        ];
        for (user, c) in users {
            rows.push(marked(Some((hour, "user", user, 1, *c, latest)), None));
        }
        rows
    }

    fn is_trimmed(st: &crm_store::Statement) -> bool {
        st.sql.contains("UNION ALL") && st.sql.contains("report_rollups")
    }

    /// The trimmed read's time tier code (after the tenant and the hour tier's).
    fn time_tier(st: &crm_store::Statement) -> String {
        match &st.params[2] {
            Value::Text(Some(code)) => code.clone(),
            other => panic!("not a tier: {other:?}"),
        }
    }

    /// A tenant report over the last three hours on `dialect`, each read answered by
    /// `rows`; also the statements it asked for.
    fn last_three_hours(
        dialect: Dialect,
        rows: impl FnMut(&crm_store::Statement) -> Vec<Row>,
    ) -> (Result<Report, FlowError>, Vec<crm_store::Statement>) {
        let snap = snapshot();
        let principal = key();
        let cx = context(dialect, &snap, &principal);
        run(
            ReportFlow::new(cx, Subject::Tenant, params(&[("since", "3h")])),
            rows,
        )
    }

    #[test]
    fn a_report_ending_now_reads_its_open_hour_from_rollups() {
        let at = now().millis() - 60_000;
        let (report, asked) = last_three_hours(Dialect::D1, |st| {
            if is_trimmed(st) && covers(st, at) {
                rollups_of(
                    &[("user-123", 2_500), ("user-200", 500)],
                    at,
                    &time_tier(st),
                    at,
                )
            } else {
                Vec::new()
            }
        });
        let report = report.expect("a report");
        // No read of the open hour's raw rows: only its (empty) future is subtracted.
        let open_hour = crm_core::report::Tier::Hour.start(at);
        assert!(
            !asked.iter().any(|st| !is_trimmed(st)
                && st.sql.contains("FROM activities")
                && covers(st, open_hour)),
            "{asked:?}"
        );
        let body = serde_json::to_value(&report).expect("encodes");
        assert_eq!(body["totalActivities"], 2, "{body}");
        assert_eq!(body["totalCreditsUsed"], "0.3000", "{body}");
        assert_eq!(body["userBreakdown"][0]["operationCount"], 1, "{body}");
        // `since` ends just after now: what happened at this millisecond counts.
        let end = crm_core::Timestamp::from_millis(now().millis() + 1).expect("in range");
        assert_eq!(body["period"]["to"], serde_json::json!(end));
        assert!(body.get("userDetails").is_none());
    }

    #[test]
    fn a_newest_instant_past_the_window_is_read_again() {
        let at = now().millis() - 60_000;
        // Recorded with an instant two minutes ahead: in the hour's rollups, not the window.
        let ahead = now().millis() + 120_000;
        let (report, asked) = last_three_hours(Dialect::Sqlite, |st| {
            if is_trimmed(st) && covers(st, at) {
                let mut rows = rollups_of(
                    &[("user-123", 2_500), ("user-200", 500), ("user-123", 100)],
                    at,
                    &time_tier(st),
                    ahead,
                );
                // Rows of one value count together, whatever their path.
                rows.push(marked(None, Some(raw(ahead, "user-123", 100))));
                rows
            } else if st.sql.contains("ORDER BY occurred_at DESC LIMIT 1") {
                vec![Row(vec![
                    Value::Text(Some("dept-sales".to_owned())),
                    Value::Text(Some("crm.leads.read".to_owned())),
                    Value::Int(Some(at)),
                ])]
            } else {
                Vec::new()
            }
        });
        let body = serde_json::to_value(report.expect("a report")).expect("encodes");
        assert_eq!(body["totalActivities"], 2, "{body}");
        assert_eq!(body["userBreakdown"][0]["totalCredits"], "0.2500", "{body}");
        let latest = crm_core::Timestamp::from_millis(at).expect("in range");
        assert_eq!(
            body["operationBreakdown"][0]["latest"],
            serde_json::json!(latest),
            "{body}"
        );
        assert!(
            asked.iter().any(|st| st.sql.contains("LIMIT 1")),
            "{asked:?}"
        );
    }

    #[test]
    fn a_trimmed_hour_that_does_not_add_up_is_read_raw() {
        let at = now().millis() - 60_000;
        let ahead = now().millis() + 120_000;
        let (report, asked) = last_three_hours(Dialect::Postgres, |st| {
            if is_trimmed(st) && covers(st, at) {
                // A rest row no rollup counts (its values scrubbed, say).
                vec![marked(None, Some(raw(ahead, "user-123", 100)))]
            } else if !is_trimmed(st) && st.sql.contains("FROM activities") && covers(st, at) {
                vec![raw(at, "user-123", 2_500), raw(at, "user-200", 500)]
            } else {
                Vec::new()
            }
        });
        let body = serde_json::to_value(report.expect("a report")).expect("encodes");
        assert_eq!(body["totalActivities"], 2, "{body}");
        let raw_reads = asked
            .iter()
            .filter(|st| !is_trimmed(st) && st.sql.contains("FROM activities"))
            .count();
        assert_eq!(raw_reads, 1, "{asked:?}");
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
