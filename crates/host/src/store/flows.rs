//! Drives `crm_api::flow` flows, two ways:
//! - [`Store::flow`], on a blocking thread: each [`Step::Read`] runs on a pooled read
//!   connection, its rows reaching the flow one at a time (a report folds as it reads,
//!   keeping no list of rows); each [`Step::Write`] is a group-commit job of its own.
//!   Reads and compiling stay off the writer.
//! - [`Store::flow_in_transaction`], inside one writer job: reads see the transaction
//!   (and lock what they lock, `FOR UPDATE` on PostgreSQL), so a flow that writes what
//!   it read never loses its guards to concurrent writers — for wallet changes, which
//!   race every charge of every ingest.
//!
//! Either way a write runs in a savepoint of its own: a refused guard or key rolls back
//! only that write and is reported to the flow. A record is appended to the chain by
//! `store::record` in a writer transaction, after the flow's statements that go with
//! it. crm-host keeps no archive: its segment table stays empty, so no flow asks it
//! for a segment. What a flow emits goes to the sink of [`Store::stream_flow`].

use std::ops::ControlFlow;
use std::sync::Arc;

use crm_api::access::Principal;
use crm_api::flow::{Flow, FlowError, ReadContext, Record, Step, Written};
use crm_core::Timestamp;
use crm_store::Statement;
use crm_store::ingest::Stored;

use super::{Conn, DbError, Heads, IngestItem, Store};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};

/// A flow, built against the context the driver lends it.
pub type Build<A> =
    Box<dyn for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a> + Send>;

/// Where a flow's emitted bytes go; `Break` when nobody takes them any more.
pub type Sink = Box<dyn FnMut(Vec<u8>) -> ControlFlow<()> + Send>;

impl Store {
    /// Runs the flow `build` makes for `principal` on `tenant` at `now`.
    pub async fn flow<A: Send + 'static>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        now: Timestamp,
        build: Build<A>,
    ) -> HostResult<A> {
        let nowhere: Sink = Box::new(|_| ControlFlow::Break(()));
        self.stream_flow(tenant, principal, now, build, nowhere)
            .await?
            .ok_or_else(|| HostError::internal(anyhow::anyhow!("a flow emitted bytes nowhere")))
    }

    /// Runs the flow, sending what it emits to `sink`; `None` when the sink stopped
    /// taking it (the flow is dropped there).
    pub async fn stream_flow<A: Send + 'static>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        now: Timestamp,
        build: Build<A>,
        mut sink: Sink,
    ) -> HostResult<Option<A>> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let cx = ReadContext {
                dialect: store.dialect(),
                snapshot: &tenant.snapshot,
                principal: &principal,
                now,
            };
            let mut pooled = Pooled {
                store: &store,
                tenant: &tenant,
                now,
            };
            drive(build(cx).as_mut(), &mut pooled, &mut sink)
        })
        .await
        .map_err(|e| HostError::internal(anyhow::anyhow!("flow task: {e}")))?
    }

    /// Runs the flow inside one transaction of the writer.
    pub async fn flow_in_transaction<A: Send + 'static>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        now: Timestamp,
        build: Build<A>,
    ) -> HostResult<A> {
        let id = tenant.id().to_owned();
        self.write(Some(&id), move |c| {
            let cx = ReadContext {
                dialect: c.dialect(),
                snapshot: &tenant.snapshot,
                principal: &principal,
                now,
            };
            let mut within = Within {
                c,
                tenant: &tenant,
                now,
            };
            let mut nowhere = |_| ControlFlow::Break(());
            drive(build(cx).as_mut(), &mut within, &mut nowhere)?
                .ok_or_else(|| HostError::internal(anyhow::anyhow!("a flow emitted bytes nowhere")))
        })
        .await
    }
}

/// What a flow runs against: reads, writes and records.
trait Runtime<A> {
    fn read(&mut self, statement: &Statement, flow: &mut dyn Flow<Answer = A>) -> HostResult<()>;
    fn write(&mut self, statements: Vec<Statement>) -> HostResult<Written>;
    fn record(&mut self, record: Record) -> HostResult<Stored>;
}

/// Reads on the pool, each write and record a writer job.
struct Pooled<'s> {
    store: &'s Store,
    tenant: &'s Arc<Tenant>,
    now: Timestamp,
}

