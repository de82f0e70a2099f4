//! `POST /v1/subjects/{userId}/erase` (`crate::erasure` holds the rules and the
//! answer): the subject's keys read; the rollup values of its archived records moved
//! (a segment per transaction, while the keys still open them; a runtime without an
//! archive has no segments); the keys destroyed in the transaction that appends the
//! erasure's record to the chain; then the scrub, a chunk per transaction.
//!
//! A runtime with a per-invocation query limit (the edge) passes a budget: past it,
//! after at least one segment, the answer says `complete: false` and the same request
//! continues where this one stopped.

use std::collections::HashMap;

use crm_store::archive::{Archived, Segment};
use crm_store::erasure::{self as stored, Scrub};
use crm_store::ingest::Stored;
use crm_store::keys::KeyScope;
use crm_store::subject_keys;
use crm_store::{Row, Statement};

use super::audit::{found_segment, segment_after};
use super::{Collected, Flow, FlowError, ReadContext, Record, Step, Written, spent};
use crate::erasure::{self, ErasureAnswer, MAX_SCRUB_CHUNKS};

/// The erasure's flow.
#[derive(Debug)]
pub struct EraseSubject<'a> {
    cx: ReadContext<'a>,
    user_id: String,
    record_id: Option<String>,
    query_budget: Option<usize>,
    /// Statements asked for so far (reads and writes), against the budget.
    queries: usize,
    subject: String,
    materials: HashMap<String, String>,
    archived_segments: u64,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Keys(Collected),
    HasRecords(Collected),
    Progress(Collected),
    Looking(Collected),
    Fetching(Segment),
    /// A segment's moves, to be written; the segment's last seq.
    Moves(u64, Vec<Statement>),
    /// Waiting for the moves of the segment ending at `.0`.
    Moving(u64),
    /// The moves committed: the next look is past `.0`.
    Moved(u64),
    /// Stopped at the budget, before the keys.
    Paused,
    Recording,
    /// Ready for the next scrub chunk; chunks done.
    Scrub(Scrubbing),
    /// Reading a scrub chunk.
    ScrubRead(Scrubbing, Collected),
    /// Waiting for a chunk's writes.
    ScrubWrite(Scrubbing),
    Spent,
}

/// The scrub after the record.
#[derive(Debug)]
struct Scrubbing {
    scrub: Scrub,
    chunks: usize,
    record: Stored,
}

impl<'a> EraseSubject<'a> {
    /// `record_id`: a fresh activity id for the erasure's record; `query_budget`: the
    /// statements this request may ask for, if the runtime limits them.
    pub fn new(
        cx: ReadContext<'a>,
        user_id: String,
        record_id: String,
        query_budget: Option<usize>,
    ) -> EraseSubject<'a> {
        EraseSubject {
            cx,
            user_id,
            record_id: Some(record_id),
            query_budget,
            queries: 0,
            subject: String::new(),
            materials: HashMap::new(),
            archived_segments: 0,
            state: State::Start,
        }
    }

    fn read(&mut self, statement: Statement, next: State) -> Step<ErasureAnswer> {
        self.queries += 1;
        self.state = next;
        Step::Read(statement)
    }

    fn look(&mut self, through: u64) -> Step<ErasureAnswer> {
        let look = segment_after(&self.cx, through);
        self.read(look, State::Looking(Collected::default()))
    }

    fn record(&mut self) -> Result<Step<ErasureAnswer>, FlowError> {
        let (cx, subject) = (self.cx, self.subject.as_str());
        let (activity, input_hash) = erasure::record(
            cx.tenant(),
            subject,
            &erasure::requested_by(cx.principal),
            self.materials.len() as u64,
            self.record_id.take().ok_or_else(spent)?,
            cx.now,
        );
        let first = vec![
            subject_keys::destroy(cx.dialect, cx.tenant(), subject),
            stored::forget_progress(cx.dialect, cx.tenant(), subject),
        ];
        self.queries += first.len() + 1;
        self.state = State::Recording;
        Ok(Step::Record(Box::new(Record {
            first,
            activity,
            input_hash,
        })))
    }

    fn answer(&self, done: Option<Scrubbing>) -> ErasureAnswer {
        let (keys_destroyed, rows_scrubbed, complete, record) = match done {
            Some(s) => (
                self.materials.len() as u64,
                s.scrub.scrubbed(),
                s.scrub.is_done(),
                Some(s.record),
            ),
            None => (0, 0, false, None),
        };
        ErasureAnswer {
            subject: self.subject.clone(),
            keys_destroyed,
            record,
            archived_segments: self.archived_segments,
            rows_scrubbed,
            complete,
        }
    }

    /// The next scrub chunk, or the answer after the last one or at the chunk cap.
    fn scrub(&mut self, s: Scrubbing) -> Step<ErasureAnswer> {
        match s.scrub.next(self.cx.dialect) {
            Some(read) if s.chunks < MAX_SCRUB_CHUNKS => {
                self.read(read, State::ScrubRead(s, Collected::default()))
            }
            _ => Step::Done(self.answer(Some(s))),
        }
    }
}

