//! Counters of the running host. Each event goes to the `metrics` facade (rendered for
//! Prometheus at `/metrics`) and to a few atomics kept here for `/v1/metrics` (JSON),
//! so the error rate is computed from counted requests (defect 18 never counted any).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

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

#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    in_flight: AtomicU64,
    ingested: AtomicU64,
    refused_activities: AtomicU64,
    checks: AtomicU64,
    credits_units: AtomicU64,
}

/// `/v1/metrics`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// Share of answered requests that were errors (4xx and 5xx), 0..=1.
    pub error_rate: f64,
    /// Share of answered requests that were server faults (5xx), 0..=1.
    pub server_error_rate: f64,
    pub in_flight: u64,
    pub activities_recorded: u64,
    /// Recorded as denied, failed or insufficient_credits.
    pub activities_refused: u64,
    pub permission_checks: u64,
    pub credits_deducted: crm_core::Credits,
}

impl Stats {
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("crm_http_in_flight").increment(1.0);
    }

    pub fn request_finished(&self, status: u16) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("crm_http_in_flight").decrement(1.0);
        let class = match status {
            500.. => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
                "5xx"
            }
            400..=499 => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
                "4xx"
            }
            _ => "2xx",
        };
        metrics::counter!("crm_http_requests_total", "class" => class).increment(1);
    }

    /// An error answer, by its stable code.
    pub fn refused(code: &'static str) {
        metrics::counter!("crm_errors_total", "code" => code).increment(1);
    }

    pub fn recorded(&self, outcomes: impl Iterator<Item = (crm_core::Outcome, i64)>, batch: usize) {
        metrics::histogram!("crm_ingest_batch_size").record(batch as f64);
        for (outcome, credits) in outcomes {
            self.ingested.fetch_add(1, Ordering::Relaxed);
            if outcome != crm_core::Outcome::Success {
                self.refused_activities.fetch_add(1, Ordering::Relaxed);
            }
            let units = u64::try_from(credits).unwrap_or(0);
            self.credits_units.fetch_add(units, Ordering::Relaxed);
            metrics::counter!("crm_activities_recorded_total", "outcome" => outcome.as_str())
                .increment(1);
            metrics::counter!("crm_credits_deducted_units_total").increment(units);
        }
    }

    pub fn checked(&self, granted: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let decision = if granted { "allow" } else { "deny" };
        metrics::counter!("crm_permission_checks_total", "decision" => decision).increment(1);
    }

    pub fn commit(seconds: f64) {
        metrics::histogram!("crm_commit_seconds").record(seconds);
    }

    pub fn snapshot(&self) -> Snapshot {
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
            in_flight: self.in_flight.load(Ordering::Relaxed),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defect_18_the_error_rate_counts_errors() {
        let s = Stats::default();
        for status in [200, 201, 400, 404, 500] {
            s.request_started();
            s.request_finished(status);
        }
        let snap = s.snapshot();
        assert_eq!(
            (snap.requests, snap.client_errors, snap.server_errors),
            (5, 2, 1)
        );
        assert!((snap.error_rate - 0.6).abs() < 1e-9);
        assert!((snap.server_error_rate - 0.2).abs() < 1e-9);
        assert_eq!(snap.in_flight, 0);
    }
}
