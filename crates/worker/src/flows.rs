//! Runs `crm_api::flow` flows over the caller's D1 shard — the flows crm-host drives
//! over its own connections. A read hands its rows to the flow; a write is one D1
//! batch (all or nothing), and a constraint's refusal (a guard or a key) is reported to
//! the flow, which decides what follows.

use crm_api::error::ApiCode;
use crm_api::flow::{Flow, ReadContext, Step, Written};
use crm_core::Timestamp;
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
    let caller = ctx.caller()?;
    let snap = store::snapshot(env, caller).await?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let now = Timestamp::from_millis(worker::Date::now().as_millis() as i64)?;
    let mut flow = build(ReadContext {
        dialect: DIALECT,
        snapshot: &snap,
        principal: &caller.principal,
        now,
    });
    loop {
        match flow.poll()? {
            Step::Done(answer) => return Ok(answer),
            Step::Read(statement) => {
                for row in d1::query(&db, &statement).await? {
                    flow.row(&row)?;
                }
            }
            Step::Write(statements) => {
                let outcome = match d1::write(&db, &statements).await {
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
