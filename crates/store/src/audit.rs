//! The audit as a state machine any driver can run: read the tenant's [`Bounds`], then
//! feed it the chunks it asks for until it answers a [`Verification`] — recomputing
//! the hash chain from the retention anchor to the head and naming the first sequence
//! number that is wrong (a record altered in content or columns, deleted, reordered,
//! or cut off the end) — and recounting the credit ledger and the balance against the
//! chain ([`crate::ledger_check`]), naming the first entry that disagrees — and, in the
//! call that completes it, the rollups against the stored records
//! ([`crate::rollup_check`]), naming the first period that disagrees.

use crm_core::Activity;
use crm_core::chain::{Break, Verifier};
use serde::Serialize;

use crate::archive::{Archived, Segment};
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::export::{self, Bounds};
use crate::ledger_check::{LedgerCheck, LedgerState};
use crate::rollup_check::RollupCheck;
use crate::sql::{Row, Statement};

/// Records per read: enough to amortise a query, small enough for D1's answer limits.
pub const CHUNK: usize = 1_000;

/// The audit's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// Credit ledger entries recounted against the chain.
    pub ledger_entries: u64,
    /// The first ledger entry that disagrees with the chain or the balance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_entry: Option<u64>,
    /// Rollup periods recounted against the stored records (in the call that completes
    /// the verification).
    pub rollup_periods: u64,
    /// The first rollup that disagrees with the records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_rollup: Option<BadRollup>,
    /// What became of a kept checkpoint the caller named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointCheck>,
    /// False when this call stopped at its record budget with no break found so far:
    /// continue with `resume`.
    pub complete: bool,
    /// Continues this verification (`GET /v1/audit/verify?resume=`), signed by the
    /// runtime so that nobody can vouch for a prefix it did not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// A rollup that disagrees with the records: its tier (`d`, `h`, `th`, `tq`) and
/// period, or the tier's total when no one period is to blame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BadRollup {
    pub tier: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_start: Option<crm_core::Timestamp>,
}

/// Records one verify call checks at most before it pauses: a chain of millions of
/// records is verified over several calls, each within an edge invocation's CPU time
/// and D1 queries (100 chunks of 1,000 records, ~1 s of hashing).
pub const MAX_RECORDS_PER_CALL: u64 = 100_000;

/// Where a paused audit stands: enough to continue it in a later call. The runtime
/// signs it (`crm_api::checkpoint::CheckpointKey::sign_resume`) before handing it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Paused {
    pub tenant_id: String,
    /// The last seq verified, and its hash.
    pub after: u64,
    pub hash: String,
    pub verified: u64,
    pub kept: Option<(u64, String)>,
    pub kept_check: Option<CheckpointCheck>,
    pub ledger: LedgerState,
}

/// A kept checkpoint, checked.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointCheck {
    /// The record at its seq still has its hash.
    Matched,
    /// Its seq lies before the retention anchor: those records were removed, nothing
    /// is left to compare.
    BeforeAnchor,
}

fn rewritten(seq: u64) -> Break {
    Break {
        seq,
        reason: "the record does not match a kept checkpoint (the chain was rewritten)".to_owned(),
    }
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
    /// A checkpoint the caller kept (seq, hash), and what became of it.
    kept: Option<(u64, String)>,
    kept_check: Option<CheckpointCheck>,
    ledger: LedgerCheck,
    /// The last read was the ledger's (the next rows are entries).
    reading_ledger: bool,
    rollups: RollupCheck,
    /// The last read was the rollup check's.
    reading_rollups: bool,
    /// Records this call checks before pausing (`None`: to the end).
    budget: Option<u64>,
    /// Records verified before this call (a resumed audit).
    verified_before: u64,
}

impl Audit {
    pub fn new(tenant_id: &str, bounds: Bounds) -> Audit {
        Audit {
            ledger: LedgerCheck::new(tenant_id, bounds.ledger, bounds.anchor_seq),
            reading_ledger: false,
            rollups: RollupCheck::new(tenant_id, bounds.head_seq, bounds.anchor_seq),
            reading_rollups: false,
            budget: None,
            verified_before: 0,
            tenant_id: tenant_id.to_owned(),
            verifier: Verifier::new(bounds.anchor_seq, &bounds.anchor_hash),
            after: bounds.anchor_seq,
            bounds,
            broken: None,
            exhausted: false,
            kept: None,
            kept_check: None,
        }
    }

    /// Also checks a kept checkpoint: the record at its seq must still have its hash —
    /// a chain rewritten from an earlier record on recomputes every hash, and only a
    /// hash kept outside the database tells.
    pub fn with_checkpoint(mut self, kept: Option<(u64, String)>) -> Audit {
        let Some((seq, hash)) = kept else {
            return self;
        };
        if seq > self.bounds.head_seq {
            self.broken = Some(Break {
                seq: self.bounds.head_seq + 1,
                reason: format!(
                    "the chain ends before a kept checkpoint at seq {seq} (records were cut off)"
                ),
            });
        } else if seq < self.bounds.anchor_seq {
            self.kept_check = Some(CheckpointCheck::BeforeAnchor);
        } else if seq == self.bounds.anchor_seq {
            if hash == self.bounds.anchor_hash {
                self.kept_check = Some(CheckpointCheck::Matched);
            } else {
                self.broken = Some(rewritten(seq));
            }
        } else {
            self.kept = Some((seq, hash));
        }
        self
    }

    /// Pauses once this call has verified `records` (at the next point where no record
    /// waits for a ledger entry).
    pub fn with_budget(mut self, records: u64) -> Audit {
        self.budget = Some(records);
        self
    }

