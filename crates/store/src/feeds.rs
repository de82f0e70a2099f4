//! What fan-out delivers: the activity log, or the credit alert events — each its own
//! committed outbox, numbered per tenant, with a cursor per sink in `sink_cursors`. One
//! description for every runtime's relays: the statements that read a feed, and where
//! the upstream API takes it.

use crate::dialect::Dialect;
use crate::outbox::{self, Outgoing};
use crate::sql::{Row, Statement};
use crate::{StoreResult, alerts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Activities,
    Alerts,
}

impl Feed {
    /// Tenants with undelivered items for `sink`.
    pub fn pending(self, d: Dialect, sink: &str) -> Statement {
        match self {
            Feed::Activities => outbox::pending(d, sink),
            Feed::Alerts => alerts::pending(d, sink),
        }
    }

    /// The tenant's next items after `after`, in order.
    pub fn after(self, d: Dialect, tenant: &str, after: u64, limit: usize) -> Statement {
        match self {
            Feed::Activities => outbox::after(d, tenant, after, limit),
            Feed::Alerts => alerts::after(d, tenant, after, limit),
        }
    }

    pub fn decode(self, tenant: &str, row: &Row) -> StoreResult<Outgoing> {
        match self {
            Feed::Activities => outbox::decode_outgoing(row),
            Feed::Alerts => alerts::decode_outgoing(tenant, row),
        }
    }

    /// The upstream sink's name (its cursor) for this feed.
    pub fn upstream_sink(self) -> &'static str {
        match self {
            Feed::Activities => "upstream",
            Feed::Alerts => "upstream-alerts",
        }
    }

    /// Where the upstream API takes this feed, and the member its items travel in:
    /// `POST {base}/api/activities/batch` with `{ "activities": [...] }` (the original
    /// sketch's wrapper API), `POST {base}/api/credit-alerts/batch` with
    /// `{ "alerts": [...] }`.
    pub fn upstream_route(self) -> (&'static str, &'static str) {
        match self {
            Feed::Activities => ("/api/activities/batch", "activities"),
            Feed::Alerts => ("/api/credit-alerts/batch", "alerts"),
        }
    }
}
