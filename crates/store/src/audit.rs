//! The audit as a state machine any driver can run: read the tenant's [`Bounds`], then
//! feed it the chunks it asks for until it answers a [`Verification`] — recomputing
//! the hash chain from the retention anchor to the head and naming the first sequence
//! number that is wrong (a record altered in content or columns, deleted, reordered,
//! or cut off the end).

use crm_core::Activity;
use crm_core::chain::{Break, Verifier};
use serde::Serialize;

use crate::archive::{Archived, Segment};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::export::{self, Bounds};
use crate::sql::{Row, Statement};

/// Records per read: enough to amortise a query, small enough for D1's answer limits.
pub const CHUNK: usize = 1_000;

/// The audit's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub ok: bool,
    /// Records whose hash and links were checked.
    pub verified: u64,
    /// The chain starts after this seq (records before it were removed by retention).
    pub anchor_seq: u64,
    pub head_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A running audit of one tenant.
#[derive(Debug)]
pub struct Audit {
    tenant_id: String,
    bounds: Bounds,
    verifier: Verifier,
    after: u64,
    broken: Option<Break>,
    exhausted: bool,
}

impl Audit {
    pub fn new(tenant_id: &str, bounds: Bounds) -> Audit {
        Audit {
            tenant_id: tenant_id.to_owned(),
            verifier: Verifier::new(bounds.anchor_seq, &bounds.anchor_hash),
            after: bounds.anchor_seq,
            bounds,
            broken: None,
            exhausted: false,
        }
    }

    /// The next chunk to read, or `None` when the audit has its answer.
    pub fn next(&self, d: Dialect) -> Option<Statement> {
        (self.broken.is_none() && !self.exhausted && self.after < self.bounds.head_seq)
            .then(|| export::audit_chunk(d, &self.tenant_id, self.after, CHUNK))
    }

    /// Checks the rows of the chunk [`Audit::next`] asked for.
    pub fn feed(&mut self, rows: &[Row]) -> StoreResult<()> {
        if rows.is_empty() {
            self.exhausted = true;
        }
        let records = rows
            .iter()
            .map(export::decode_audited)
            .collect::<StoreResult<Vec<_>>>()?;
        self.check(records);
        Ok(())
    }

    /// Checks an archived segment (before the database's rows): its records, or why
    /// its object does not match the segment (a break at its first seq).
    pub fn feed_archived(&mut self, segment: &Segment, records: Result<Vec<Archived>, String>) {
        match records {
            Ok(records) => self.check(
                records
                    .into_iter()
                    .filter(|r| r.activity.seq > self.after)
                    .map(|r| (r.activity.seq, Ok(r.activity)))
                    .collect(),
            ),
            Err(reason) => {
                self.broken = Some(Break {
                    seq: segment.first_seq.max(self.after + 1),
                    reason,
                });
            }
        }
    }

    fn check(&mut self, records: Vec<(u64, Result<Activity, String>)>) {
        for (seq, record) in records {
            if seq > self.bounds.head_seq {
                // Appended after the audit started.
                self.exhausted = true;
                break;
            }
            self.after = seq;
            let pushed = match record {
                Ok(a) => self.verifier.push(&a),
                Err(reason) => Err(Break { seq, reason }),
            };
            if let Err(b) = pushed {
                self.broken = Some(b);
                break;
            }
        }
    }

    /// The last seq checked (the chain's anchor before any).
    pub fn position(&self) -> u64 {
        self.after
    }

    /// Records verified so far and records to verify in all.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.verifier.verified(),
            self.bounds.head_seq - self.bounds.anchor_seq,
        )
    }

    pub fn finish(self) -> Verification {
        let bad = match self.broken {
            Some(b) => Some(b),
            None => self
                .verifier
                .finish(self.bounds.head_seq, &self.bounds.head_hash)
                .err(),
        };
        Verification {
            ok: bad.is_none(),
            verified: self.verifier.verified(),
            anchor_seq: self.bounds.anchor_seq,
            head_seq: self.bounds.head_seq,
            first_bad_seq: bad.as_ref().map(|b| b.seq),
            reason: bad.map(|b| b.reason),
        }
    }
}