    /// Continues a paused audit against the tenant's bounds now (the head may have
    /// grown since). Refused when retention removed records the pause had not reached.
    pub fn resume(bounds: Bounds, paused: Paused) -> Result<Audit, String> {
        if paused.after < bounds.anchor_seq || paused.after > bounds.head_seq {
            return Err(
                "the chain changed under this verification (retention moved its start); verify again from the start"
                    .to_owned(),
            );
        }
        let mut audit = Audit::new(&paused.tenant_id, bounds);
        audit.verifier = Verifier::resume(paused.after, &paused.hash, paused.verified);
        audit.verified_before = paused.verified;
        audit.after = paused.after;
        audit.ledger = LedgerCheck::resume(
            &paused.tenant_id,
            audit.bounds.ledger,
            audit.bounds.anchor_seq,
            paused.ledger,
        );
        audit.kept = paused.kept;
        audit.kept_check = paused.kept_check;
        Ok(audit)
    }

    fn spent(&self) -> bool {
        self.budget
            .is_some_and(|b| self.verifier.verified() - self.verified_before >= b)
    }

    /// The next chunk to read, or `None` when the audit has its answer. Ledger entries
    /// are read as the records reach them, and the rest once the chain is walked.
    pub fn next(&mut self, d: Dialect) -> Option<Statement> {
        if self.broken.is_some() {
            return None;
        }
        let chain_done = self.exhausted || self.after >= self.bounds.head_seq;
        if !chain_done && self.spent() && self.ledger.pause().is_some() {
            return None;
        }
        if let Some(st) = self.ledger.next(d, chain_done) {
            self.reading_ledger = true;
            return Some(st);
        }
        self.reading_ledger = false;
        if chain_done && self.ledger.broken().is_none() {
            // The rollups last: once the chain and the ledger are read.
            self.reading_rollups = true;
            return self.rollups.next(d);
        }
        // A chunk never reads past the call's budget.
        let left = self.budget.map_or(CHUNK as u64, |b| {
            b.saturating_sub(self.verifier.verified() - self.verified_before)
        });
        let size = (CHUNK as u64).min(left.max(1)) as usize;
        (!chain_done).then(|| export::audit_chunk(d, &self.tenant_id, self.after, size))
    }

    /// Checks the rows of the chunk [`Audit::next`] asked for.
    pub fn feed(&mut self, rows: &[Row]) -> StoreResult<()> {
        if self.reading_ledger {
            return self.ledger.feed(rows);
        }
        if self.reading_rollups {
            return self.rollups.feed(rows);
        }
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
                Ok(a) => self.verifier.push(&a).map(|()| a.credits.units()),
                Err(reason) => Err(Break { seq, reason }),
            };
            match pushed {
                Err(b) => {
                    self.broken = Some(b);
                    break;
                }
                Ok(credits_units) => self.ledger.record(seq, credits_units),
            }
            if let Some((kept_seq, kept_hash)) = &self.kept
                && *kept_seq == seq
            {
                if *kept_hash == self.verifier.last_hash() {
                    self.kept_check = Some(CheckpointCheck::Matched);
                } else {
                    self.broken = Some(rewritten(seq));
                    break;
                }
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

    /// The answer, and — when the call stopped at its budget with no break so far —
    /// where to continue.
    pub fn finish(mut self) -> (Verification, Option<Paused>) {
        let chain_done = self.exhausted || self.after >= self.bounds.head_seq;
        if self.broken.is_none()
            && !chain_done
            && let Some(ledger) = self.ledger.pause()
        {
            let paused = Paused {
                tenant_id: self.tenant_id.clone(),
                after: self.after,
                hash: self.verifier.last_hash().to_owned(),
                verified: self.verifier.verified(),
                kept: self.kept.clone(),
                kept_check: self.kept_check,
                ledger,
            };
            let v = Verification {
                ok: true,
                verified: self.verifier.verified(),
                anchor_seq: self.bounds.anchor_seq,
                head_seq: self.bounds.head_seq,
                first_bad_seq: None,
                reason: None,
                checkpoint: self.kept_check,
                ledger_entries: self.ledger.checked(),
                first_bad_entry: None,
                rollup_periods: 0,
                first_bad_rollup: None,
                complete: false,
                resume: None,
            };
            return (v, Some(paused));
        }
        if self.broken.is_none() {
            self.ledger.finish();
        }
        let ledger_break = self.ledger.broken().cloned();
        let bad = match self.broken {
            Some(b) => Some(b),
            None => self
                .verifier
                .finish(self.bounds.head_seq, &self.bounds.head_hash)
                .err(),
        };
        let rollup_break = self.rollups.broken().cloned();
        let ok = bad.is_none() && ledger_break.is_none() && rollup_break.is_none();
        let reason = bad
            .as_ref()
            .map(|b| b.reason.clone())
            .or_else(|| {
                ledger_break
                    .as_ref()
                    .map(|l| format!("credit ledger: {}", l.reason))
            })
            .or_else(|| {
                rollup_break
                    .as_ref()
                    .map(|r| format!("rollups ({}): {}", r.tier.as_str(), r.reason))
            });
        let v = Verification {
            ok,
            verified: self.verifier.verified(),
            anchor_seq: self.bounds.anchor_seq,
            head_seq: self.bounds.head_seq,
            first_bad_seq: bad.as_ref().map(|b| b.seq),
            reason,
            checkpoint: self.kept_check,
            ledger_entries: self.ledger.checked(),
            first_bad_entry: ledger_break.map(|l| l.entry),
            rollup_periods: self.rollups.periods(),
            first_bad_rollup: rollup_break.map(|r| BadRollup {
                tier: r.tier.as_str(),
                period_start: r
                    .period_start
                    .and_then(|p| crm_core::Timestamp::from_millis(p).ok()),
            }),
            complete: true,
            resume: None,
        };
        (v, None)
    }
}
