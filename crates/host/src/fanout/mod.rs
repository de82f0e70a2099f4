//! Fan-out: the committed activity log delivered to Redis (Stream + PUBLISH) and to an
//! upstream batch API (credit alert events to Redis and to tenants' webhooks, `webhooks.rs`), in order per tenant, at least once (every message carries the
//! activity id so consumers deduplicate). One relay task per sink reads the range
//! (cursor, head] of each tenant (`crm_store::outbox`), delivers it and only then moves
//! the cursor. Failures back off with full jitter per tenant; past the retry budget the
//! upstream's batches go to the NDJSON spool (`crm-host replay` re-sends it); Redis is
//! retried until it is back, the store holding the backlog. When a tenant's backlog
//! passes the bound, ingest answers 503 with `Retry-After` — never silent loss.

mod backoff;
pub mod redis;
mod sink;
pub mod spool;
pub mod upstream;
mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_store::outbox::{self, Outgoing, Pending};
use tokio::sync::Notify;

pub use sink::{Feed, Sink, SinkError};

use crate::error::{HostError, HostResult};
use crate::service::clock;
use crate::store::Store;

/// How often a relay looks for work when nothing woke it (writes of other hosts on a
/// shared PostgreSQL, retries coming due).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Lags kept for the p99 figure.
const LAG_SAMPLES: usize = 10_000;
/// Seconds a client is told to wait when the backlog is full.
const RETRY_AFTER_SECS: u64 = 5;

/// What to deliver where.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub redis_url: Option<String>,
    /// CA certificates (PEM) a `rediss://` server's certificate is verified against
    /// (default: the public roots).
    pub redis_ca: Option<PathBuf>,
    /// Approximate length each tenant's stream is trimmed to.
    pub stream_max_len: u64,
    pub upstream_url: Option<String>,
    /// `Name: value` sent with every upstream request.
    pub upstream_auth: Option<String>,
    /// `whsec_…`: upstream requests are signed as Standard Webhooks says.
    pub upstream_signing_secret: Option<String>,
    pub upstream_timeout: Duration,
    /// Attempts per batch before the upstream's batch is spooled.
    pub retry_budget: u32,
    pub spool_dir: PathBuf,
    /// Undelivered activities per tenant past which ingest answers 503.
    pub max_backlog: u64,
    /// Where tenants' webhook endpoints may point beyond the public internet.
    pub webhook_targets: crm_api::webhook_targets::TargetPolicy,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            redis_url: None,
            redis_ca: None,
            stream_max_len: 1_000_000,
            upstream_url: None,
            upstream_auth: None,
            upstream_signing_secret: None,
            upstream_timeout: upstream::DEFAULT_TIMEOUT,
            retry_budget: 8,
            spool_dir: PathBuf::from("spool"),
            max_backlog: 1_000_000,
            webhook_targets: crm_api::webhook_targets::TargetPolicy::default(),
        }
    }
}

/// Counters of the fan-out (metrics and `readyz` detail).
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub spooled: AtomicU64,
    pub failures: AtomicU64,
    lags: Mutex<VecDeque<u64>>,
}

impl Stats {
    fn lag(&self, ms: u64) {
        if let Ok(mut lags) = self.lags.lock() {
            if lags.len() == LAG_SAMPLES {
                lags.pop_front();
            }
            lags.push_back(ms);
        }
    }

    /// The given quantile (0..=1) of recent delivery lags, in ms.
    pub fn lag_quantile(&self, q: f64) -> Option<u64> {
        let mut v: Vec<u64> = self.lags.lock().ok()?.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Fanout {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sinks: Vec<&'static str>,
    /// The sinks of the activity log (not of alert events): what retention waits for.
    log_sinks: Vec<&'static str>,
    wake: Notify,
    stopped: AtomicBool,
    /// Undelivered activities per sink and tenant, as of each relay's last round.
    backlog: Mutex<HashMap<&'static str, HashMap<String, u64>>>,
    /// Sinks whose last delivery failed (degraded, not unready).
    degraded: Mutex<HashMap<&'static str, String>>,
    max_backlog: u64,
    /// What a new webhook endpoint's URL is checked against.
    webhook_targets: crm_api::webhook_targets::TargetPolicy,
    pub stats: Stats,
}

/// The state of the fan-out, for `readyz` and metrics.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub sinks: Vec<&'static str>,
    pub pending: u64,
    pub delivered: u64,
    pub retries: u64,
    pub spooled: u64,
    pub failures: u64,
    pub lag_p50_ms: Option<u64>,
    pub lag_p99_ms: Option<u64>,
    pub degraded: HashMap<&'static str, String>,
}

/// What one tenant may know of fan-out: its own undelivered activities per sink, and
/// which sinks are degraded (by failure class).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantStatus {
    pub sinks: Vec<&'static str>,
    pub pending: HashMap<&'static str, u64>,
    pub degraded: HashMap<&'static str, String>,
}

