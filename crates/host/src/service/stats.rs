//! Counters of the running host. Each event goes to the `metrics` facade (rendered for
//! Prometheus at `/metrics`) and to a few atomics kept here for `/v1/metrics` (JSON),
//! so the error rate is computed from counted requests (defect 18 never counted any).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Commit latency buckets (seconds): fsync-bound, so sub-millisecond to a second.
const COMMIT_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
];
/// Batch size buckets (activities per request).
const BATCH_BUCKETS: [f64; 8] = [1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 5_000.0];

/// The process's Prometheus recorder (one per process, whatever the number of servers).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("crm_commit_seconds".to_owned()),
                &COMMIT_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("crm_ingest_batch_size".to_owned()),
                    &BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .install_recorder()
            .expect("the recorder is installed once per process")
    })
}

/// Counters of answered requests and recorded work: one set for the process (the
/// operator's `/metrics`) and one per tenant (a tenant admin's `/v1/metrics`, which
/// must show that tenant alone).
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    ingested: AtomicU64,
    refused_activities: AtomicU64,
    checks: AtomicU64,
    credits_units: AtomicU64,
}

/// Tenants whose counters are kept; past it the map starts afresh (counters are a view
/// for dashboards, not a ledger — the activity log is).
const MAX_COUNTED_TENANTS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Stats {
    process: Counts,
    in_flight: AtomicU64,
    tenants: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Counts>>>,
}

/// Where a request's tenant is noted once its credential is checked, so the request
/// counter attributes the answer to it (`api::count` puts one in every request).
#[derive(Debug, Clone, Default)]
pub struct TenantSlot(pub std::sync::Arc<OnceLock<String>>);

/// A tenant's (or the process's) counts, as `/v1/metrics` answers them.
pub type Snapshot = crm_api::status::RequestCounts;

impl Counts {
    fn finished(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            500.. => self.server_errors.fetch_add(1, Ordering::Relaxed),
            400..=499 => self.client_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    fn recorded(&self, outcome: crm_core::Outcome, units: u64) {
        self.ingested.fetch_add(1, Ordering::Relaxed);
        if outcome != crm_core::Outcome::Success {
            self.refused_activities.fetch_add(1, Ordering::Relaxed);
        }
        self.credits_units.fetch_add(units, Ordering::Relaxed);
    }

    fn snapshot(&self, in_flight: u64) -> Snapshot {
        let requests = self.requests.load(Ordering::Relaxed);
        let client = self.client_errors.load(Ordering::Relaxed);
        let server = self.server_errors.load(Ordering::Relaxed);
        let rate = |n: u64| {
            if requests == 0 {
                0.0
            } else {
                n as f64 / requests as f64
            }
        };
        Snapshot {
            requests,
            client_errors: client,
            server_errors: server,
            error_rate: rate(client + server),
            server_error_rate: rate(server),
            in_flight,
            activities_recorded: self.ingested.load(Ordering::Relaxed),
            activities_refused: self.refused_activities.load(Ordering::Relaxed),
            permission_checks: self.checks.load(Ordering::Relaxed),
            credits_deducted: crm_core::Credits::from_units(
                i64::try_from(self.credits_units.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            )
            .unwrap_or_default(),
        }
    }
}

impl Stats {
    fn tenant(&self, tenant: &str) -> Option<std::sync::Arc<Counts>> {
        let mut map = self.tenants.lock().ok()?;
        if map.len() >= MAX_COUNTED_TENANTS && !map.contains_key(tenant) {
            map.clear();
        }
        Some(map.entry(tenant.to_owned()).or_default().clone())
    }

    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("crm_http_in_flight").increment(1.0);
    }

    /// An answered request; `tenant` when its credential named one.
    pub fn request_finished(&self, status: u16, tenant: Option<&str>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.process.finished(status);
        if let Some(counts) = tenant.and_then(|t| self.tenant(t)) {
            counts.finished(status);
        }
        metrics::gauge!("crm_http_in_flight").decrement(1.0);
        let class = match status {
            500.. => "5xx",
            400..=499 => "4xx",
            _ => "2xx",
        };
        metrics::counter!("crm_http_requests_total", "class" => class).increment(1);
    }

    pub fn refused(code: &'static str) {
        metrics::counter!("crm_errors_total", "code" => code).increment(1);
    }

    pub fn recorded(
        &self,
        tenant: &str,
        outcomes: impl Iterator<Item = (crm_core::Outcome, i64)>,
        batch: usize,
    ) {
        metrics::histogram!("crm_ingest_batch_size").record(batch as f64);
        let counts = self.tenant(tenant);
        for (outcome, credits) in outcomes {
            let units = u64::try_from(credits).unwrap_or(0);
            self.process.recorded(outcome, units);
            if let Some(c) = &counts {
                c.recorded(outcome, units);
            }
            metrics::counter!("crm_activities_recorded_total", "outcome" => outcome.as_str())
                .increment(1);
            metrics::counter!("crm_credits_deducted_units_total").increment(units);
        }
    }

    pub fn checked(&self, tenant: &str, granted: bool) {
        self.process.checks.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.tenant(tenant) {
            c.checks.fetch_add(1, Ordering::Relaxed);
        }
        let decision = if granted { "allow" } else { "deny" };
        metrics::counter!("crm_permission_checks_total", "decision" => decision).increment(1);
    }

    pub fn commit(seconds: f64) {
        metrics::histogram!("crm_commit_seconds").record(seconds);
    }

    /// The whole process (the operator's view).
    pub fn snapshot(&self) -> Snapshot {
        self.process
            .snapshot(self.in_flight.load(Ordering::Relaxed))
    }

    /// One tenant's requests and work (its admin's view); nothing of other tenants.
    pub fn tenant_snapshot(&self, tenant: &str) -> Snapshot {
        let counts = self.tenant(tenant).unwrap_or_default();
        counts.snapshot(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defect_18_the_error_rate_counts_errors() {
        let s = Stats::default();
        for status in [200, 201, 400, 404, 500] {
            s.request_started();
            s.request_finished(status, Some("t-a"));
        }
        let snap = s.snapshot();
        assert_eq!(
            (snap.requests, snap.client_errors, snap.server_errors),
            (5, 2, 1)
        );
        assert!((snap.error_rate - 0.6).abs() < 1e-9);
        assert!((snap.server_error_rate - 0.2).abs() < 1e-9);
        assert_eq!(snap.in_flight, 0);
        s.request_started();
        s.request_finished(400, Some("t-b"));
        s.recorded("t-b", std::iter::once((crm_core::Outcome::Denied, 0)), 1);
        assert_eq!(s.snapshot().requests, 6, "the process counts every tenant");
        // Each tenant sees its own requests and work only.
        let a = s.tenant_snapshot("t-a");
        assert_eq!(
            (a.requests, a.client_errors, a.activities_recorded),
            (5, 2, 0)
        );
        let b = s.tenant_snapshot("t-b");
        assert_eq!(
            (b.requests, b.client_errors, b.activities_refused),
            (1, 1, 1)
        );
        assert_eq!(s.tenant_snapshot("t-none").requests, 0);
    }
}
