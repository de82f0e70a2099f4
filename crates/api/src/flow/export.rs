//! `GET /v1/export?format=ndjson|csv`: the records the listing's filters select, in
//! chain order — archived segments first (each record opened with its subject's key,
//! or erased), then the database a chunk at a time — encoded by `crm_store::export`
//! (NDJSON exactly as hashed, or CSV) and emitted as they are read.
//!
//! A runtime that streams (crm-host) sends each emitted piece as it comes; one that
//! builds the body in memory (the edge, 128 MB per isolate) passes a byte cap, after
//! which the export ends and names where the next page starts.

use crm_store::activities::Filter;
use crm_store::archive::{Archived, Segment};
use crm_store::export::{self, CHUNK, Format};
use crm_store::keys::KeyScope;
use crm_store::listing::Subject;
use crm_store::subject_keys;
use crm_store::{Row, Statement};

use super::audit::{found_segment, segment_after};
use super::{Collected, Flow, FlowError, Params, ReadContext, Step, spent};
use crate::error::ApiError;

/// How an export ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Records emitted.
    pub records: u64,
    /// Set when the byte cap ended the export before the log did: the `afterSeq` of the
    /// next page.
    pub next_after_seq: Option<u64>,
}

/// The `Content-Disposition` of an export of `tenant` in `format`.
pub fn disposition(tenant: &str, format: Format) -> String {
    let extension = match format {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
    };
    format!("attachment; filename=\"activities-{tenant}.{extension}\"")
}

/// The request's format, checked before anything is read or sent (the runtime sets its
/// content type from it).
pub fn format(params: &Params) -> Result<Format, ApiError> {
    Ok(Format::parse(
        params.get("format").map_or("ndjson", String::as_str),
    )?)
}

/// The export's flow.
#[derive(Debug)]
pub struct ExportLog<'a> {
    cx: ReadContext<'a>,
    params: Params,
    max_bytes: Option<usize>,
    walk: Walk,
    state: State,
}

/// Where the export is, and what it has emitted.
#[derive(Debug)]
struct Walk {
    format: Format,
    filter: Filter,
    after: u64,
    records: u64,
    bytes: usize,
}

#[derive(Debug)]
enum State {
    Start,
    /// About to look for a segment after the position.
    Next,
    /// The look before a chunk.
    Looking(Collected),
    Fetching(Segment),
    /// The subject keys of a segment's records, read a statement at a time.
    Keys {
        segment_last: u64,
        records: Vec<Archived>,
        reads: Vec<Statement>,
        keys: Collected,
    },
    /// A segment's rows, emitted a chunk per poll.
    Archived {
        segment_last: u64,
        rows: std::vec::IntoIter<Row>,
    },
    Chunk(Collected),
    /// The look after a chunk, its rows kept.
    Checking(Vec<Row>, Collected),
    /// The last chunk was emitted.
    Ended,
    Spent,
}

