//! `GET /v1/audit/verify` and `GET /v1/audit/checkpoint`: the tenant's chain walked
//! from its anchor (archived segments first, then the database, `crm_store::audit`
//! checking each record and the ledger) and its head signed with the runtime's key,
//! which the database never holds.

use crm_store::archive::{self, Segment};
use crm_store::audit::{Audit, Verification};
use crm_store::export::{self, Bounds};
use crm_store::{Row, Statement};

use super::{Collected, Flow, FlowError, ReadContext, Step, spent};
use crate::checkpoint::{Checkpoint, CheckpointKey, not_configured};
use crate::error::ApiError;

/// The statement of the tenant's chain anchor and head.
fn bounds(cx: &ReadContext<'_>) -> Statement {
    export::bounds(cx.dialect, cx.tenant())
}

fn decode_bounds(rows: &mut Collected) -> Result<Bounds, FlowError> {
    let row = rows
        .take()
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("the key's tenant does not exist"))?;
    Ok(export::decode_bounds(&row)?)
}

/// The read asking for the first archived segment holding records after `after`.
pub(super) fn segment_after(cx: &ReadContext<'_>, after: u64) -> Statement {
    archive::segment_after(cx.dialect, cx.tenant(), after)
}

/// The segment that read found, if any.
pub(super) fn found_segment(rows: &mut Collected) -> Result<Option<Segment>, FlowError> {
    Ok(rows
        .take()
        .first()
        .map(archive::decode_segment)
        .transpose()?)
}

/// `GET /v1/audit/checkpoint`.
#[derive(Debug)]
pub struct SignCheckpoint<'a> {
    cx: ReadContext<'a>,
    key: Option<CheckpointKey>,
    rows: Option<Collected>,
}

impl<'a> SignCheckpoint<'a> {
    /// `key`: the runtime's signing key, if it has one.
    pub fn new(cx: ReadContext<'a>, key: Option<CheckpointKey>) -> SignCheckpoint<'a> {
        SignCheckpoint {
            cx,
            key,
            rows: None,
        }
    }
}

impl Flow for SignCheckpoint<'_> {
    type Answer = Checkpoint;

    fn poll(&mut self) -> Result<Step<Checkpoint>, FlowError> {
        match self.rows.take() {
            None => {
                self.cx.principal.require_tenant_wide()?;
                if self.key.is_none() {
                    return Err(not_configured().into());
                }
                self.rows = Some(Collected::default());
                Ok(Step::Read(bounds(&self.cx)))
            }
            Some(mut rows) => {
                let b = decode_bounds(&mut rows)?;
                let key = self.key.as_ref().ok_or_else(not_configured)?;
                Ok(Step::Done(key.sign(
                    self.cx.tenant(),
                    b.head_seq,
                    &b.head_hash,
                    self.cx.now,
                )))
            }
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        self.rows.as_mut().ok_or_else(spent)?.push(row);
        Ok(())
    }
}

/// `GET /v1/audit/verify`: at most `limit` records per call (`crate::verify`),
/// continued with `resume`. Each chunk is read between two looks for an archived
/// segment after the position: one before (the archive's records come first) and one
/// after (records archived while the chunk was read are checked from their segment).
#[derive(Debug)]
pub struct VerifyChain<'a> {
    cx: ReadContext<'a>,
    key: Option<CheckpointKey>,
    params: super::Params,
    state: Verify,
}

#[derive(Debug)]
enum Verify {
    Start,
    Bounds(Collected),
    Ready(Box<Audit>),
    /// The look before the chunk `.1`.
    Before(Box<Audit>, Statement, Collected),
    Chunk(Box<Audit>, Collected),
    /// The look after the chunk, its rows kept.
    After(Box<Audit>, Vec<Row>, Collected),
    Fetching(Box<Audit>, Segment),
    Spent,
}