impl Fanout {
    /// Starts one relay per configured sink. Without sinks, nothing runs.
    pub async fn start(config: &FanoutConfig, store: Store) -> anyhow::Result<Fanout> {
        let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
        if let Some(url) = &config.redis_url {
            for feed in [Feed::Activities, Feed::Alerts] {
                sinks.push(Arc::new(redis::RedisSink::new(
                    url,
                    config.stream_max_len,
                    config.redis_ca.as_deref(),
                    feed,
                )?));
            }
        }
        if let Some(url) = &config.upstream_url {
            let auth = config
                .upstream_auth
                .as_deref()
                .map(upstream::parse_header)
                .transpose()?;
            let signing = config
                .upstream_signing_secret
                .as_deref()
                .map(upstream::parse_secret)
                .transpose()?;
            for feed in [Feed::Activities, Feed::Alerts] {
                sinks.push(Arc::new(upstream::UpstreamSink::new(
                    url,
                    auth.clone(),
                    signing.clone(),
                    config.upstream_timeout,
                    feed,
                )?));
            }
        }
        let fanout = Fanout {
            inner: Arc::new(Inner {
                sinks: sinks.iter().map(|s| s.name()).collect(),
                log_sinks: sinks
                    .iter()
                    .filter(|s| s.feed() == Feed::Activities)
                    .map(|s| s.name())
                    .collect(),
                max_backlog: config.max_backlog,
                webhook_targets: config.webhook_targets.clone(),
                ..Inner::default()
            }),
        };
        for sink in sinks {
            let relay = Relay {
                sink,
                store: store.clone(),
                fanout: fanout.clone(),
                retry_budget: config.retry_budget.max(1),
                spool_dir: config.spool_dir.clone(),
                retries: HashMap::new(),
            };
            tokio::spawn(relay.run());
        }
        // Webhook endpoints are the tenants' to register: their task always runs.
        webhooks::start(store, fanout.clone(), config.webhook_targets.clone())?;
        Ok(fanout)
    }

