//! Endpoint flows: each endpoint's orchestration — authorise, parse, read, write,
//! answer — written once as an I/O-free state machine that crm-host drives over its
//! connections and crm-worker over D1 (quinn-proto's shape).
//!
//! A flow is polled: it answers [`Step::Read`] with a statement the runtime runs on the
//! tenant's database, handing every row back through [`Flow::row`] as it is read (so a
//! report folds a million rows without keeping them), and polls again;
//! [`Step::Write`] with statements the runtime runs as one all-or-nothing transaction,
//! reporting the outcome through [`Flow::written`]; [`Step::Fetch`] with an archived
//! segment whose records the runtime reads from its archive ([`Flow::fetched`]);
//! [`Step::Record`] with an activity the runtime appends to the chain through its own
//! writer ([`Flow::recorded`]); [`Step::Emit`] with bytes of a streamed answer; or
//! [`Step::Done`] with the typed answer. Reads are not inside the write's transaction (D1 cannot branch inside a
//! batch): a flow that writes what it read guards its statements, and is told when a
//! guard or key refused them. The clock is passed in ([`ReadContext::now`]), and so is
//! anything random (ids, key bytes) — to the flow's constructor.
//!
//! - [`listing`] — activity listings and an entity's history.
//! - [`activity`] — one stored record.
//! - [`report`] — reports of the tenant, a user or a department subtree.
//! - [`dashboard`] — a user's dashboard: a report and a listing composed.
//! - [`tenant_documents`] — the directory, session, policy and prices as read.
//! - [`tenant_update`] — the optimistic directory, policy and price changes.
//! - [`credentials`] — listing and revoking keys, revoking and rotating viewer tokens.
//! - [`viewer_token`] — issuing a viewer token, idempotent by key.
//! - [`new_key`] — creating an API key, idempotent by key.
//! - [`webhooks`] — listing, creating and removing webhook endpoints, their log.
//! - [`wallet_change`] — grants, adjustments and voids, idempotent by key.
//! - [`credits`] — the balance and the credit pages (grants, alerts, ledger).
//! - [`audit`] — the chain verified, and its head signed.
//! - [`export`] — the log in chain order, streamed.
//! - [`erasure`] — a subject's keys destroyed, the erasure recorded, its rows scrubbed.

pub mod activity;
pub mod audit;
pub mod credentials;
pub mod credits;
pub mod dashboard;
pub mod erasure;
pub mod export;
pub mod listing;
pub mod new_key;
pub mod report;
pub mod tenant_documents;
pub mod tenant_update;
pub mod viewer_token;
pub mod wallet_change;
pub mod webhooks;

use std::collections::BTreeMap;

use crm_core::engine::TenantSnapshot;
use crm_core::{Activity, CoreError, Timestamp};
use crm_store::archive::{Archived, Segment};
use crm_store::ingest::Stored;
use crm_store::{Dialect, Row, Statement, StoreError};

use crate::access::{Denied, Principal};
use crate::error::ApiError;

/// Query parameters, already checked against the endpoint's list (`crate::request`).
pub type Params = BTreeMap<String, String>;

/// What a flow asks of its runtime next.
#[derive(Debug)]
pub enum Step<A> {
    /// Run this read on the tenant's database and hand each row to [`Flow::row`];
    /// then poll again.
    Read(Statement),
    /// Run these statements as one transaction, all or nothing, and report with
    /// [`Flow::written`]; then poll again.
    Write(Vec<Statement>),
    /// Read this archived segment's records from the archive (the edge's R2) and hand
    /// them to [`Flow::fetched`]; then poll again. A runtime without an archive has no
    /// segments to name, so is never asked.
    Fetch(Box<Segment>),
    /// Append this activity to the tenant's chain through the runtime's writer and
    /// hand the stored record to [`Flow::recorded`]; then poll again.
    Record(Box<Record>),
    /// Send these bytes to the client now (a streamed answer); then poll again.
    Emit(Vec<u8>),
    /// The answer; the flow is spent.
    Done(A),
}

/// An activity a flow appends to the chain, with the statements run before it in the
/// same transaction.
#[derive(Debug)]
pub struct Record {
    pub first: Vec<Statement>,
    pub activity: Activity,
    /// The hash of the request, which the record's idempotency compares.
    pub input_hash: String,
}