impl<'a> VerifyChain<'a> {
    pub fn new(
        cx: ReadContext<'a>,
        key: Option<CheckpointKey>,
        params: super::Params,
    ) -> VerifyChain<'a> {
        VerifyChain {
            cx,
            key,
            params,
            state: Verify::Start,
        }
    }

    fn audit(&self, bounds: Bounds) -> Result<Audit, FlowError> {
        let q = crate::verify::query(&self.params, self.key.as_ref(), self.cx.tenant())?;
        let audit = match q.resume {
            Some(paused) => Audit::resume(bounds, paused).map_err(ApiError::conflict)?,
            None => Audit::new(self.cx.tenant(), bounds).with_checkpoint(q.kept),
        };
        Ok(audit.with_budget(q.limit))
    }

    /// The next step from a ready audit.
    fn next(&mut self, mut audit: Box<Audit>) -> Result<Step<Verification>, FlowError> {
        match audit.next(self.cx.dialect) {
            None => {
                let (v, paused) = audit.finish();
                Ok(Step::Done(crate::verify::answer(
                    v,
                    paused,
                    self.key.as_ref(),
                )?))
            }
            Some(chunk) => {
                let look = segment_after(&self.cx, audit.position());
                self.state = Verify::Before(audit, chunk, Collected::default());
                Ok(Step::Read(look))
            }
        }
    }
}

