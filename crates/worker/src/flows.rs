//! Runs `crm_api::flow` flows over the caller's D1 shard — the flows crm-host drives
//! over its own connections. A read hands its rows to the flow; a write is one D1
//! batch (all or nothing), and a constraint's refusal (a guard or a key) is reported to
//! the flow, which decides what follows.
//!
//! The driving loop is compiled once, not once per endpoint: the bundle has a size
//! budget, and an async loop per answer type costs a copy of its state machine each.
//! [`Capture`] keeps each flow's typed answer beside the one loop.

use std::rc::Rc;

use crm_api::error::ApiCode;
use crm_api::flow::{Flow, FlowError, ReadContext, Step, Written};
use crm_core::Timestamp;
use crm_core::engine::TenantSnapshot;
use crm_store::Row;
use worker::Env;

use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Ctx, Failure};
use crate::store;

/// Runs the flow `build` makes for the caller.
pub async fn run<A>(
    ctx: &Ctx,
    env: &Env,
    build: impl for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a>,
) -> ApiResult<A> {
    let (snap, db, now) = context(ctx, env).await?;
    let caller = ctx.caller()?;
    let flow = build(ReadContext {
        dialect: DIALECT,
        snapshot: &snap,
        principal: &caller.principal,
        now,
    });
    let mut capture = Capture { flow, answer: None };
    drive(&db, &mut capture).await?;
    capture
        .answer
        .ok_or_else(|| Failure::internal("a flow ended without its answer"))
}

/// The caller's snapshot, its shard and the time.
async fn context(ctx: &Ctx, env: &Env) -> ApiResult<(Rc<TenantSnapshot>, Db, Timestamp)> {
    let caller = ctx.caller()?;
    let snap = store::snapshot(env, caller).await?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let now = Timestamp::from_millis(worker::Date::now().as_millis() as i64)?;
    Ok((snap, db, now))
}

async fn drive(db: &Db, flow: &mut dyn Flow<Answer = ()>) -> ApiResult<()> {
    loop {
        match flow.poll()? {
            Step::Done(()) => return Ok(()),
            Step::Read(statement) => {
                for row in d1::query(db, &statement).await? {
                    flow.row(&row)?;
                }
            }
            Step::Write(statements) => {
                let outcome = match d1::write(db, &statements).await {
                    Ok(changed) => Written::Committed(changed),
                    // D1's constraint failures classify as conflicts (`crm_api::storage`).
                    Err(Failure(e)) if e.code == ApiCode::Conflict => Written::Refused,
                    Err(e) => return Err(e),
                };
                flow.written(outcome)?;
            }
        }
    }
}

/// A flow whose typed answer is kept here, so the loop above sees `()`.
struct Capture<'a, A> {
    flow: Box<dyn Flow<Answer = A> + 'a>,
    answer: Option<A>,
}

impl<A> Flow for Capture<'_, A> {
    type Answer = ();

    fn poll(&mut self) -> Result<Step<()>, FlowError> {
        match self.flow.poll()?.into_answer() {
            Ok(answer) => {
                self.answer = Some(answer);
                Ok(Step::Done(()))
            }
            Err(pending) => Ok(pending),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        self.flow.row(row)
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        self.flow.written(outcome)
    }
}
