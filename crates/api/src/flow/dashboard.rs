//! `GET /v1/dashboards/users/{id}`: the user's context, their report for the window,
//! their newest activities and a summary of those — a [`ReportFlow`] then a page,
//! composed.

use crm_store::keys::KeyScope;
use crm_store::listing::Subject;

use super::listing::{PageFlow, Scope};
use super::report::ReportFlow;
use super::{Flow, FlowError, Params, ReadContext, Step, spent};
use crate::dashboards::{Dashboard, RECENT};
use crate::error::ApiError;
use crate::reports::Report;

/// Query parameters of the dashboard that also window its recent activities.
const WINDOW_PARAMS: [&str; 3] = ["since", "from", "to"];

/// The flow of `getUserDashboard`.
#[derive(Debug)]
pub struct DashboardFlow<'a> {
    cx: ReadContext<'a>,
    user_id: String,
    state: State<'a>,
}

#[derive(Debug)]
enum State<'a> {
    Start(Params),
    Report {
        report: ReportFlow<'a>,
        recent: Params,
    },
    Recent {
        report: Box<Report>,
        page: PageFlow<'a>,
    },
    Spent,
}

impl<'a> DashboardFlow<'a> {
    pub fn new(cx: ReadContext<'a>, user_id: String, params: Params) -> DashboardFlow<'a> {
        DashboardFlow {
            cx,
            user_id,
            state: State::Start(params),
        }
    }

    fn subject(&self) -> Subject {
        Subject::User(self.user_id.clone())
    }

    fn step(&mut self, state: State<'a>) -> Result<Step<Dashboard>, FlowError> {
        match state {
            State::Start(params) => {
                let cx = self.cx;
                let dir = &cx.snapshot.directory;
                cx.principal.require(KeyScope::Read)?;
                cx.principal.may_read(&self.subject(), dir)?;
                if dir.user(&self.user_id).is_none() {
                    return Err(ApiError::not_found(format!(
                        "no user `{}`",
                        crm_core::time::clip(&self.user_id)
                    ))
                    .into());
                }
                let mut recent: Params = params
                    .iter()
                    .filter(|(k, _)| WINDOW_PARAMS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                recent.insert("limit".to_owned(), RECENT.to_string());
                let report = ReportFlow::new(cx, self.subject(), params);
                self.step(State::Report { report, recent })
            }
            State::Report { mut report, recent } => match report.poll()?.into_answer() {
                Err(pending) => {
                    self.state = State::Report { report, recent };
                    Ok(pending)
                }
                Ok(done) => {
                    let page = PageFlow::new(self.cx, self.subject(), recent, Scope::Subject);
                    self.step(State::Recent {
                        report: Box::new(done),
                        page,
                    })
                }
            },
            State::Recent { report, mut page } => match page.poll()?.into_answer() {
                Err(pending) => {
                    self.state = State::Recent { report, page };
                    Ok(pending)
                }
                Ok(recent) => {
                    let dir = &self.cx.snapshot.directory;
                    let user = dir.user(&self.user_id).ok_or_else(spent)?;
                    Ok(Step::Done(Dashboard::new(
                        self.user_id.clone(),
                        dir.user_context(user),
                        *report,
                        recent,
                        self.cx.now,
                    )?))
                }
            },
            State::Spent => Err(spent()),
        }
    }
}

impl Flow for DashboardFlow<'_> {
    type Answer = Dashboard;

    fn poll(&mut self) -> Result<Step<Dashboard>, FlowError> {
        let state = std::mem::replace(&mut self.state, State::Spent);
        self.step(state)
    }

    fn row(&mut self, row: &crm_store::Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Report { report, .. } => report.row(row),
            State::Recent { page, .. } => page.row(row),
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{context, key, now, refusal, run, snapshot};
    use crm_store::Dialect;

    #[test]
    fn the_report_is_read_then_the_recent_page_in_the_same_window() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let params: Params = [("since", "2h"), ("groupBy", "hour")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (answer, asked) = run(
            DashboardFlow::new(cx, "user-123".to_owned(), params),
            |_| Vec::new(),
        );
        let dashboard = answer.expect("a dashboard");
        assert_eq!(dashboard.user_id, "user-123");
        assert_eq!(dashboard.report.body.total_activities, 0);
        assert_eq!(dashboard.last_updated, now());
        let last = asked.last().expect("reads");
        assert!(last.sql.starts_with("SELECT body"), "{}", last.sql);
        assert!(last.sql.contains(&format!("LIMIT {}", RECENT + 1)));
        // The page's window is the report's.
        let from = dashboard.report.period.from.millis();
        assert!(last.params.contains(&crm_store::Value::Int(Some(from))));
    }

    #[test]
    fn an_unknown_user_is_404_before_any_read() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let (answer, asked) = run(
            DashboardFlow::new(cx, "nobody".to_owned(), Params::new()),
            |_| Vec::new(),
        );
        assert_eq!(refusal(answer).message, "no user `nobody`");
        assert!(asked.is_empty());
    }
}
