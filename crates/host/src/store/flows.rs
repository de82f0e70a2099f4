//! Drives `crm_api::flow` read flows on one pooled connection, off the async runtime:
//! each [`Step::Read`] runs on that connection and its rows reach the flow one at a
//! time (a report folds as it reads, keeping no list of rows).

use std::ops::ControlFlow;
use std::sync::Arc;

use crm_api::access::Principal;
use crm_api::flow::{Flow, FlowError, ReadContext, Step};
use crm_core::Timestamp;

use super::{Conn, Store};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};

/// A read flow, built against the context the driver lends it.
pub type Build<A> =
    Box<dyn for<'a> FnOnce(ReadContext<'a>) -> Box<dyn Flow<Answer = A> + 'a> + Send>;

impl Store {
    /// Runs the flow `build` makes for `principal` reading `tenant` at `now`.
    pub async fn flow<A: Send + 'static>(
        &self,
        tenant: Arc<Tenant>,
        principal: Principal,
        now: Timestamp,
        build: Build<A>,
    ) -> HostResult<A> {
        let dialect = self.dialect();
        self.read(move |c| {
            let cx = ReadContext {
                dialect,
                snapshot: &tenant.snapshot,
                principal: &principal,
                now,
            };
            drive(c, build(cx).as_mut())
        })
        .await
    }
}

fn drive<A>(c: &mut dyn Conn, flow: &mut dyn Flow<Answer = A>) -> HostResult<A> {
    loop {
        match flow.poll()? {
            Step::Done(answer) => return Ok(answer),
            Step::Read(statement) => {
                let mut failed = None;
                c.for_each(&statement, &mut |row| match flow.row(row) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e.into());
                }
            }
        }
    }
}

impl From<FlowError> for HostError {
    fn from(e: FlowError) -> HostError {
        match e {
            FlowError::Refused(api) => HostError::Api(api),
            FlowError::Internal(m) => HostError::internal(anyhow::anyhow!(m)),
        }
    }
}
