//! Engine work off the async runtime: a fixed set of threads, each with its own engine
//! instances (the component keeps one instance per OS thread), fed by a bounded queue.
//! A long report or a large batch occupies one of these threads, never a runtime thread,
//! so health checks and other requests keep being served; when every thread is busy and
//! the queue is full, callers get 503 with `Retry-After` instead of piling up.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use crm_api::error::ApiCode;

use super::{Engine, EngineResult, SharedEngine};
use crate::error::{HostError, HostResult};

/// Jobs waiting for an engine thread, per thread: enough to absorb a burst of batches,
/// few enough that a caller learns quickly that the host is saturated.
const QUEUED_PER_THREAD: usize = 64;

type Job = Box<dyn FnOnce(&dyn Engine) + Send>;

/// The engine threads. Cloning shares them.
#[derive(Debug, Clone)]
pub struct EnginePool {
    jobs: SyncSender<Job>,
    threads: usize,
}

impl EnginePool {
    /// Starts `threads` engine threads over `engine`.
    pub fn start(engine: SharedEngine, threads: usize) -> std::io::Result<EnginePool> {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads * QUEUED_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let (engine, queue) = (engine.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("engine-{i}"))
                .spawn(move || serve(&*engine, &queue))?;
        }
        Ok(EnginePool { jobs, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on an engine thread and waits for its answer without blocking the
    /// runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Engine) -> EngineResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |engine| {
            // The caller may have gone away (client disconnected): nothing to tell.
            let _ = tx.send(work(engine));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(HostError::Overloaded {
                    code: ApiCode::Unavailable,
                    message: "every engine thread is busy; retry shortly".to_owned(),
                    retry_after: 1,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(HostError::Unavailable(
                    "the engine threads have stopped".to_owned(),
                ));
            }
        }
        Ok(rx
            .await
            .map_err(|_| HostError::internal(anyhow::anyhow!("an engine job panicked")))??)
    }
}

fn serve(engine: &dyn Engine, queue: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take a job, not while running it.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // every sender is gone: the host is shutting down
        };
        // A panicking job fails its caller alone (its answer channel is dropped);
        // the thread and its instances go on serving.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(engine)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NativeEngine;

    fn pool(threads: usize) -> EnginePool {
        EnginePool::start(Arc::new(NativeEngine), threads).expect("threads start")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_on_an_engine_thread_not_the_callers() {
        let caller = std::thread::current().id();
        let name = pool(1)
            .run(move |_| {
                assert_ne!(std::thread::current().id(), caller);
                Ok(std::thread::current().name().map(str::to_owned))
            })
            .await
            .expect("runs");
        assert_eq!(name.as_deref(), Some("engine-0"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_answers_503_and_a_panicking_job_fails_alone() {
        let p = pool(1);
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        // Occupy the thread, then fill the queue.
        let blocker = {
            let release = release.clone();
            let p = p.clone();
            tokio::spawn(async move {
                p.run(move |_| {
                    let _ = release.lock().expect("lock").recv();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        let mut waiting = Vec::new();
        let refused = loop {
            let p2 = p.clone();
            match p2.jobs.try_send(Box::new(|_| {})) {
                Ok(()) => waiting.push(()),
                Err(_) => break p.run(|_| Ok(())).await,
            }
            assert!(
                waiting.len() <= QUEUED_PER_THREAD + 1,
                "the queue is bounded"
            );
        };
        match refused {
            Err(HostError::Overloaded { retry_after, .. }) => assert_eq!(retry_after, 1),
            other => panic!("expected 503, got {other:?}"),
        }
        hold.send(()).expect("blocker waits");
        blocker.await.expect("joins").expect("blocker ran");
        let panicked = p
            .run(|_| -> EngineResult<()> { panic!("a bug in one job") })
            .await;
        assert!(matches!(panicked, Err(HostError::Internal(_))));
        assert_eq!(p.run(|_| Ok(7)).await.expect("the thread survived"), 7);
    }
}
