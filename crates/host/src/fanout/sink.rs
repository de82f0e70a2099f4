//! What a fan-out destination implements: deliver one tenant's batch, in order, and
//! say whether a failure is worth retrying.

use std::future::Future;
use std::pin::Pin;

pub use crm_store::feeds::Feed;
use crm_store::outbox::Outgoing;

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Might work later (down, timeout, 5xx, 429): back off and retry.
    Retry(String),
    /// Will never work as sent (a 4xx): spool at once, do not retry.
    Reject(String),
}

impl SinkError {
    /// The kind of failure, without the details (which may name the sink's address).
    pub fn class(&self) -> &'static str {
        match self {
            SinkError::Retry(_) => "temporary failure",
            SinkError::Reject(_) => "rejected",
        }
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Retry(m) => write!(f, "temporary failure: {m}"),
            SinkError::Reject(m) => write!(f, "rejected: {m}"),
        }
    }
}

pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Stable name: the key of this sink's cursors in the store.
    fn name(&self) -> &'static str;
    /// Most activities per delivery.
    fn batch_size(&self) -> usize;
    /// Whether undeliverable batches go to the NDJSON spool after the retry budget
    /// (the upstream API), or are retried until the sink is back (Redis, whose backlog
    /// the store holds).
    fn spools(&self) -> bool;
    /// What it delivers.
    fn feed(&self) -> Feed {
        Feed::Activities
    }
    fn deliver<'a>(&'a self, tenant: &'a str, batch: &'a [Outgoing]) -> Delivery<'a>;
}