impl<'a> ExportLog<'a> {
    /// `max_bytes`: where a runtime that holds the body in memory ends a page (after at
    /// least one chunk, so every page moves the export on).
    pub fn new(cx: ReadContext<'a>, params: Params, max_bytes: Option<usize>) -> ExportLog<'a> {
        ExportLog {
            cx,
            params,
            max_bytes,
            walk: Walk {
                format: Format::Ndjson,
                filter: Filter::default(),
                after: 0,
                records: 0,
                bytes: 0,
            },
            state: State::Start,
        }
    }

    fn start(&mut self) -> Result<Vec<u8>, FlowError> {
        let cx = self.cx;
        cx.principal.require(KeyScope::Read)?;
        let after = crate::listing::after_seq(&self.params)?;
        let format = format(&self.params)?;
        let dir = &cx.snapshot.directory;
        let range = crate::listing::export_range(&self.params, cx.now)?;
        let mut filter = crate::listing::filter(dir, Subject::Tenant, &self.params, range, |s| {
            cx.principal
                .may_read(s, dir)
                .map_err(|crate::access::Denied(m)| ApiError::forbidden(m))
        })?;
        cx.principal.narrow_to_view(&mut filter, dir)?;
        self.walk = Walk {
            format,
            filter,
            after,
            records: 0,
            bytes: 0,
        };
        Ok(format.preamble()?)
    }

    /// Whether the page is full: only after a chunk was emitted.
    fn full(&self) -> bool {
        self.walk.records > 0 && self.max_bytes.is_some_and(|m| self.walk.bytes >= m)
    }

    fn done(&self, more: bool) -> Step<Exported> {
        Step::Done(Exported {
            records: self.walk.records,
            next_after_seq: more.then_some(self.walk.after),
        })
    }

    /// Emits `rows` (encoded) and moves the position past them.
    fn emit(&mut self, rows: &[Row]) -> Result<Option<Vec<u8>>, FlowError> {
        let Some((bytes, last)) = self.walk.format.encode(rows)? else {
            return Ok(None);
        };
        self.walk.records += rows.len() as u64;
        self.walk.bytes += bytes.len();
        self.walk.after = last;
        Ok(Some(bytes))
    }

    fn keys_or_rows(
        &mut self,
        segment_last: u64,
        records: Vec<Archived>,
        mut reads: Vec<Statement>,
        keys: Collected,
    ) -> Result<Step<Exported>, FlowError> {
        if let Some(read) = reads.pop() {
            self.state = State::Keys {
                segment_last,
                records,
                reads,
                keys,
            };
            return Ok(Step::Read(read));
        }
        let mut keys = keys;
        let materials = subject_keys::materials(&keys.take())?;
        let rows = crm_store::archive::export_rows(&records, &self.walk.filter, &materials)?;
        self.state = State::Archived {
            segment_last,
            rows: rows.into_iter(),
        };
        self.poll()
    }
}

impl Flow for ExportLog<'_> {
    type Answer = Exported;