impl Flow for EraseSubject<'_> {
    type Answer = ErasureAnswer;

    fn poll(&mut self) -> Result<Step<ErasureAnswer>, FlowError> {
        let cx = self.cx;
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                cx.principal.require(KeyScope::Admin)?;
                self.subject = erasure::subject(&self.user_id, &cx.snapshot.directory)?;
                let keys = subject_keys::of_subject(cx.dialect, cx.tenant(), &self.subject);
                Ok(self.read(keys, State::Keys(Collected::default())))
            }
            State::Keys(mut rows) => {
                self.materials = subject_keys::materials(&rows.take())?;
                if self.materials.is_empty() {
                    let any = stored::has_records(cx.dialect, cx.tenant(), &self.subject);
                    return Ok(self.read(any, State::HasRecords(Collected::default())));
                }
                let progress = stored::progress(cx.dialect, cx.tenant(), &self.subject);
                Ok(self.read(progress, State::Progress(Collected::default())))
            }
            State::HasRecords(mut rows) => {
                if rows.take().is_empty() {
                    return Err(erasure::unknown(&self.subject).into());
                }
                // No keys: nothing archived can be opened any more.
                self.record()
            }
            State::Progress(mut rows) => {
                let through = rows.take().first().map(|r| r.uint(0)).transpose()?;
                Ok(self.look(through.unwrap_or(0)))
            }
            State::Looking(mut rows) => match found_segment(&mut rows)? {
                Some(segment) => {
                    self.state = State::Fetching(segment.clone());
                    Ok(Step::Fetch(Box::new(segment)))
                }
                None => self.record(),
            },
            State::Moves(through, moves) => {
                self.state = State::Moving(through);
                Ok(Step::Write(moves))
            }
            State::Moved(through) => Ok(self.look(through)),
            State::Paused => Ok(Step::Done(self.answer(None))),
            State::Scrub(s) => Ok(self.scrub(s)),
            State::ScrubRead(mut s, mut rows) => {
                let writes = s.scrub.feed(cx.dialect, &rows.take())?;
                s.chunks += 1;
                if writes.is_empty() {
                    return Ok(self.scrub(s));
                }
                self.queries += writes.len();
                self.state = State::ScrubWrite(s);
                Ok(Step::Write(writes))
            }
            State::Fetching(_)
            | State::Moving(_)
            | State::Recording
            | State::ScrubWrite(_)
            | State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Keys(rows)
            | State::HasRecords(rows)
            | State::Progress(rows)
            | State::Looking(rows)
            | State::ScrubRead(_, rows) => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn fetched(&mut self, records: Result<Vec<Archived>, String>) -> Result<(), FlowError> {
        let State::Fetching(segment) = std::mem::replace(&mut self.state, State::Spent) else {
            return Err(spent());
        };
        let records = records.map_err(FlowError::Internal)?;
        let cx = self.cx;
        let moves = stored::archived(
            cx.dialect,
            cx.tenant(),
            &self.subject,
            &records,
            &self.materials,
            segment.last_seq,
        );
        let over = self
            .query_budget
            .is_some_and(|b| self.queries + moves.len() > b);
        if self.archived_segments > 0 && over {
            // Stopped before the keys: the same request continues from the progress.
            self.state = State::Paused;
            return Ok(());
        }
        self.queries += moves.len();
        self.state = State::Moves(segment.last_seq, moves);
        Ok(())
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, std::mem::replace(&mut self.state, State::Spent)) {
            (Written::Committed(_), State::Moving(through)) => {
                self.archived_segments += 1;
                self.state = State::Moved(through);
                Ok(())
            }
            (Written::Committed(_), State::ScrubWrite(s)) => {
                self.state = State::Scrub(s);
                Ok(())
            }
            (Written::Refused, _) => Err(FlowError::Internal(
                "a constraint refused an erasure's write".to_owned(),
            )),
            _ => Err(spent()),
        }
    }

    fn recorded(&mut self, stored: Stored) -> Result<(), FlowError> {
        let State::Recording = std::mem::replace(&mut self.state, State::Spent) else {
            return Err(spent());
        };
        self.state = State::Scrub(Scrubbing {
            scrub: Scrub::new(self.cx.tenant(), &self.subject),
            chunks: 0,
            record: stored,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::audit::tests::{is_look, segment_row};
    use crate::flow::testing::{Canned, admin, context, refusal, run, snapshot};
    use crm_store::{Dialect, Value};

    fn key_row(id: &str) -> Row {
        Row(vec![
            Value::Text(Some(id.to_owned())),
            Value::Text(Some("00".repeat(32))),
        ])
    }

    fn stored(record: &Record) -> Stored {
        Stored::of(&record.activity)
    }

    fn erase(cx: ReadContext<'_>, budget: Option<usize>) -> EraseSubject<'_> {
        EraseSubject::new(
            cx,
            "gone-user".to_owned(),
            "01J0000000000000000000000E".to_owned(),
            budget,
        )
    }

    #[test]
    fn a_listed_user_is_409_and_an_unknown_subject_404_after_two_reads() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let listed = EraseSubject::new(cx, "user-123".to_owned(), "id".to_owned(), None);
        let (answer, asked) = run(listed, |_| Vec::new());
        assert_eq!(refusal(answer).status(), 409);
        assert!(asked.is_empty());
        let (answer, asked) = run(erase(cx, None), |_| Vec::new());
        assert_eq!(refusal(answer).status(), 404);
        assert_eq!(asked.len(), 2, "its keys, then whether it has records");
    }

    #[test]
    fn the_keys_are_destroyed_with_the_record_and_the_scrub_runs_to_the_end() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let mut recorded = Vec::new();
        let mut canned = Canned {
            rows: |st: &Statement| {
                if st.sql.contains("FROM subject_keys") {
                    vec![key_row("k1"), key_row("k2")]
                } else {
                    Vec::new()
                }
            },
            write: |_: &[Statement]| panic!("nothing to scrub or move"),
            fetch: |_: &Segment| panic!("no segments"),
            record: |r: &Record| {
                recorded.push(r.first.iter().map(|s| s.sql.clone()).collect::<Vec<_>>());
                stored(r)
            },
            emitted: Vec::new(),
        };
        let (answer, _) = canned.run(erase(cx, None));
        let answer = answer.expect("erased");
        assert_eq!(answer.keys_destroyed, 2);
        assert!(answer.complete && answer.record.is_some());
        assert_eq!(answer.archived_segments, 0);
        let [first] = recorded.as_slice() else {
            panic!("one record: {recorded:?}")
        };
        assert!(
            first[0].starts_with("DELETE FROM subject_keys"),
            "{first:?}"
        );
        assert!(
            first[1].starts_with("DELETE FROM erasure_progress"),
            "{first:?}"
        );
    }

    #[test]
    fn past_the_query_budget_an_erasure_stops_after_a_segment_before_the_keys() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let mut writes = 0;
        let mut canned = Canned {
            rows: |st: &Statement| {
                if st.sql.contains("FROM subject_keys") {
                    vec![key_row("k1")]
                } else if is_look(st) {
                    vec![segment_row(1, 5)]
                } else {
                    Vec::new()
                }
            },
            write: |_: &[Statement]| {
                writes += 1;
                crate::flow::Written::Committed(vec![1])
            },
            fetch: |_: &Segment| Ok(Vec::new()),
            record: |_: &Record| panic!("stopped before the keys"),
            emitted: Vec::new(),
        };
        let (answer, _) = canned.run(erase(cx, Some(0)));
        let answer = answer.expect("an answer");
        assert_eq!(
            (
                answer.archived_segments,
                answer.keys_destroyed,
                answer.complete
            ),
            (1, 0, false)
        );
        assert!(answer.record.is_none());
        assert_eq!(writes, 1, "the first segment always moves");
    }
}