    /// Names of the sinks this host delivers the activity log to: records are kept
    /// until each has them.
    pub fn log_sinks(&self) -> Vec<&'static str> {
        self.inner.log_sinks.clone()
    }

    /// What a tenant's webhook URL is checked against.
    pub fn webhook_targets(&self) -> &crm_api::webhook_targets::TargetPolicy {
        &self.inner.webhook_targets
    }

    /// New activities were committed: relays look now rather than at their next poll.
    pub fn notify(&self) {
        self.inner.wake.notify_waiters();
    }

    /// Stops the relays (their current delivery finishes).
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
    }

    /// Refuses new activities of a tenant whose undelivered backlog is full.
    pub fn admit(&self, tenant: &str) -> HostResult<()> {
        let backlog = self
            .inner
            .backlog
            .lock()
            .map(|b| {
                b.values()
                    .filter_map(|m| m.get(tenant))
                    .copied()
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if backlog >= self.inner.max_backlog {
            return Err(HostError::Overloaded {
                code: crm_api::error::ApiCode::Unavailable,
                message: format!(
                    "{backlog} activities of this tenant await delivery to a downstream system; retry later"
                ),
                retry_after: RETRY_AFTER_SECS,
            });
        }
        Ok(())
    }

    /// Sinks whose last delivery failed, with the class of the failure.
    fn degraded(&self) -> HashMap<&'static str, String> {
        self.inner
            .degraded
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// The fan-out figures of one tenant (`GET /v1/metrics`).
    pub fn tenant_status(&self, tenant: &str) -> TenantStatus {
        let pending = self
            .inner
            .backlog
            .lock()
            .map(|b| {
                b.iter()
                    .map(|(sink, by_tenant)| (*sink, by_tenant.get(tenant).copied().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        TenantStatus {
            sinks: self.inner.sinks.clone(),
            pending,
            degraded: self.degraded(),
        }
    }

    pub fn status(&self) -> Status {
        let s = &self.inner.stats;
        let pending = self
            .inner
            .backlog
            .lock()
            .map(|b| b.values().flat_map(|m| m.values()).sum())
            .unwrap_or(0);
        Status {
            sinks: self.inner.sinks.clone(),
            pending,
            delivered: s.delivered.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            spooled: s.spooled.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            lag_p50_ms: s.lag_quantile(0.5),
            lag_p99_ms: s.lag_quantile(0.99),
            degraded: self.degraded(),
        }
    }
}

/// Where a tenant's failing batch stands.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    next: Instant,
}

struct Relay {
    sink: Arc<dyn Sink>,
    store: Store,
    fanout: Fanout,
    retry_budget: u32,
    spool_dir: PathBuf,
    retries: HashMap<String, Retry>,
}

impl Relay {
    async fn run(mut self) {
        let inner = self.fanout.inner.clone();
        while !inner.stopped.load(Ordering::SeqCst) {
            let woken = inner.wake.notified();
            let progressed = match self.round().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(sink = self.sink.name(), error = %e, "fan-out round failed");
                    false
                }
            };
            if !progressed {
                let _ = tokio::time::timeout(POLL_INTERVAL, woken).await;
            }
        }
    }

    /// One pass over the tenants with pending work; true if anything was delivered.
    async fn round(&mut self) -> HostResult<bool> {
        let (name, feed) = (self.sink.name(), self.sink.feed());
        let d = self.store.dialect();
        let pending: Vec<Pending> = self
            .store
            .read(move |c| {
                c.query(&feed.pending(d, name))?
                    .iter()
                    .map(|r| outbox::decode_pending(r).map_err(HostError::from))
                    .collect()
            })
            .await?;
        if let Ok(mut b) = self.fanout.inner.backlog.lock() {
            b.insert(
                name,
                pending
                    .iter()
                    .map(|p| (p.tenant_id.clone(), p.backlog()))
                    .collect(),
            );
        }
        let mut progressed = false;
        for p in pending {
            if self
                .retries
                .get(&p.tenant_id)
                .is_some_and(|r| r.next > Instant::now())
            {
                continue;
            }
            progressed |= self.deliver(&p).await?;
        }
        Ok(progressed)
    }

    async fn deliver(&mut self, p: &Pending) -> HostResult<bool> {
        let (d, tenant, after, limit) = (
            self.store.dialect(),
            p.tenant_id.clone(),
            p.delivered_seq,
            self.sink.batch_size(),
        );
        let feed = self.sink.feed();
        let batch: Vec<Outgoing> = self
            .store
            .read(move |c| {
                c.query(&feed.after(d, &tenant, after, limit))?
                    .iter()
                    .map(|r| feed.decode(&tenant, r).map_err(HostError::from))
                    .collect()
            })
            .await?;
        let Some(last) = batch.last().map(|o| o.seq) else {
            return Ok(false);
        };
        let stats = &self.fanout.inner.stats;
        let result = self.sink.deliver(&p.tenant_id, &batch).await;
        let name = self.sink.name();
        match result {
            Ok(()) => {
                self.advance(&p.tenant_id, last).await?;
                stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let now = clock::now().millis();
                for o in &batch {
                    stats.lag(u64::try_from(now - o.received_at).unwrap_or(0));
                }
                self.retries.remove(&p.tenant_id);
                self.healthy();
                Ok(true)
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                self.degraded(&e);
                let attempts = self.retries.get(&p.tenant_id).map_or(0, |r| r.attempts) + 1;
                let give_up = self.sink.spools()
                    && (matches!(e, SinkError::Reject(_)) || attempts >= self.retry_budget);
                if give_up {
                    let count = batch.len() as u64;
                    tracing::warn!(sink = name, tenant = %p.tenant_id, error = %e, count = batch.len(), "spooling a batch");
                    let (dir, tenant) = (self.spool_dir.clone(), p.tenant_id.clone());
                    let spooled =
                        tokio::task::spawn_blocking(move || spool::append(&dir, &tenant, &batch))
                            .await
                            .map_err(|e| HostError::internal(anyhow::anyhow!("spool task: {e}")))?;
                    match spooled {
                        Ok(()) => {
                            self.advance(&p.tenant_id, last).await?;
                            stats.spooled.fetch_add(count, Ordering::Relaxed);
                            self.retries.remove(&p.tenant_id);
                            return Ok(true);
                        }
                        Err(io) => {
                            tracing::error!(error = %io, "cannot write the spool; will retry")
                        }
                    }
                }
                stats.retries.fetch_add(1, Ordering::Relaxed);
                self.retries.insert(
                    p.tenant_id.clone(),
                    Retry {
                        attempts,
                        next: Instant::now() + backoff::delay(attempts),
                    },
                );
                Ok(false)
            }
        }
    }

    async fn advance(&self, tenant: &str, seq: u64) -> HostResult<()> {
        let (d, tenant, name, now) = (
            self.store.dialect(),
            tenant.to_owned(),
            self.sink.name(),
            clock::now().millis(),
        );
        self.store
            .write(None, move |c| {
                c.execute(&outbox::advance(d, &tenant, name, seq, now))?;
                Ok(())
            })
            .await
    }

    /// Marks the sink degraded. `/readyz` is public, so it names only the class of the
    /// failure: the error's text can carry the sink's URL or address (logged instead).
    fn degraded(&self, e: &SinkError) {
        tracing::warn!(sink = self.sink.name(), error = %e, "delivery failed");
        if let Ok(mut d) = self.fanout.inner.degraded.lock() {
            d.insert(self.sink.name(), e.class().to_owned());
        }
    }

    fn healthy(&self) {
        if let Ok(mut d) = self.fanout.inner.degraded.lock() {
            d.remove(self.sink.name());
        }
    }
}