impl<A> Step<A> {
    /// The answer when done; else the same request, for a flow of another answer that
    /// passes it on.
    pub fn into_answer<B>(self) -> Result<A, Step<B>> {
        match self {
            Step::Done(a) => Ok(a),
            Step::Read(st) => Err(Step::Read(st)),
            Step::Write(sts) => Err(Step::Write(sts)),
            Step::Fetch(segment) => Err(Step::Fetch(segment)),
            Step::Record(record) => Err(Step::Record(record)),
            Step::Emit(bytes) => Err(Step::Emit(bytes)),
        }
    }
}

/// One endpoint's orchestration, driven by a runtime.
pub trait Flow {
    type Answer;
    /// The next step. Errors end the flow.
    fn poll(&mut self) -> Result<Step<Self::Answer>, FlowError>;
    /// One row of the last [`Step::Read`], in the database's order.
    fn row(&mut self, row: &Row) -> Result<(), FlowError>;
    /// The outcome of the last [`Step::Write`]. Flows that never write keep this.
    fn written(&mut self, _outcome: Written) -> Result<(), FlowError> {
        Err(FlowError::Internal(
            "a write was reported to a flow that asked for none".to_owned(),
        ))
    }
    /// The records of the last [`Step::Fetch`]'s segment, or why they could not be
    /// read. Flows that never fetch keep this.
    fn fetched(&mut self, _records: Result<Vec<Archived>, String>) -> Result<(), FlowError> {
        Err(FlowError::Internal(
            "archived records were handed to a flow that asked for none".to_owned(),
        ))
    }
    /// The record of the last [`Step::Record`], as stored. Flows that never record
    /// keep this.
    fn recorded(&mut self, _stored: Stored) -> Result<(), FlowError> {
        Err(FlowError::Internal(
            "a record was handed to a flow that asked for none".to_owned(),
        ))
    }
}

/// How a [`Step::Write`] ended. Other storage failures (busy, full) end the flow in the
/// runtime, which answers them as `crate::storage` classifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed: the rows each statement changed, in order.
    Committed(Vec<u64>),
    /// A guard or a key refused a statement; nothing was written.
    Refused,
}

/// How a flow fails: an answer for the client, or a fault the runtime logs and
/// answers as `internal` without the cause.
#[derive(Debug)]
pub enum FlowError {
    Refused(ApiError),
    Internal(String),
}

impl From<ApiError> for FlowError {
    fn from(e: ApiError) -> FlowError {
        FlowError::Refused(e)
    }
}

impl From<CoreError> for FlowError {
    fn from(e: CoreError) -> FlowError {
        FlowError::Refused(e.into())
    }
}

impl From<Denied> for FlowError {
    fn from(Denied(m): Denied) -> FlowError {
        FlowError::Refused(ApiError::forbidden(m))
    }
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> FlowError {
        match e {
            StoreError::Core(c) => c.into(),
            StoreError::NotFound(m) => FlowError::Refused(ApiError::not_found(m)),
            other => FlowError::Internal(other.to_string()),
        }
    }
}

/// Who reads which tenant, on which database, when: what every read flow starts from.
#[derive(Debug, Clone, Copy)]
pub struct ReadContext<'a> {
    pub dialect: Dialect,
    pub snapshot: &'a TenantSnapshot,
    pub principal: &'a Principal,
    /// The runtime's clock at the request.
    pub now: Timestamp,
}

impl ReadContext<'_> {
    pub fn tenant(&self) -> &str {
        &self.snapshot.tenant_id
    }
}

/// A request's `Idempotency-Key`, scoped to its endpoint, and the digest of its body.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    /// For `operation_id`'s request `body` sent with `key`.
    pub fn of(operation_id: &str, key: &str, body: &serde_json::Value) -> Idempotency {
        Idempotency {
            key: crm_store::idempotency::scoped_key(operation_id, key),
            request_hash: crate::request::digest(body),
        }
    }
}

/// The rows of one read, kept (for reads bounded by a page size).
#[derive(Debug, Default)]
struct Collected(Vec<Row>);

impl Collected {
    fn push(&mut self, row: &Row) {
        self.0.push(row.clone());
    }

    fn take(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.0)
    }
}

