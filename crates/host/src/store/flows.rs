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
//! only that write and is reported to the flow.

use std::ops::ControlFlow;
use std::sync::Arc;

use crm_api::access::Principal;
use crm_api::flow::{Flow, FlowError, ReadContext, Step, Written};
use crm_core::Timestamp;
use crm_store::Statement;

use super::{Conn, DbError, Store};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};

/// A flow, built against the context the driver lends it.
pub type Build<A> =
    Box<dyn for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a> + Send>;

impl Store {
    /// Runs the flow `build` makes for `principal` on `tenant` at `now`.
    pub async fn flow<A: Send + 'static>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        now: Timestamp,
        build: Build<A>,
    ) -> HostResult<A> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let cx = ReadContext {
                dialect: store.dialect(),
                snapshot: &tenant.snapshot,
                principal: &principal,
                now,
            };
            let id = tenant.id().to_owned();
            drive(
                build(cx).as_mut(),
                |statement, flow| store.read_blocking(|c| feed(c, statement, flow)),
                |statements| {
                    let writer = &store.inner.writer;
                    writer.exec_blocking(Some(&id), move |c| write(c, &statements))
                },
            )
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
            let c = std::cell::RefCell::new(c);
            drive(
                build(cx).as_mut(),
                |statement, flow| feed(*c.borrow_mut(), statement, flow),
                |statements| write(*c.borrow_mut(), &statements),
            )
        })
        .await
    }
}

/// Polls `flow` to its end, running its reads and writes.
fn drive<A>(
    flow: &mut dyn Flow<Answer = A>,
    mut read: impl FnMut(&Statement, &mut dyn Flow<Answer = A>) -> HostResult<()>,
    mut write: impl FnMut(Vec<Statement>) -> HostResult<Written>,
) -> HostResult<A> {
    loop {
        match flow.poll()? {
            Step::Done(answer) => return Ok(answer),
            Step::Read(statement) => read(&statement, flow)?,
            Step::Write(statements) => {
                let outcome = write(statements)?;
                flow.written(outcome)?;
            }
        }
    }
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
