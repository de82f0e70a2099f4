//! The group-commit writer: one thread owns the write connection. It takes the first
//! waiting job, drains whatever else is already queued (up to a cap), and commits them
//! all in one transaction; each job runs in its own savepoint, so one job's refusal
//! leaves the others intact. Callers get their answer only after the commit (defect
//! 5 acknowledged first). A lone request is never held back waiting for company.
//!
//! Supervision: a job that panics fails alone (its savepoint is rolled back, the
//! group commits the rest); a broken connection is replaced before the next group.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crm_store::tenants;
use tokio::sync::{mpsc, oneshot};

use super::driver::{Conn, Connector, DbError};
use super::ingest::{self, IngestItem};
use crate::engine::Tenant;
use crate::error::{HostError, HostResult};
use crm_store::ingest::Stored;

/// Jobs waiting for the writer. Past this, submitters wait (backpressure), not memory.
const QUEUE_DEPTH: usize = 1024;
/// Activities per transaction. Bigger groups amortise the fsync further but delay the
/// answers of the whole group; 5,000 keeps a group under ~100 ms on this hardware.
const MAX_GROUP_ACTIVITIES: usize = 5_000;

type ExecFn = Box<dyn FnOnce(&mut dyn Conn) -> HostResult<Box<dyn Any + Send>> + Send>;

enum Job {
    Ingest {
        tenant: Arc<Tenant>,
        items: Vec<IngestItem>,
        received_at: i64,
        reply: oneshot::Sender<HostResult<Vec<Stored>>>,
    },
    Exec {
        /// The tenant whose row the job locks, if any (PostgreSQL lock order).
        tenant: Option<String>,
        run: ExecFn,
        reply: oneshot::Sender<HostResult<Box<dyn Any + Send>>>,
    },
}

impl Job {
    fn weight(&self) -> usize {
        match self {
            Job::Ingest { items, .. } => items.len().max(1),
            Job::Exec { .. } => 1,
        }
    }