/// A flow's internal state after it answered or failed: polling it again is a bug of
/// the driver.
fn spent() -> FlowError {
    FlowError::Internal("a flow was polled after it ended".to_owned())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Flows driven over canned rows: what each runtime's driver does, without I/O.

    use super::*;

    /// The conformance fixture's tenant (`policy`, `directory`).
    pub fn fixture() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../../../tests/conformance/fixtures/acme.json"
        ))
        .expect("the fixture is JSON")
    }

    pub fn snapshot() -> TenantSnapshot {
        let fixture = fixture();
        TenantSnapshot::from_json(
            "t",
            1,
            &fixture["policy"].to_string(),
            &fixture["directory"].to_string(),
        )
        .expect("the fixture compiles")
    }

    pub fn key() -> Principal {
        Principal::Key {
            id: "k".to_owned(),
            scopes: vec![crm_store::keys::KeyScope::Read],
        }
    }

    pub fn admin() -> Principal {
        Principal::Key {
            id: "k".to_owned(),
            scopes: vec![crm_store::keys::KeyScope::Admin],
        }
    }

    /// The context of a request at [`now`].
    pub fn context<'a>(
        dialect: Dialect,
        snapshot: &'a TenantSnapshot,
        principal: &'a Principal,
    ) -> ReadContext<'a> {
        ReadContext {
            dialect,
            snapshot,
            principal,
            now: now(),
        }
    }

    pub fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub fn now() -> Timestamp {
        Timestamp::from_millis(1_750_000_000_000).expect("in range")
    }

    /// Runs `flow`, answering each read with `rows(statement)` (and refusing any
    /// write); also answers the statements it asked for.
    pub fn run<F: Flow>(
        flow: F,
        rows: impl FnMut(&Statement) -> Vec<Row>,
    ) -> (Result<F::Answer, FlowError>, Vec<Statement>) {
        run_writing(flow, rows, |_| Written::Refused)
    }

    /// Like [`run`], each write answered by `write(statements)`; writes are listed
    /// among the statements asked for.
    pub fn run_writing<F: Flow>(
        flow: F,
        rows: impl FnMut(&Statement) -> Vec<Row>,
        write: impl FnMut(&[Statement]) -> Written,
    ) -> (Result<F::Answer, FlowError>, Vec<Statement>) {
        let mut canned = Canned {
            rows,
            write,
            fetch: |_: &Segment| Err("no archive".to_owned()),
            record: |_: &Record| panic!("the flow recorded"),
            emitted: Vec::new(),
        };
        canned.run(flow)
    }

    /// A runtime over canned answers: rows per read, outcomes per write, records per
    /// fetched segment, the stored record per append; what is emitted is kept.
    pub struct Canned<R, W, F, A> {
        pub rows: R,
        pub write: W,
        pub fetch: F,
        pub record: A,
        pub emitted: Vec<u8>,
    }

    impl<R, W, F, A> Canned<R, W, F, A>
    where
        R: FnMut(&Statement) -> Vec<Row>,
        W: FnMut(&[Statement]) -> Written,
        F: FnMut(&Segment) -> Result<Vec<Archived>, String>,
        A: FnMut(&Record) -> Stored,
    {
        /// Drives `flow` to its end; answers the statements it asked for, writes and
        /// an appended record's `first` included.
        pub fn run<Fl: Flow>(
            &mut self,
            mut flow: Fl,
        ) -> (Result<Fl::Answer, FlowError>, Vec<Statement>) {
            let mut asked = Vec::new();
            loop {
                let fed = match flow.poll() {
                    Err(e) => return (Err(e), asked),
                    Ok(Step::Done(a)) => return (Ok(a), asked),
                    Ok(Step::Read(st)) => {
                        let fed = (self.rows)(&st).iter().try_for_each(|row| flow.row(row));
                        asked.push(st);
                        fed
                    }
                    Ok(Step::Write(statements)) => {
                        let outcome = (self.write)(&statements);
                        asked.extend(statements);
                        flow.written(outcome)
                    }
                    Ok(Step::Fetch(segment)) => flow.fetched((self.fetch)(&segment)),
                    Ok(Step::Record(record)) => {
                        let stored = (self.record)(&record);
                        asked.extend(record.first);
                        flow.recorded(stored)
                    }
                    Ok(Step::Emit(bytes)) => {
                        self.emitted.extend(bytes);
                        Ok(())
                    }
                };
                if let Err(e) = fed {
                    return (Err(e), asked);
                }
            }
        }
    }

    pub fn refusal<A: std::fmt::Debug>(r: Result<A, FlowError>) -> ApiError {
        match r {
            Err(FlowError::Refused(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
