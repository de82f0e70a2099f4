//! Bounds on what requests may hold at once, so hostile or bursty clients cannot take
//! the host's memory or starve other tenants: bytes of request bodies in flight (large
//! and small bodies from separate budgets), requests in flight per credential, an
//! optional per-credential rate, and activities queued for the writer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HostError;
use crm_api::error::ApiCode;

pub use crm_api::endpoints::{LARGE_BODY, SMALL_BODY};
/// Bytes of large bodies held at once. A parsed body takes a few times its size, so
/// three 16 MiB bodies keep the host well under 300 MB; more wait their turn (503).
pub const LARGE_BUDGET: usize = 48 << 20;
/// Bytes of small bodies held at once: a separate budget, so big uploads never starve
/// ordinary requests.
pub const SMALL_BUDGET: usize = 32 << 20;
/// Bytes of large bodies one tenant may hold at once: one largest body. Slow senders of
/// one tenant (a body may take 30 s to arrive) then hold a third of the budget at most,
/// and every other tenant's uploads go on.
pub const LARGE_PER_TENANT: usize = LARGE_BODY;
/// Bytes of small bodies one tenant may hold at once: a quarter of the small budget.
pub const SMALL_PER_TENANT: usize = SMALL_BUDGET / 4;
/// Requests one credential may have in flight; more answer 429.
pub const IN_FLIGHT_PER_CREDENTIAL: usize = 64;
/// Exports (and other streamed answers) one tenant may have open at once: a dashboard
/// and an auditor's download or two. Each holds a reader only per chunk, but a tenant
/// opening hundreds that nobody reads must not pin the host's connections (429).
pub const STREAMS_PER_TENANT: usize = 4;
/// Activities enriched and waiting for the writer, over all requests (~2 KB each).
pub const QUEUED_ACTIVITIES: usize = 100_000;

/// Permits are counted in KiB so a 16 MiB budget fits a semaphore comfortably.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// A body's reservation, from the shared budget and its tenant's share; released when
/// dropped.
#[derive(Debug)]
pub struct BodyPermit {
    _shared: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
}

#[derive(Debug)]
pub struct Limits {
    large: Arc<Semaphore>,
    small: Arc<Semaphore>,
    per_credential: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Each tenant's share of the body budgets, by (tenant, large).
    per_tenant_bodies: Mutex<HashMap<(String, bool), Arc<Semaphore>>>,
    per_tenant_streams: Mutex<HashMap<String, Arc<Semaphore>>>,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    pub queued: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(None)
    }
}

/// Tenants whose shares are remembered before idle ones are forgotten.
const REMEMBERED_TENANTS: usize = 10_000;

/// The semaphore of `key`'s share (`permits`), made on first use. Idle shares are
/// forgotten now and then so the map does not grow forever.
fn share_of<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Arc<Semaphore>>>,
    key: K,
    permits: usize,
) -> Result<Arc<Semaphore>, HostError> {
    let mut map = map
        .lock()
        .map_err(|_| HostError::internal(anyhow::anyhow!("limits lock poisoned")))?;
    if map.len() > REMEMBERED_TENANTS {
        map.retain(|_, s| s.available_permits() < permits);
    }
    Ok(map
        .entry(key)
        .or_insert_with(|| Arc::new(Semaphore::new(permits)))
        .clone())
}

fn busy(message: &str, code: ApiCode) -> HostError {
    HostError::Overloaded {
        code,
        message: message.to_owned(),
        retry_after: 1,
    }
}

impl Limits {
    /// `rate_per_second`: requests per credential per second (`None`: unlimited).
    pub fn new(rate_per_second: Option<u32>) -> Limits {
        Limits {
            large: Arc::new(Semaphore::new(kib(LARGE_BUDGET) as usize)),
            small: Arc::new(Semaphore::new(kib(SMALL_BUDGET) as usize)),
            per_credential: Mutex::default(),
            per_tenant_bodies: Mutex::default(),
            per_tenant_streams: Mutex::default(),
            rate: rate_per_second
                .and_then(NonZeroU32::new)
                .map(|r| RateLimiter::keyed(Quota::per_second(r))),
            queued: Arc::new(Semaphore::new(QUEUED_ACTIVITIES)),
        }
    }

    /// A place among `tenant`'s open streamed answers (exports), held until the stream
    /// ends, or 429.
    pub fn stream(&self, tenant: &str) -> Result<OwnedSemaphorePermit, HostError> {
        share_of(
            &self.per_tenant_streams,
            tenant.to_owned(),
            STREAMS_PER_TENANT,
        )?
        .try_acquire_owned()
        .map_err(|_| {
            busy(
                &format!("this tenant has {STREAMS_PER_TENANT} exports open; finish one first"),
                ApiCode::TooManyRequests,
            )
        })
    }

