//! The group-commit writer: one thread owns the write connection. It takes the first
//! waiting job, drains whatever else is already queued (up to a cap), and commits them
//! all in one transaction — activities, rollups, credit ledger, outbox and hash chain.
//! Callers get their answer only after the commit (defect 5 acknowledged first).
//! A lone request is never held back waiting for company: it commits at once.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crm_core::{Activity, Credits, Outcome};
use rusqlite::{Connection, Savepoint, TransactionBehavior, params};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{activities, rollups, tenants};
use crate::engine::{SharedEngine, Tenant};
use crate::error::{HostError, HostResult};

/// Jobs waiting for the writer. Past this, submitters wait (backpressure), not memory.
const QUEUE_DEPTH: usize = 1024;
/// Activities per transaction. Bigger groups amortise the fsync further but delay the
/// answers of the whole group; 5,000 keeps a group under ~100 ms on this hardware.
const MAX_GROUP_ACTIVITIES: usize = 5_000;

/// An enriched activity waiting to be recorded.
#[derive(Debug, Clone)]
pub struct IngestItem {
    pub activity: Activity,
    /// SHA-256 of the client's input, for idempotent replays.
    pub input_hash: String,
}

/// The answer for one recorded (or replayed) activity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub id: String,
    pub seq: u64,
    pub outcome: String,
    pub credits: Credits,
    pub hash: String,
    pub occurred_at: crm_core::Timestamp,
    /// True when this id was already recorded with the same content.
    pub duplicate: bool,
}

type ExecFn = Box<dyn FnOnce(&Connection) -> HostResult<Box<dyn Any + Send>> + Send>;

enum Job {
    Ingest {
        tenant: Arc<Tenant>,
        items: Vec<IngestItem>,
        received_at: i64,
        reply: oneshot::Sender<HostResult<Vec<Stored>>>,
    },
    Exec {
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
}

#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection, engine: SharedEngine) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(conn, engine, rx))?;
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

    /// Runs `f` in the writer's transaction (serialised with ingest); answers after commit.
    pub async fn exec<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let (reply, answer) = oneshot::channel();
        let run: ExecFn = Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn Any + Send>));
        self.send(Job::Exec { run, reply }).await?;
        let value = answer.await.map_err(|_| stopped())??;
        value
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| HostError::internal(anyhow::anyhow!("writer answered the wrong type")))
    }

    async fn send(&self, job: Job) -> HostResult<()> {
        self.tx.send(job).await.map_err(|_| stopped())
    }
}

fn stopped() -> HostError {
    HostError::Unavailable("the store is shutting down".to_owned())
}

/// Chain head and balance of a tenant as of the transaction in progress.
#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    hash: String,
    balance: Credits,
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

fn run(mut conn: Connection, engine: SharedEngine, mut rx: mpsc::Receiver<Job>) {
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
        let replies = commit_group(&mut conn, &engine, jobs);
        for reply in replies {
            // A caller that went away (client disconnected) no longer needs its answer;
            // its data is committed all the same.
            match reply {
                Reply::Ingest(tx, r) => drop(tx.send(r)),
                Reply::Exec(tx, r) => drop(tx.send(r)),
            }
        }
    }
}

/// One transaction for the group; each job in its own savepoint so one job's refusal
/// (conflict, insufficient balance for a grant...) leaves the others intact.
fn commit_group(conn: &mut Connection, engine: &SharedEngine, jobs: Vec<Job>) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(jobs.len());
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(jobs, &e),
    };
    let mut heads: HashMap<String, Head> = HashMap::new();
    for job in jobs {
        match job {
            Job::Ingest {
                tenant,
                items,
                received_at,
                reply,
            } => {
                let result = in_savepoint(&mut tx, |sp| {
                    ingest(sp, engine, &tenant, items, received_at, &mut heads)
                });
                if result.is_err() {
                    // The savepoint rolled back: cached heads may be ahead of the database.
                    heads.clear();
                }
                replies.push(Reply::Ingest(reply, result));
            }
            Job::Exec { run, reply } => {
                let result = in_savepoint(&mut tx, |sp| run(sp));
                // Exec jobs may change balances or heads behind the cache.
                heads.clear();
                replies.push(Reply::Exec(reply, result));
            }
        }
    }
    match tx.commit() {
        Ok(()) => replies,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            replies
                .into_iter()
                .map(|r| match r {
                    Reply::Ingest(tx, _) => Reply::Ingest(tx, Err(commit_failed(&e))),
                    Reply::Exec(tx, _) => Reply::Exec(tx, Err(commit_failed(&e))),
                })
                .collect()
        }
    }
}

fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Savepoint<'_>) -> HostResult<T>,
) -> HostResult<T> {
    let sp = tx.savepoint()?;
    let value = f(&sp)?;
    sp.commit()?;
    Ok(value)
}

