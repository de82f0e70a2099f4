//! Runs `crm_api::flow` flows over the caller's D1 shard — the flows crm-host drives
//! over its own connections. A read hands its rows to the flow; a write is one D1
//! batch (all or nothing), and a constraint's refusal (a guard or a key) is reported to
//! the flow, which decides what follows. A fetch reads an archived segment from R2
//! (`crate::archive`); a record goes through the queue consumer's writer
//! (`crate::consumer::write`); emitted bytes go into the response body.
//!
//! The driving loop is compiled once, not once per endpoint: the bundle has a size
//! budget, and an async loop per answer type costs a copy of its state machine each.
//! [`Capture`] keeps each flow's typed answer beside the one loop.

use std::rc::Rc;

use crm_api::error::{ApiCode, ApiError};
use crm_api::flow::{Flow, FlowError, ReadContext, Record, Step, Written};
use crm_core::Timestamp;
use crm_core::engine::TenantSnapshot;
use crm_store::Row;
use crm_store::archive::{Archived, Segment};
use crm_store::ingest::Stored;
use worker::Env;

use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Ctx, Failure};
use crate::{archive, consumer, store};

/// A flow, built against the context the driver lends it.
pub trait Build<A>: for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a> {}
impl<A, F: for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a>> Build<A> for F {}

/// Runs the flow `build` makes for the caller.
pub async fn run<A>(ctx: &Ctx, env: &Env, build: impl Build<A>) -> ApiResult<A> {
    run_into(ctx, env, None, build).await
}

/// Runs the flow `build` makes for the caller, appending what it emits to `body`.
pub async fn run_into<A>(
    ctx: &Ctx,
    env: &Env,
    body: Option<&mut Vec<u8>>,
    build: impl Build<A>,
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
    let runtime = Runtime {
        env,
        db: &db,
        tenant: caller.tenant(),
        now,
    };
    runtime.drive(&mut capture, body).await?;
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

/// What a flow runs against.
struct Runtime<'r> {
    env: &'r Env,
    db: &'r Db,
    tenant: &'r str,
    now: Timestamp,
}

impl Runtime<'_> {
    async fn drive(
        &self,
        flow: &mut dyn Flow<Answer = ()>,
        mut body: Option<&mut Vec<u8>>,
    ) -> ApiResult<()> {
        loop {
            match flow.poll()? {
                Step::Done(()) => return Ok(()),
                Step::Read(statement) => {
                    for row in d1::query(self.db, &statement).await? {
                        flow.row(&row)?;
                    }
                }
                Step::Write(statements) => {
                    let outcome = match d1::write(self.db, &statements).await {
                        Ok(changed) => Written::Committed(changed),
                        // D1's constraint failures classify as conflicts
                        // (`crm_api::storage`).
                        Err(Failure(e)) if e.code == ApiCode::Conflict => Written::Refused,
                        Err(e) => return Err(e),
                    };
                    flow.written(outcome)?;
                }
                Step::Fetch(segment) => flow.fetched(self.fetch(&segment).await?)?,
                Step::Record(record) => flow.recorded(self.record(*record).await?)?,
                Step::Emit(bytes) => body
                    .as_deref_mut()
                    .ok_or_else(|| Failure::internal("a flow emitted bytes nowhere to go"))?
                    .extend_from_slice(&bytes),
            }
        }
    }

    async fn fetch(&self, segment: &Segment) -> ApiResult<Result<Vec<Archived>, String>> {
        archive::records(self.env, segment).await
    }

    /// Appends the record through the consumer's writer, after `first`, in one batch.
    async fn record(&self, record: Record) -> ApiResult<Stored> {
        let item = consumer::Item {
            activity: record.activity,
            input_hash: record.input_hash,
        };
        let now = [self.now.millis()];
        consumer::write(self.env, self.tenant, &[item], &now, &record.first)
            .await?
            .map_err(|r| r.or_conflict(|c| Failure(ApiError::conflict(c.message()))))?
            .pop()
            .ok_or_else(|| Failure::internal("recording answered nothing"))
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

    fn fetched(&mut self, records: Result<Vec<Archived>, String>) -> Result<(), FlowError> {
        self.flow.fetched(records)
    }

    fn recorded(&mut self, stored: Stored) -> Result<(), FlowError> {
        self.flow.recorded(stored)
    }
}