impl Flow for VerifyChain<'_> {
    type Answer = Verification;

    fn poll(&mut self) -> Result<Step<Verification>, FlowError> {
        match std::mem::replace(&mut self.state, Verify::Spent) {
            Verify::Start => {
                self.cx.principal.require_tenant_wide()?;
                // The parameters are checked before anything is read.
                crate::verify::query(&self.params, self.key.as_ref(), self.cx.tenant())?;
                self.state = Verify::Bounds(Collected::default());
                Ok(Step::Read(bounds(&self.cx)))
            }
            Verify::Bounds(mut rows) => {
                let audit = self.audit(decode_bounds(&mut rows)?)?;
                self.next(Box::new(audit))
            }
            Verify::Ready(audit) => self.next(audit),
            Verify::Before(audit, chunk, mut rows) => match found_segment(&mut rows)? {
                Some(segment) => {
                    self.state = Verify::Fetching(audit, segment.clone());
                    Ok(Step::Fetch(Box::new(segment)))
                }
                None => {
                    self.state = Verify::Chunk(audit, Collected::default());
                    Ok(Step::Read(chunk))
                }
            },
            Verify::Chunk(audit, mut rows) => {
                let look = segment_after(&self.cx, audit.position());
                self.state = Verify::After(audit, rows.take(), Collected::default());
                Ok(Step::Read(look))
            }
            Verify::After(mut audit, chunk, mut rows) => match found_segment(&mut rows)? {
                Some(segment) => {
                    self.state = Verify::Fetching(audit, segment.clone());
                    Ok(Step::Fetch(Box::new(segment)))
                }
                None => {
                    audit.feed(&chunk)?;
                    self.next(audit)
                }
            },
            Verify::Fetching(..) | Verify::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            Verify::Bounds(rows)
            | Verify::Before(_, _, rows)
            | Verify::Chunk(_, rows)
            | Verify::After(_, _, rows) => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn fetched(
        &mut self,
        records: Result<Vec<crm_store::archive::Archived>, String>,
    ) -> Result<(), FlowError> {
        match std::mem::replace(&mut self.state, Verify::Spent) {
            Verify::Fetching(mut audit, segment) => {
                audit.feed_archived(&segment, records);
                self.state = Verify::Ready(audit);
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::testing::{Canned, admin, context, params, refusal, run, snapshot};
    use crm_core::chain::GENESIS;
    use crm_store::{Dialect, Value};

    fn key() -> CheckpointKey {
        CheckpointKey::from_seed([9; 32])
    }

    /// The tenant's bounds: an empty ledger, the head at `head`.
    pub fn bounds_row(head: i64) -> Row {
        Row(vec![
            Value::Int(Some(0)),
            Value::Text(Some(GENESIS.to_owned())),
            Value::Int(Some(head)),
            Value::Text(Some("ab".repeat(32))),
            Value::Int(Some(0)),
            Value::Int(Some(0)),
        ])
    }

    /// An archived segment of records `first..=last`.
    pub fn segment_row(first: i64, last: i64) -> Row {
        Row(vec![
            Value::Int(Some(first)),
            Value::Int(Some(last)),
            Value::Text(Some("2026-01-01".to_owned())),
            Value::Int(Some(last - first + 1)),
            Value::Int(Some(0)),
            Value::Text(Some(GENESIS.to_owned())),
            Value::Text(Some("cd".repeat(32))),
            Value::Text(Some(format!("activities/t/{first}-{last}.ndjson"))),
        ])
    }

    pub fn is_look(st: &Statement) -> bool {
        st.sql.contains("FROM archives")
    }

    #[test]
    fn a_checkpoint_without_a_key_is_503_before_any_read_and_signs_the_head_with_one() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let (answer, asked) = run(SignCheckpoint::new(cx, None), |_| vec![bounds_row(7)]);
        let refused = refusal(answer);
        assert_eq!(
            (refused.status(), refused.retry_after),
            (503, Some(crate::checkpoint::NO_KEY_RETRY_AFTER_SECONDS))
        );
        assert!(asked.is_empty());
        let (answer, _) = run(SignCheckpoint::new(cx, Some(key())), |_| {
            vec![bounds_row(7)]
        });
        let signed = answer.expect("signed");
        assert_eq!(
            (signed.seq, signed.hash.as_str()),
            (7, "ab".repeat(32).as_str())
        );
        signed.verify().expect("the signature holds");
        let (answer, _) = run(SignCheckpoint::new(cx, Some(key())), |_| Vec::new());
        assert_eq!(refusal(answer).status(), 404);
    }

    #[test]
    fn an_archived_segment_is_fetched_before_the_database_and_a_missing_object_is_a_break() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let mut fetched = Vec::new();
        let mut canned = Canned {
            rows: |st: &Statement| {
                if is_look(st) {
                    vec![segment_row(1, 5)]
                } else {
                    vec![bounds_row(9)]
                }
            },
            write: |_: &[Statement]| panic!("verify writes nothing"),
            fetch: |s: &Segment| {
                fetched.push(s.object_key.clone());
                Err("its object is missing".to_owned())
            },
            record: |_: &crate::flow::Record| panic!("verify records nothing"),
            emitted: Vec::new(),
        };
        let (answer, asked) = canned.run(VerifyChain::new(cx, Some(key()), params(&[])));
        let v = answer.expect("a verification");
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(1));
        assert_eq!(v.reason.as_deref(), Some("its object is missing"));
        assert_eq!(fetched, ["activities/t/1-5.ndjson"]);
        assert!(
            !asked.iter().any(|st| st.sql.contains("FROM activities")),
            "the database's chunk is not read before the segment"
        );
    }

    #[test]
    fn a_chunk_archived_while_it_was_read_is_checked_from_its_segment() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let mut looks = 0;
        let mut fetched = 0;
        let mut canned = Canned {
            rows: |st: &Statement| {
                if is_look(st) {
                    looks += 1;
                    // None before the chunk; one after it.
                    if looks == 2 {
                        return vec![segment_row(1, 3)];
                    }
                    return Vec::new();
                }
                if st.sql.contains("FROM tenants") {
                    return vec![bounds_row(3)];
                }
                Vec::new()
            },
            write: |_: &[Statement]| panic!("verify writes nothing"),
            fetch: |_: &Segment| {
                fetched += 1;
                Err("gone".to_owned())
            },
            record: |_: &crate::flow::Record| panic!("verify records nothing"),
            emitted: Vec::new(),
        };
        let (answer, _) = canned.run(VerifyChain::new(cx, Some(key()), params(&[])));
        assert_eq!(answer.expect("a verification").first_bad_seq, Some(1));
        assert_eq!(fetched, 1);
    }

    #[test]
    fn a_limited_viewer_and_a_bad_resume_token_are_refused_before_any_read() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let (answer, asked) = run(
            VerifyChain::new(cx, Some(key()), params(&[("resume", "00.ff")])),
            |_| vec![bounds_row(1)],
        );
        assert_eq!(refusal(answer).status(), 400);
        assert!(asked.is_empty());
    }
}
