//! What one invocation — a request, a queue batch, a cron pass — spends of the
//! platform's per-invocation allowances, counted and enforced here because
//! `wrangler dev` enforces none of them: D1 queries (each statement of a `batch()`
//! counts) and subrequests (fetches, R2 and Queues operations, D1 calls). A flow asks
//! [`queries_left`] before it starts a unit of work and splits or defers what does not
//! fit; a call past an allowance is refused here, as production would refuse it, so
//! the tests find any path that would fail there. The isolate's wasm memory high-water
//! mark is sampled after every step of every invocation (`GET /v1/metrics`).
//!
//! Invocations interleave in one isolate, so a count cannot be a plain global: each
//! entry point runs its future inside [`run`], which makes its own counters current
//! while it is polled. Everything a poll does before it yields is that invocation's.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crm_api::status::IsolateUsage;
use worker::Env;

use crate::http::{ApiResult, Failure};

/// D1 queries per invocation on the paid plan (Cloudflare's D1 limits page).
pub const MAX_QUERIES: u64 = 1_000;
/// Operations on external services per invocation: 1,000 on the paid plan's older
/// limits page (newer pages say 10,000; we design for the smaller).
pub const MAX_SUBREQUESTS: u64 = 1_000;
/// An isolate's memory, shared by every request it serves at once (wasm linear memory
/// and the JavaScript heap together; only the first is ours to measure).
pub const ISOLATE_MEMORY_BYTES: u64 = 128 * 1024 * 1024;

/// An invocation's allowances. The variables `INVOCATION_QUERIES` and
/// `INVOCATION_SUBREQUESTS` can only lower them (tests show that work splits).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    queries: u64,
    subrequests: u64,
}

impl Limits {
    pub fn of(env: &Env) -> Limits {
        let lowered = |name: &str, max: u64| {
            env.var(name)
                .ok()
                .and_then(|v| v.to_string().parse::<u64>().ok())
                .map_or(max, |v| v.min(max))
        };
        Limits {
            queries: lowered("INVOCATION_QUERIES", MAX_QUERIES),
            subrequests: lowered("INVOCATION_SUBREQUESTS", MAX_SUBREQUESTS),
        }
    }
}

struct Spent {
    limits: Limits,
    queries: Cell<u64>,
    subrequests: Cell<u64>,
    /// Whether a call was refused: what failed then failed for the budget, not D1.
    refused: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Spent>>> = const { RefCell::new(None) };
    /// The most any finished invocation of this isolate spent, and its memory.
    static PEAK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    static MEMORY_HIGH_WATER: Cell<u64> = const { Cell::new(0) };
}

/// A future run as one invocation (see the module's note).
struct Metered<'a, T> {
    inner: Pin<Box<dyn Future<Output = T> + 'a>>,
    spent: Rc<Spent>,
}

impl<T> Future for Metered<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let previous = CURRENT.replace(Some(self.spent.clone()));
        let polled = self.inner.as_mut().poll(cx);
        CURRENT.set(previous);
        let memory = memory_bytes();
        let high = MEMORY_HIGH_WATER.get();
        MEMORY_HIGH_WATER.set(high.max(memory));
        // Once per new high past half the isolate, not on every poll after it (wasm
        // memory never shrinks).
        if memory > high && memory > ISOLATE_MEMORY_BYTES / 2 {
            worker::console_warn!("this isolate's wasm memory grew to {memory} bytes");
        }
        if polled.is_ready() {
            let (q, s) = PEAK.get();
            PEAK.set((
                q.max(self.spent.queries.get()),
                s.max(self.spent.subrequests.get()),
            ));
        }
        polled
    }
}

/// Runs `work` as one invocation with `limits`.
pub async fn run<T>(limits: Limits, work: impl Future<Output = T>) -> T {
    Metered {
        inner: Box::pin(work),
        spent: Rc::new(Spent {
            limits,
            queries: Cell::new(0),
            subrequests: Cell::new(0),
            refused: Cell::new(false),
        }),
    }
    .await
}

fn with_current<R>(f: impl FnOnce(&Spent) -> R) -> Option<R> {
    CURRENT.with_borrow(|c| c.as_deref().map(f))
}

/// Spends `statements` D1 queries in one call (one subrequest), or refuses.
pub fn spend_queries(statements: usize) -> ApiResult<()> {
    let statements = statements as u64;
    with_current(|s| {
        let queries = s.queries.get() + statements;
        if queries > s.limits.queries {
            s.refused.set(true);
            return Err(Failure::internal(format!(
                "this invocation would make {queries} D1 queries; it may make {}",
                s.limits.queries
            )));
        }
        spend(s, 1)?;
        s.queries.set(queries);
        Ok(())
    })
    .unwrap_or(Ok(()))
}

/// Spends one subrequest (a fetch, an R2 or Queues operation), or refuses.
pub fn spend_subrequest() -> ApiResult<()> {
    with_current(|s| spend(s, 1)).unwrap_or(Ok(()))
}

fn spend(s: &Spent, n: u64) -> ApiResult<()> {
    let subrequests = s.subrequests.get() + n;
    if subrequests > s.limits.subrequests {
        s.refused.set(true);
        return Err(Failure::internal(format!(
            "this invocation would make {subrequests} subrequests; it may make {}",
            s.limits.subrequests
        )));
    }
    s.subrequests.set(subrequests);
    Ok(())
}

/// D1 queries this invocation may still make (unbounded outside an invocation).
pub fn queries_left() -> u64 {
    with_current(|s| {
        s.limits
            .queries
            .saturating_sub(s.queries.get())
            .min(s.limits.subrequests.saturating_sub(s.subrequests.get()))
    })
    .unwrap_or(u64::MAX)
}

/// Whether this invocation has been refused a call (its allowance is spent).
pub fn exhausted() -> bool {
    with_current(|s| s.refused.get()).unwrap_or(false)
}

/// D1 queries this invocation has made.
pub fn queries_spent() -> u64 {
    with_current(|s| s.queries.get()).unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn memory_bytes() -> u64 {
    /// Bytes per wasm memory page.
    const WASM_PAGE_BYTES: u64 = 65_536;
    core::arch::wasm32::memory_size::<0>() as u64 * WASM_PAGE_BYTES
}

/// A native build of the worker (clippy over the workspace) has no linear memory.
#[cfg(not(target_arch = "wasm32"))]
fn memory_bytes() -> u64 {
    0
}

/// This isolate's peaks so far against `limits`, for `GET /v1/metrics`.
pub fn usage(limits: Limits) -> IsolateUsage {
    let (queries, subrequests) = PEAK.get();
    IsolateUsage {
        memory_high_water_bytes: MEMORY_HIGH_WATER.get().max(memory_bytes()),
        memory_limit_bytes: ISOLATE_MEMORY_BYTES,
        peak_invocation_queries: queries,
        peak_invocation_subrequests: subrequests,
        max_invocation_queries: limits.queries,
        max_invocation_subrequests: limits.subrequests,
    }
}