    fn tenant(&self) -> Option<&str> {
        match self {
            Job::Ingest { tenant, .. } => Some(tenant.id()),
            Job::Exec { tenant, .. } => tenant.as_deref(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(connector: Arc<dyn Connector>, conn: Box<dyn Conn>) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || run(connector, conn, rx))?;
        Ok(Writer { tx })
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Records enriched activities; answers after commit, one `Stored` per item.
    pub async fn ingest(
        &self,
        tenant: Arc<Tenant>,
        items: Vec<IngestItem>,
        received_at: i64,
    ) -> HostResult<Vec<Stored>> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Ingest {
            tenant,
            items,
            received_at,
            reply,
        })
        .await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` in the writer's transaction (serialised with ingest); answers after
    /// commit. `tenant` names the tenant row `f` locks, if any.
    pub async fn exec<T: Send + 'static>(
        &self,
        tenant: Option<&str>,
        f: impl FnOnce(&mut dyn Conn) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let (job, answer) = exec_job(tenant, f);
        self.send(job).await?;
        unbox(answer.await.map_err(|_| stopped())??)
    }

    /// [`Writer::exec`] for a thread outside the async runtime (a flow's driver).
    pub fn exec_blocking<T: Send + 'static>(
        &self,
        tenant: Option<&str>,
        f: impl FnOnce(&mut dyn Conn) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let (job, answer) = exec_job(tenant, f);
        self.tx.blocking_send(job).map_err(|_| stopped())?;
        unbox(answer.blocking_recv().map_err(|_| stopped())??)
    }

    async fn send(&self, job: Job) -> HostResult<()> {
        self.tx.send(job).await.map_err(|_| stopped())
    }
}

type ExecAnswer = oneshot::Receiver<HostResult<Box<dyn Any + Send>>>;

fn exec_job<T: Send + 'static>(
    tenant: Option<&str>,
    f: impl FnOnce(&mut dyn Conn) -> HostResult<T> + Send + 'static,
) -> (Job, ExecAnswer) {
    let (reply, answer) = oneshot::channel();
    let run: ExecFn = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
    let job = Job::Exec {
        tenant: tenant.map(str::to_owned),
        run,
        reply,
    };
    (job, answer)
}

fn unbox<T: 'static>(value: Box<dyn Any + Send>) -> HostResult<T> {
    value
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| HostError::internal(anyhow::anyhow!("writer answered the wrong type")))
}

fn stopped() -> HostError {
    HostError::Unavailable("the store is shutting down".to_owned())
}

enum Reply {
    Ingest(
        oneshot::Sender<HostResult<Vec<Stored>>>,
        HostResult<Vec<Stored>>,
    ),
    Exec(
        oneshot::Sender<HostResult<Box<dyn Any + Send>>>,
        HostResult<Box<dyn Any + Send>>,
    ),
}

impl Reply {
    fn failed(self, e: &DbError) -> Reply {
        match self {
            Reply::Ingest(tx, _) => Reply::Ingest(tx, Err(HostError::from(clone_db(e)))),
            Reply::Exec(tx, _) => Reply::Exec(tx, Err(HostError::from(clone_db(e)))),
        }
    }

    fn send(self) {
        // A caller that went away (client disconnected) no longer needs its answer;
        // its data is committed all the same.
        match self {
            Reply::Ingest(tx, r) => drop(tx.send(r)),
            Reply::Exec(tx, r) => drop(tx.send(r)),
        }
    }
}

fn clone_db(e: &DbError) -> DbError {
    match e {
        DbError::Busy(m) => DbError::Busy(m.clone()),
        DbError::Full(m) => DbError::Full(m.clone()),
        DbError::Constraint(m) => DbError::Constraint(m.clone()),
        DbError::Other(m) => DbError::Other(m.clone()),
    }
}

fn run(connector: Arc<dyn Connector>, mut conn: Box<dyn Conn>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut weight = first.weight();
        let mut jobs = vec![first];
        while weight < MAX_GROUP_ACTIVITIES {
            match rx.try_recv() {
                Ok(job) => {
                    weight += job.weight();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if conn.is_broken() {
            match connector.connect() {
                Ok(fresh) => conn = fresh,
                Err(e) => {
                    tracing::error!(error = %e, "the writer cannot reconnect");
                    fail_all(jobs, &e);
                    continue;
                }
            }
        }
        for reply in commit_group(conn.as_mut(), jobs) {
            reply.send();
        }
    }
}

fn fail_all(jobs: Vec<Job>, e: &DbError) {
    for reply in failed(jobs, e) {
        reply.send();
    }
}

/// The same failure for every job of a group that could not run.
fn failed(jobs: Vec<Job>, e: &DbError) -> Vec<Reply> {
    jobs.into_iter()
        .map(|job| match job {
            Job::Ingest { reply, .. } => Reply::Ingest(reply, Err(HostError::from(clone_db(e)))),
            Job::Exec { reply, .. } => Reply::Exec(reply, Err(HostError::from(clone_db(e)))),
        })
        .collect()
}

/// One transaction for the group; each job in its own savepoint.
fn commit_group(conn: &mut dyn Conn, jobs: Vec<Job>) -> Vec<Reply> {
    if let Err(e) = conn.begin() {
        return failed(jobs, &e);
    }
    if let Err(e) = lock_tenants(conn, &jobs) {
        let _ = conn.batch("ROLLBACK");
        return failed(jobs, &e);
    }
    let mut replies = Vec::with_capacity(jobs.len());
    let mut heads = ingest::Heads::new();
    // Set when the database rolled the whole transaction back by itself (SQLite does
    // on a full disk): every job of the group failed, including those before.
    let mut lost: Option<DbError> = None;
    for job in jobs {
        if let Some(e) = &lost {
            replies.extend(failed(vec![job], e));
            continue;
        }
        match job {
            Job::Ingest {
                tenant,
                items,
                received_at,
                reply,
            } => {
                let result = in_savepoint(conn, |c| {
                    ingest::record(c, &tenant, items, received_at, &mut heads)
                });
                if result.is_err() {
                    // The savepoint rolled back: cached heads may be ahead of the database.
                    heads.clear();
                }
                lost = rolled_back(conn, result.as_ref().err());
                replies.push(Reply::Ingest(reply, result));
            }
            Job::Exec { run, reply, .. } => {
                let result = in_savepoint(conn, run);
                // Exec jobs may change balances or heads behind the cache.
                heads.clear();
                lost = rolled_back(conn, result.as_ref().err());
                replies.push(Reply::Exec(reply, result));
            }
        }
        if let Some(e) = &lost {
            tracing::error!(error = %e, "the database rolled the group back");
            replies = replies.into_iter().map(|r| r.failed(e)).collect();
        }
    }
    if lost.is_some() {
        return replies;
    }
    let committing = std::time::Instant::now();
    match conn.batch("COMMIT") {
        Ok(()) => {
            crate::service::stats::Stats::commit(committing.elapsed().as_secs_f64());
            replies
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            let _ = conn.batch("ROLLBACK");
            replies.into_iter().map(|r| r.failed(&e)).collect()
        }
    }
}

/// PostgreSQL: every tenant row the group appends to, locked in id order before any
/// job runs, so concurrent hosts serialise per tenant and never deadlock.
fn lock_tenants(conn: &mut dyn Conn, jobs: &[Job]) -> Result<(), DbError> {
    let d = conn.dialect();
    if d.for_update().is_empty() {
        return Ok(());
    }
    let mut ids: Vec<&str> = jobs.iter().filter_map(Job::tenant).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        conn.query(&tenants::lock(d, id))?;
    }
    Ok(())
}

/// Whether the transaction is gone (the database rolled it back after `error`), and
/// the error every job of the group then answers: 507 for a full disk, else 503.
fn rolled_back(conn: &dyn Conn, error: Option<&HostError>) -> Option<DbError> {
    if conn.in_transaction() {
        return None;
    }
    Some(match error {
        Some(HostError::InsufficientStorage(m)) => DbError::Full(m.clone()),
        _ => DbError::Busy("the transaction was rolled back; retry".to_owned()),
    })
}

fn in_savepoint<T>(
    conn: &mut dyn Conn,
    f: impl FnOnce(&mut dyn Conn) -> HostResult<T>,
) -> HostResult<T> {
    conn.batch("SAVEPOINT job")?;
    let result = match catch_unwind(AssertUnwindSafe(|| f(&mut *conn))) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a store job panicked; it fails alone");
            Err(HostError::internal(anyhow::anyhow!(
                "store job panicked: {what}"
            )))
        }
    };
    match result {
        Ok(v) => {
            conn.batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            // Unless the database already rolled the whole transaction back.
            if conn.in_transaction() {
                conn.batch("ROLLBACK TO job")?;
                conn.batch("RELEASE job")?;
            }
            Err(e)
        }
    }
}