fn commit_failed(e: &rusqlite::Error) -> HostError {
    HostError::Unavailable(format!("the store could not commit: {e}"))
}

fn fail_all(jobs: Vec<Job>, e: &rusqlite::Error) -> Vec<Reply> {
    jobs.into_iter()
        .map(|job| match job {
            Job::Ingest { reply, .. } => Reply::Ingest(reply, Err(commit_failed(e))),
            Job::Exec { reply, .. } => Reply::Exec(reply, Err(commit_failed(e))),
        })
        .collect()
}

/// What to answer for item `i` once the fresh ones are sealed.
enum Answer {
    Fresh(usize),
    Replay(Stored),
    SameAsItem(usize),
}

fn ingest(
    conn: &Connection,
    engine: &SharedEngine,
    tenant: &Tenant,
    items: Vec<IngestItem>,
    received_at: i64,
    heads: &mut HashMap<String, Head>,
) -> HostResult<Vec<Stored>> {
    let tenant_id = tenant.id();
    let mut seen: HashMap<String, (String, usize)> = HashMap::new();
    let mut answers = Vec::with_capacity(items.len());
    let mut fresh = Vec::new();
    let mut fresh_hashes = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let id = item.activity.id.clone();
        let conflict = || HostError::Conflict {
            message: format!("activity `{id}` was already recorded with different content"),
            details: json!({ "id": id, "index": i }),
        };
        if let Some((hash, first)) = seen.get(&id) {
            if *hash != item.input_hash {
                return Err(conflict());
            }
            answers.push(Answer::SameAsItem(*first));
            continue;
        }
        seen.insert(id.clone(), (item.input_hash.clone(), i));
        match activities::find(conn, tenant_id, &id)? {
            Some(existing) if existing.input_hash == item.input_hash => {
                answers.push(Answer::Replay(Stored {
                    id,
                    seq: existing.seq,
                    outcome: existing.outcome,
                    credits: Credits::from_units(existing.credits_units)?,
                    hash: existing.hash,
                    occurred_at: crm_core::Timestamp::from_millis(existing.occurred_at)?,
                    duplicate: true,
                }))
            }
            Some(_) => return Err(conflict()),
            None => {
                answers.push(Answer::Fresh(fresh.len()));
                fresh.push(item.activity);
                fresh_hashes.push(item.input_hash);
            }
        }
    }

    let mut sealed = Vec::new();
    if !fresh.is_empty() {
        let head = match heads.get(tenant_id) {
            Some(h) => h.clone(),
            None => {
                let row = tenants::require(conn, tenant_id)?;
                Head {
                    seq: row.head_seq,
                    hash: row.head_hash,
                    balance: Credits::from_units(row.balance_units)?,
                }
            }
        };
        let (balance, done) =
            engine.settle_and_seal(head.balance, head.seq + 1, &head.hash, fresh)?;
        for (a, input_hash) in done.iter().zip(&fresh_hashes) {
            activities::insert(conn, a, input_hash, received_at)?;
            conn.prepare_cached(
                "INSERT INTO outbox (tenant_id, seq, activity_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![tenant_id, a.seq, a.id, received_at])?;
        }
        rollups::add(conn, tenant_id, &done)?;
        let last = done.last().expect("fresh is not empty");
        let charged = head.balance.units() - balance.units();
        if charged != 0 {
            tenants::ledger_entry(
                conn,
                tenant_id,
                received_at,
                -charged,
                balance.units(),
                "usage",
                &format!("activities seq {}..={}", head.seq + 1, last.seq),
            )?;
        }
        conn.prepare_cached(
            "UPDATE tenants SET head_seq = ?2, head_hash = ?3, balance_units = ?4 WHERE id = ?1",
        )?
        .execute(params![tenant_id, last.seq, last.hash, balance.units()])?;
        heads.insert(
            tenant_id.to_owned(),
            Head {
                seq: last.seq,
                hash: last.hash.clone(),
                balance,
            },
        );
        sealed = done;
    }

    let mut out: Vec<Stored> = Vec::with_capacity(answers.len());
    for answer in answers {
        let stored = match answer {
            Answer::Fresh(k) => {
                let a = &sealed[k];
                Stored {
                    id: a.id.clone(),
                    seq: a.seq,
                    outcome: a.outcome.as_str().to_owned(),
                    credits: a.credits,
                    hash: a.hash.clone(),
                    occurred_at: a.occurred_at,
                    duplicate: false,
                }
            }
            Answer::Replay(s) => s,
            Answer::SameAsItem(i) => Stored {
                duplicate: true,
                ..out[i].clone()
            },
        };
        out.push(stored);
    }
    Ok(out)
}

/// Whether a stored answer means the activity was refused for lack of credits.
pub fn refused_for_credits(s: &Stored) -> bool {
    s.outcome == Outcome::InsufficientCredits.as_str()
}