    fn poll(&mut self) -> Result<Step<Exported>, FlowError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Start => {
                let preamble = self.start()?;
                self.walk.bytes = preamble.len();
                self.state = State::Next;
                if preamble.is_empty() {
                    return self.poll();
                }
                Ok(Step::Emit(preamble))
            }
            State::Next => {
                if self.full() {
                    return Ok(self.done(true));
                }
                self.state = State::Looking(Collected::default());
                Ok(Step::Read(segment_after(&self.cx, self.walk.after)))
            }
            State::Looking(mut rows) => match found_segment(&mut rows)? {
                Some(segment) => {
                    self.state = State::Fetching(segment.clone());
                    Ok(Step::Fetch(Box::new(segment)))
                }
                None => {
                    let (d, tenant) = (self.cx.dialect, self.cx.tenant());
                    let chunk = export::chunk(d, tenant, &self.walk.filter, self.walk.after, CHUNK);
                    self.state = State::Chunk(Collected::default());
                    Ok(Step::Read(chunk))
                }
            },
            State::Keys {
                segment_last,
                records,
                reads,
                keys,
            } => self.keys_or_rows(segment_last, records, reads, keys),
            State::Archived {
                segment_last,
                mut rows,
            } => {
                if self.full() {
                    return Ok(self.done(true));
                }
                let piece: Vec<Row> = rows.by_ref().take(CHUNK).collect();
                match self.emit(&piece)? {
                    Some(bytes) => {
                        self.state = State::Archived { segment_last, rows };
                        Ok(Step::Emit(bytes))
                    }
                    None => {
                        // Past the segment, whether or not the filter kept its last
                        // records.
                        self.walk.after = self.walk.after.max(segment_last);
                        self.state = State::Next;
                        self.poll()
                    }
                }
            }
            State::Chunk(mut rows) => {
                self.state = State::Checking(rows.take(), Collected::default());
                Ok(Step::Read(segment_after(&self.cx, self.walk.after)))
            }
            State::Checking(chunk, mut look) => match found_segment(&mut look)? {
                // Rows archived while they were read: their segment instead.
                Some(segment) => {
                    self.state = State::Fetching(segment.clone());
                    Ok(Step::Fetch(Box::new(segment)))
                }
                None => {
                    let last = chunk.len() < CHUNK;
                    match self.emit(&chunk)? {
                        None => Ok(self.done(false)),
                        Some(bytes) => {
                            self.state = if last { State::Ended } else { State::Next };
                            Ok(Step::Emit(bytes))
                        }
                    }
                }
            },
            State::Ended => Ok(self.done(false)),
            State::Fetching(_) | State::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            State::Looking(rows)
            | State::Chunk(rows)
            | State::Checking(_, rows)
            | State::Keys { keys: rows, .. } => {
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
        let after = self.walk.after;
        let records: Vec<Archived> = records
            .map_err(FlowError::Internal)?
            .into_iter()
            .filter(|r| r.activity.seq > after)
            .collect();
        let reads = subject_keys::by_ids(
            self.cx.dialect,
            self.cx.tenant(),
            &Archived::key_ids(&records),
        );
        self.state = State::Keys {
            segment_last: segment.last_seq,
            records,
            reads,
            keys: Collected::default(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::audit::tests::{is_look, segment_row};
    use crate::flow::testing::{Canned, context, key, params, refusal, run, snapshot};
    use crm_store::{Dialect, Value};

    fn chunk_row(seq: u64) -> Row {
        Row(vec![
            Value::Int(Some(seq as i64)),
            Value::Text(Some(format!(r#"{{"seq":{seq}}}"#))),
            Value::Text(None),
        ])
    }

    fn canned_chunks(from: u64, count: u64) -> impl FnMut(&Statement) -> Vec<Row> {
        let mut served = false;
        move |st: &Statement| {
            if is_look(st) || served {
                return Vec::new();
            }
            served = true;
            (from..from + count).map(chunk_row).collect()
        }
    }

    /// Runs the export over `rows`; answers how it ended and what it emitted.
    fn export(
        cx: ReadContext<'_>,
        pairs: &[(&str, &str)],
        max_bytes: Option<usize>,
        rows: impl FnMut(&Statement) -> Vec<Row>,
    ) -> (Exported, Vec<Statement>, String) {
        let mut rt = Canned {
            rows,
            write: |_: &[Statement]| panic!("an export writes nothing"),
            fetch: |_: &Segment| Ok(Vec::new()),
            record: |_: &crate::flow::Record| panic!("an export records nothing"),
            emitted: Vec::new(),
        };
        let (ended, asked) = rt.run(ExportLog::new(cx, params(pairs), max_bytes));
        let text = String::from_utf8(rt.emitted).expect("text");
        (ended.expect("exported"), asked, text)
    }

    #[test]
    fn a_short_chunk_ends_the_export_and_everything_read_is_emitted_as_hashed() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::Sqlite, &snap, &principal);
        let (ended, asked, text) = export(cx, &[], None, canned_chunks(1, 3));
        assert_eq!(
            ended,
            Exported {
                records: 3,
                next_after_seq: None
            }
        );
        assert_eq!(text, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n");
        // A look, the chunk, the look after it.
        assert_eq!(asked.len(), 3);
    }

    #[test]
    fn the_byte_cap_ends_a_page_after_a_full_chunk_and_names_the_next() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let (ended, _, text) = export(cx, &[], Some(1), canned_chunks(1, CHUNK as u64));
        assert_eq!(
            ended,
            Exported {
                records: CHUNK as u64,
                next_after_seq: Some(CHUNK as u64)
            }
        );
        assert_eq!(text.lines().count(), CHUNK);
    }

    #[test]
    fn rows_archived_while_a_chunk_was_read_come_from_their_segment() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::D1, &snap, &principal);
        let mut looks = 0;
        let rows = move |st: &Statement| {
            if is_look(st) {
                looks += 1;
                return if looks == 2 {
                    vec![segment_row(1, 2)]
                } else {
                    Vec::new()
                };
            }
            if !st.sql.contains("FROM activities") {
                return Vec::new();
            }
            // Every chunk read answers rows past the archived ones.
            vec![chunk_row(3)]
        };
        let (ended, _, text) = export(cx, &[], None, rows);
        assert_eq!(ended.records, 1);
        assert_eq!(
            text, "{\"seq\":3}\n",
            "the raced chunk is read again after the segment, not emitted twice"
        );
    }

    #[test]
    fn bad_parameters_are_refused_before_anything_is_read_or_emitted() {
        let snap = snapshot();
        let principal = key();
        let cx = context(Dialect::Sqlite, &snap, &principal);
        for bad in [("format", "xml"), ("afterSeq", "x"), ("since", "forever")] {
            let (answer, asked) = run(ExportLog::new(cx, params(&[bad]), None), |_| Vec::new());
            assert_eq!(refusal(answer).status(), 400, "{bad:?}");
            assert!(asked.is_empty());
        }
    }
}