impl<A> Runtime<A> for Pooled<'_> {
    fn read(&mut self, statement: &Statement, flow: &mut dyn Flow<Answer = A>) -> HostResult<()> {
        self.store.read_blocking(|c| feed(c, statement, flow))
    }

    fn write(&mut self, statements: Vec<Statement>) -> HostResult<Written> {
        let writer = &self.store.inner.writer;
        writer.exec_blocking(Some(self.tenant.id()), move |c| write(c, &statements))
    }

    fn record(&mut self, record: Record) -> HostResult<Stored> {
        let (tenant, now) = (self.tenant.clone(), self.now);
        let writer = &self.store.inner.writer;
        writer.exec_blocking(Some(self.tenant.id()), move |c| {
            append(c, &tenant, record, now)
        })
    }
}

/// Everything inside one writer transaction.
struct Within<'c> {
    c: &'c mut dyn Conn,
    tenant: &'c Tenant,
    now: Timestamp,
}

impl<A> Runtime<A> for Within<'_> {
    fn read(&mut self, statement: &Statement, flow: &mut dyn Flow<Answer = A>) -> HostResult<()> {
        feed(self.c, statement, flow)
    }

    fn write(&mut self, statements: Vec<Statement>) -> HostResult<Written> {
        write(self.c, &statements)
    }

    fn record(&mut self, record: Record) -> HostResult<Stored> {
        append(self.c, self.tenant, record, self.now)
    }
}

/// Polls `flow` to its end, running its reads and writes; `None` when `sink` stopped.
fn drive<A>(
    flow: &mut dyn Flow<Answer = A>,
    runtime: &mut dyn Runtime<A>,
    sink: &mut dyn FnMut(Vec<u8>) -> ControlFlow<()>,
) -> HostResult<Option<A>> {
    loop {
        match flow.poll()? {
            Step::Done(answer) => return Ok(Some(answer)),
            Step::Read(statement) => runtime.read(&statement, flow)?,
            Step::Write(statements) => {
                let outcome = runtime.write(statements)?;
                flow.written(outcome)?;
            }
            Step::Record(record) => {
                let stored = runtime.record(*record)?;
                flow.recorded(stored)?;
            }
            Step::Fetch(segment) => {
                return Err(HostError::internal(anyhow::anyhow!(
                    "a flow asked for archived segment {}–{}; crm-host keeps no archive",
                    segment.first_seq,
                    segment.last_seq
                )));
            }
            Step::Emit(bytes) => {
                if sink(bytes).is_break() {
                    return Ok(None);
                }
            }
        }
    }
}

/// The record's statements, then the record appended to the chain.
fn append(c: &mut dyn Conn, tenant: &Tenant, record: Record, now: Timestamp) -> HostResult<Stored> {
    c.execute_all(&record.first)?;
    let item = IngestItem {
        activity: record.activity,
        input_hash: record.input_hash,
    };
    super::record(c, tenant, vec![item], now.millis(), &mut Heads::new())?
        .pop()
        .ok_or_else(|| HostError::internal(anyhow::anyhow!("recording answered nothing")))
}

fn feed<A>(
    c: &mut dyn Conn,
    statement: &Statement,
    flow: &mut dyn Flow<Answer = A>,
) -> HostResult<()> {
    let mut failed = None;
    c.for_each(statement, &mut |row| match flow.row(row) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failed = Some(e);
            ControlFlow::Break(())
        }
    })?;
    failed.map_or(Ok(()), |e| Err(e.into()))
}

/// The statements in a savepoint: all of them, or none when a constraint refuses one.
fn write(c: &mut dyn Conn, statements: &[Statement]) -> HostResult<Written> {
    c.batch("SAVEPOINT flow_write")?;
    let mut changed = Vec::with_capacity(statements.len());
    for st in statements {
        match c.execute(st) {
            Ok(n) => changed.push(n),
            Err(DbError::Constraint(why)) => {
                tracing::debug!(%why, "a flow's guarded write was refused");
                c.batch("ROLLBACK TO SAVEPOINT flow_write; RELEASE SAVEPOINT flow_write")?;
                return Ok(Written::Refused);
            }
            Err(e) => return Err(e.into()),
        }
    }
    c.batch("RELEASE SAVEPOINT flow_write")?;
    Ok(Written::Committed(changed))
}

impl From<FlowError> for HostError {
    fn from(e: FlowError) -> HostError {
        match e {
            FlowError::Refused(api) => HostError::Api(api),
            FlowError::Internal(m) => HostError::internal(anyhow::anyhow!(m)),
        }
    }
}