    /// Room for a body of `bytes` (of a large-body endpoint or not) within the shared
    /// budget and within `tenant`'s share of it, or 503.
    pub fn body(
        &self,
        tenant: Option<&str>,
        bytes: usize,
        large: bool,
    ) -> Result<BodyPermit, HostError> {
        let need = kib(bytes).max(1);
        let tenant = match tenant {
            Some(t) => {
                let share = kib(if large {
                    LARGE_PER_TENANT
                } else {
                    SMALL_PER_TENANT
                });
                let sem = share_of(
                    &self.per_tenant_bodies,
                    (t.to_owned(), large),
                    share as usize,
                )?;
                Some(sem.try_acquire_many_owned(need).map_err(|_| {
                    busy(
                        "this tenant's requests being read hold their share of the host's body budget; retry shortly",
                        ApiCode::Unavailable,
                    )
                })?)
            }
            None => None,
        };
        let pool = if large { &self.large } else { &self.small };
        let shared = pool.clone().try_acquire_many_owned(need).map_err(|_| {
            busy(
                "too many large requests are being read; retry shortly",
                ApiCode::Unavailable,
            )
        })?;
        Ok(BodyPermit {
            _shared: shared,
            _tenant: tenant,
        })
    }

    /// One more request in flight for `credential` (and within its rate), or 429.
    pub fn admit(&self, credential: &str) -> Result<OwnedSemaphorePermit, HostError> {
        if let Some(rate) = &self.rate
            && rate.check_key(&credential.to_owned()).is_err()
        {
            return Err(busy(
                "rate limit of this credential reached",
                ApiCode::TooManyRequests,
            ));
        }
        let sem = {
            let mut map = self
                .per_credential
                .lock()
                .map_err(|_| HostError::internal(anyhow::anyhow!("limits lock poisoned")))?;
            // Forget idle credentials now and then so the map does not grow forever.
            if map.len() > 10_000 {
                map.retain(|_, s| s.available_permits() < IN_FLIGHT_PER_CREDENTIAL);
            }
            map.entry(credential.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(IN_FLIGHT_PER_CREDENTIAL)))
                .clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            busy(
                "too many requests of this credential in flight",
                ApiCode::TooManyRequests,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refuse_beyond_their_size_and_refill_on_release() {
        let l = Limits::default();
        let a = l.body(None, LARGE_BODY, true).expect("first");
        let _b = l.body(None, LARGE_BODY, true).expect("second");
        let _c = l.body(None, LARGE_BODY, true).expect("third");
        assert!(l.body(None, LARGE_BODY, true).is_err(), "the fourth waits");
        assert!(
            l.body(None, SMALL_BODY, false).is_ok(),
            "small bodies have their own budget"
        );
        drop(a);
        assert!(l.body(None, LARGE_BODY, true).is_ok());
    }

    #[test]
    fn one_tenant_holds_only_its_share_of_a_budget() {
        let l = Limits::default();
        let held = l
            .body(Some("slow"), LARGE_BODY, true)
            .expect("one largest body");
        assert_eq!(
            l.body(Some("slow"), 1024, true)
                .expect_err("its share is spent")
                .status(),
            503
        );
        let _other = l
            .body(Some("other"), LARGE_BODY, true)
            .expect("others go on");
        let smalls: Vec<_> = (0..SMALL_PER_TENANT / SMALL_BODY)
            .map(|_| {
                l.body(Some("slow"), SMALL_BODY, false)
                    .expect("small share")
            })
            .collect();
        assert!(l.body(Some("slow"), SMALL_BODY, false).is_err());
        assert!(l.body(Some("other"), SMALL_BODY, false).is_ok());
        drop((held, smalls));
        assert!(l.body(Some("slow"), LARGE_BODY, true).is_ok());
    }

    #[test]
    fn in_flight_and_rate_per_credential() {
        let l = Limits::new(Some(2));
        let first = l.admit("k").expect("1");
        let _second = l.admit("k").expect("2");
        assert_eq!(
            l.admit("k").expect_err("3rd in the same second").status(),
            429
        );
        assert!(l.admit("other").is_ok(), "another credential is unaffected");
        drop(first);
        let unlimited = Limits::default();
        let held: Vec<_> = (0..IN_FLIGHT_PER_CREDENTIAL)
            .map(|_| unlimited.admit("k").expect("room"))
            .collect();
        assert_eq!(unlimited.admit("k").expect_err("full").status(), 429);
        drop(held);
    }
}
