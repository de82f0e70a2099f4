//! Cold history: a tenant's oldest chain records moved out of the database into
//! objects (R2 at the edge), so the history a tenant keeps is no longer bounded by one
//! database's size. A *segment* is a run of consecutive records (by `seq`) received on
//! one UTC day, at most [`MAX_SEGMENT_RECORDS`] of them, stored as NDJSON (each line the
//! record exactly as hashed) under [`object_key`]. The `archives` table keeps every
//! segment's chain anchors — the hash before its first record and the hash of its last
//! — so export and the audit read segments, then the database, in one `seq` order, and
//! an object that does not match its anchors is found. Rollups stay in the database,
//! so reports over archived days keep working from them (see ARCHITECTURE.md).
//!
//! Archiving is a state machine like the audit: [`Planner::next`] asks for the oldest
//! hot records, [`Planner::feed`] takes them, [`Planner::finish`] answers the object to
//! store and the statements that record the segment and delete its rows — run them
//! only after the object is stored, so a record is never in neither place.

use std::collections::HashMap;

use crm_core::duration::DAY_MS;
use crm_core::{Activity, CoreError, Timestamp};
use serde::Serialize;

use crate::activities::Filter;
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value, seq};

/// Records per segment at most.
pub const MAX_SEGMENT_RECORDS: usize = 10_000;

/// Bytes of records per segment at most, whatever their size: a segment's object is
/// built in memory before it is stored, and read back record by record (an edge
/// isolate has 128 MB for every request it serves at once). A record of the largest
/// size (~20 KB: 8 KB of metadata, sealed personal fields, a long user agent) would
/// otherwise make 10,000 of them 200 MB.
pub const MAX_SEGMENT_BYTES: usize = 8 * 1024 * 1024;

/// A stored record's text at most, with room to spare: a longer line in an object is
/// not a record, and is not buffered further.
const MAX_RECORD_BYTES: usize = 256 * 1024;

/// Records per read while planning (D1 answers stay small).
const READ_CHUNK: usize = 1_000;

/// The youngest data that may be archived, in whole days. An archived record's id is
/// no longer recognised as a replay (its row is gone), so archiving stays far behind
/// any client's retry horizon.
pub const MIN_AGE_DAYS: u32 = 7;

/// One archived run of a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The UTC day its records were received, `YYYY-MM-DD`.
    pub day: String,
    pub records: u64,
    /// The latest `occurredAt` (ms) among its records.
    pub max_occurred_at: i64,
    /// The chain hash before the first record.
    pub prev_hash: String,
    /// The hash of the last record.
    pub last_hash: String,
    pub object_key: String,
}

/// Where a tenant's segment is stored: sortable by `seq`, one folder per tenant.
pub fn object_key(tenant_id: &str, first_seq: u64, last_seq: u64) -> String {
    format!(
        "{}{first_seq:020}-{last_seq:020}.ndjson",
        tenant_prefix(tenant_id)
    )
}

const SEGMENT_COLUMNS: &str =
    "first_seq, last_seq, day, records, max_occurred_at, prev_hash, last_hash, object_key";

/// The last seq of a segment object's key (of [`object_key`]'s form), if it is one.
pub fn key_last_seq(key: &str) -> Option<u64> {
    key.strip_suffix(".ndjson")?
        .rsplit('/')
        .next()?
        .split_once('-')?
        .1
        .parse()
        .ok()
}

/// The folder of a tenant's segment objects.
pub fn tenant_prefix(tenant_id: &str) -> String {
    format!("activities/{tenant_id}/")
}

/// The tenant's segments holding records after `after_seq`, in order.
pub fn segments_after(d: Dialect, tenant_id: &str, after_seq: u64) -> Statement {
    segments_from(d, tenant_id, after_seq, "")
}

/// The first of [`segments_after`]: where a walk of the chain reads next.
pub fn segment_after(d: Dialect, tenant_id: &str, after_seq: u64) -> Statement {
    segments_from(d, tenant_id, after_seq, " LIMIT 1")
}

fn segments_from(d: Dialect, tenant_id: &str, after_seq: u64, limit: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT {SEGMENT_COLUMNS} FROM archives WHERE tenant_id = ?1 AND last_seq > ?2
             ORDER BY first_seq{limit}"
        ),
        vec![tenant_id.into(), seq(after_seq)],
    )
}

pub fn decode_segment(row: &Row) -> StoreResult<Segment> {
    Ok(Segment {
        first_seq: row.uint(0)?,
        last_seq: row.uint(1)?,
        day: row.string(2)?,
        records: row.uint(3)?,
        max_occurred_at: row.int(4)?,
        prev_hash: row.string(5)?,
        last_hash: row.string(6)?,
        object_key: row.string(7)?,
    })
}

/// A record read back from a segment object, in its stored form.
#[derive(Debug, Clone)]
pub struct Archived {
    pub activity: Activity,
}

/// The records of a stored segment object, after checking them against the segment's
/// anchors and `seq` range; `Err` says what does not match.
pub fn read_object(segment: &Segment, text: &str) -> Result<Vec<Archived>, String> {
    let mut reader = SegmentReader::new(segment);
    let mut records = reader.push(text.as_bytes())?;
    records.extend(reader.finish()?);
    Ok(records)
}

/// Reads a segment object in pieces as they arrive (an R2 body stream), so the
/// object's text is never held whole: each [`SegmentReader::push`] answers the
/// records its bytes complete, checked against the segment as far as they go, and
/// [`SegmentReader::finish`] checks what only the end can show.
#[derive(Debug)]
pub struct SegmentReader<'a> {
    segment: &'a Segment,
    /// Bytes of a line not yet complete.
    partial: Vec<u8>,
    read: u64,
    last_hash: Option<String>,
}

impl<'a> SegmentReader<'a> {
    pub fn new(segment: &'a Segment) -> SegmentReader<'a> {
        SegmentReader {
            segment,
            partial: Vec::new(),
            read: 0,
            last_hash: None,
        }
    }

    fn mismatch(&self, what: &str) -> String {
        format!(
            "archived segment {}–{} ({}): {what}",
            self.segment.first_seq, self.segment.last_seq, self.segment.object_key
        )
    }

    /// The records `bytes` (the object's next piece) complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Archived>, String> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut joined = std::mem::take(&mut self.partial);
            let line = if joined.is_empty() {
                &rest[..end]
            } else {
                joined.extend_from_slice(&rest[..end]);
                joined.as_slice()
            };
            if !line.is_empty() {
                out.push(self.record(line)?);
            }
            rest = &rest[end + 1..];
        }
        if self.partial.len() + rest.len() > MAX_RECORD_BYTES {
            return Err(self.mismatch("a line is longer than any record"));
        }
        self.partial.extend_from_slice(rest);
        Ok(out)
    }

    fn record(&mut self, line: &[u8]) -> Result<Archived, String> {
        let activity: Activity =
            serde_json::from_slice(line).map_err(|_| self.mismatch("a line is not a record"))?;
        let expected = self.segment.first_seq + self.read;
        if activity.seq != expected || self.read >= self.segment.records {
            return Err(self.mismatch("its records are not the segment's sequence numbers"));
        }
        if self.read == 0 && activity.prev_hash != self.segment.prev_hash {
            return Err(self.mismatch("its chain anchors differ from the ones recorded"));
        }
        self.read += 1;
        self.last_hash = Some(activity.hash.clone());
        Ok(Archived { activity })
    }

    /// The last record (if the object does not end with a newline), and the checks of
    /// the whole: as many records as the segment says, ending at its last hash.
    pub fn finish(mut self) -> Result<Vec<Archived>, String> {
        let partial = std::mem::take(&mut self.partial);
        let mut out = Vec::new();
        if !partial.is_empty() {
            out.push(self.record(&partial)?);
        }
        if self.read != self.segment.records
            || self.segment.first_seq + self.read != self.segment.last_seq + 1
        {
            return Err(self.mismatch("its records are not the segment's sequence numbers"));
        }
        if self.last_hash.as_deref() != Some(self.segment.last_hash.as_str()) {
            return Err(self.mismatch("its chain anchors differ from the ones recorded"));
        }
        Ok(out)
    }
}

/// Export rows (`seq, body, key material`, as `export::chunk` selects) of the
/// archived records that pass `filter`, each opened with its subject's key
/// (`materials`, by key id: `subject_keys::by_ids` of [`Archived::key_ids`]) or erased.
pub fn export_rows(
    records: &[Archived],
    filter: &Filter,
    materials: &HashMap<String, String>,
) -> StoreResult<Vec<Row>> {
    let mut out = Vec::new();
    for r in records {
        let mut a = r.activity.clone();
        crate::subject_keys::open_with(&mut a, materials);
        if filter.matches(&a) {
            let line = serde_json::to_string(&a).map_err(StoreError::corrupt)?;
            out.push(Row(vec![seq(a.seq), line.into(), Value::Text(None)]));
        }
    }
    Ok(out)
}

impl Archived {
    /// The subject keys `records` are sealed under.
    pub fn key_ids(records: &[Archived]) -> Vec<&str> {
        let mut ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r.activity.personal.as_ref().map(|p| p.key_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// A segment ready to be stored: the object, then the statements.
#[derive(Debug)]
pub struct Plan {
    pub segment: Segment,
    /// The object's NDJSON text.
    pub object: String,
    /// Records the segment and deletes its rows, in one transaction. The insert is
    /// keyed on the first seq, so two archivers racing on a tenant store one segment.
    pub statements: Vec<Statement>,
}

/// Plans the tenant's next segment: the oldest hot records received before `cutoff`,
/// on the first one's UTC day.
#[derive(Debug)]
pub struct Planner {
    tenant_id: String,
    cutoff_ms: i64,
    now_ms: i64,
    day_start: Option<i64>,
    after: u64,
    records: Vec<String>,
    /// Bytes of `records`, newlines included.
    bytes: usize,
    first: Option<Activity>,
    last: Option<Activity>,
    max_occurred_at: i64,
    done: bool,
    /// The last seq every configured sink has delivered: nothing past it is archived.
    through: u64,
    held_back: bool,
}

impl Planner {
    /// Archives what was received before the UTC day `older_than_days` days before `now`.
    pub fn new(tenant_id: &str, older_than_days: u32, now: Timestamp) -> StoreResult<Planner> {
        if older_than_days < MIN_AGE_DAYS {
            return Err(CoreError::invalid(
                "olderThanDays",
                format!(
                    "`olderThanDays` must be at least {MIN_AGE_DAYS}: an archived id is no longer recognised as a replay"
                ),
            )
            .into());
        }
        let today = now.millis().div_euclid(DAY_MS) * DAY_MS;
        Ok(Planner {
            tenant_id: tenant_id.to_owned(),
            cutoff_ms: today - i64::from(older_than_days) * DAY_MS,
            now_ms: now.millis(),
            day_start: None,
            after: 0,
            records: Vec::new(),
            bytes: 0,
            first: None,
            last: None,
            max_occurred_at: i64::MIN,
            done: false,
            through: u64::MAX,
            held_back: false,
        })
    }

    /// Archives nothing a sink has yet to deliver: a sink reads the records it sends
    /// from the database, so a record moved to cold storage before it was delivered
    /// would never be delivered. `delivered` is the slowest configured sink's cursor.
    pub fn not_past(mut self, delivered: u64) -> Planner {
        self.through = delivered;
        self
    }

    /// Whether the segment stopped at the slowest sink's cursor (more is old enough).
    pub fn held_back(&self) -> bool {
        self.held_back
    }

    /// The next read, or `None` when the segment is complete.
    pub fn next(&self, d: Dialect) -> Option<Statement> {
        (!self.done).then(|| {
            let limit = READ_CHUNK.min(MAX_SEGMENT_RECORDS - self.records.len());
            d.stmt(
                &format!(
                    "SELECT seq, received_at, body FROM activities WHERE tenant_id = ?1 AND seq > ?2
                     ORDER BY seq LIMIT {limit}"
                ),
                vec![self.tenant_id.as_str().into(), seq(self.after)],
            )
        })
    }

    /// Takes the rows [`Planner::next`] asked for.
    pub fn feed(&mut self, rows: &[Row]) -> StoreResult<()> {
        if rows.is_empty() {
            self.done = true;
        }
        for row in rows {
            let received_at = row.int(1)?;
            let day = received_at.div_euclid(DAY_MS) * DAY_MS;
            if received_at >= self.cutoff_ms || self.day_start.is_some_and(|d| d != day) {
                self.done = true;
                break;
            }
            let seq_col = row.uint(0)?;
            if seq_col > self.through {
                self.held_back = true;
                self.done = true;
                break;
            }
            let body = row.string(2)?;
            if !self.records.is_empty() && self.bytes + body.len() + 1 > MAX_SEGMENT_BYTES {
                self.done = true;
                break;
            }
            let a: Activity = serde_json::from_str(&body)
                .map_err(|e| StoreError::corrupt(format!("stored record {seq_col}: {e}")))?;
            if self.last.as_ref().is_some_and(|l| l.seq + 1 != a.seq) {
                // A gap (a record removed by hand): the audit names it; do not hide it.
                self.done = true;
                break;
            }
            self.day_start = Some(day);
            self.after = a.seq;
            self.max_occurred_at = self.max_occurred_at.max(a.occurred_at.millis());
            self.bytes += body.len() + 1;
            self.records.push(body);
            if self.first.is_none() {
                self.first = Some(a.clone());
            }
            self.last = Some(a);
            if self.records.len() == MAX_SEGMENT_RECORDS {
                self.done = true;
                break;
            }
        }
        Ok(())
    }

    /// The segment to store, or `None` when nothing is old enough.
    pub fn finish(self, d: Dialect) -> StoreResult<Option<Plan>> {
        let (Some(first), Some(last), Some(day_start)) = (self.first, self.last, self.day_start)
        else {
            return Ok(None);
        };
        let day = Timestamp::from_millis(day_start)?
            .to_rfc3339()
            .get(..10)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::corrupt("a day without a date"))?;
        let segment = Segment {
            first_seq: first.seq,
            last_seq: last.seq,
            day,
            records: self.records.len() as u64,
            max_occurred_at: self.max_occurred_at,
            prev_hash: first.prev_hash,
            last_hash: last.hash,
            object_key: object_key(&self.tenant_id, first.seq, last.seq),
        };
        let tenant = self.tenant_id.as_str();
        let statements = vec![
            d.stmt(
                "INSERT INTO archives (tenant_id, first_seq, last_seq, day, records,
                     max_occurred_at, prev_hash, last_hash, object_key, archived_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                vec![
                    tenant.into(),
                    seq(segment.first_seq),
                    seq(segment.last_seq),
                    segment.day.as_str().into(),
                    seq(segment.records),
                    segment.max_occurred_at.into(),
                    segment.prev_hash.as_str().into(),
                    segment.last_hash.as_str().into(),
                    segment.object_key.as_str().into(),
                    self.now_ms.into(),
                ],
            ),
            d.stmt(
                "DELETE FROM activities WHERE tenant_id = ?1 AND seq >= ?2 AND seq <= ?3",
                vec![tenant.into(), seq(segment.first_seq), seq(segment.last_seq)],
            ),
        ];
        let mut object = self.records.join("\n");
        object.push('\n');
        Ok(Some(Plan {
            segment,
            object,
            statements,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Value;
    use crate::testing::chain;

    const HOUR: i64 = 3_600_000;

    /// The rows `Planner::next` asks for, each received at `received(seq)`.
    fn rows(records: &[Activity], received: impl Fn(u64) -> i64) -> Vec<Row> {
        records
            .iter()
            .map(|a| {
                Row(vec![
                    seq(a.seq),
                    Value::from(received(a.seq)),
                    serde_json::to_string(a)
                        .expect("serialises")
                        .as_str()
                        .into(),
                ])
            })
            .collect()
    }

    fn plan(records: &[Activity], received: impl Fn(u64) -> i64, now: Timestamp) -> Option<Plan> {
        let mut p = Planner::new("t", MIN_AGE_DAYS, now).expect("old enough");
        let all = rows(records, received);
        let mut fed = 0;
        while p.next(Dialect::Sqlite).is_some() {
            let chunk = &all[fed..(fed + READ_CHUNK).min(all.len())];
            fed += chunk.len();
            p.feed(chunk).expect("decodes");
        }
        p.finish(Dialect::Sqlite).expect("plans")
    }

    #[test]
    fn a_segment_is_the_oldest_run_received_on_one_day_before_the_cutoff() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(30, now);
        let day = |d: i64| now.millis() - d * DAY_MS;
        // 1–10 eleven days ago, 11–20 ten days ago, 21–30 today.
        let received = |s: u64| match s {
            1..=10 => day(11),
            11..=20 => day(10),
            _ => now.millis() - HOUR,
        };
        let first = plan(&records, received, now).expect("old records");
        assert_eq!((first.segment.first_seq, first.segment.last_seq), (1, 10));
        assert_eq!(first.segment.prev_hash, "0".repeat(64));
        assert_eq!(first.segment.last_hash, records[9].hash);
        assert_eq!(
            first.segment.object_key,
            "activities/t/00000000000000000001-00000000000000000010.ndjson"
        );
        assert_eq!(key_last_seq(&first.segment.object_key), Some(10));
        assert_eq!(key_last_seq("activities/t/notes.txt"), None);
        assert_eq!(
            first.segment.max_occurred_at,
            records[9].occurred_at.millis()
        );
        let read = read_object(&first.segment, &first.object).expect("matches its anchors");
        assert_eq!(read.len(), 10);
        assert_eq!(read[3].activity, records[3]);
        // The next planner starts where the database now starts.
        let second = plan(&records[10..], received, now).expect("the next day");
        assert_eq!(
            (second.segment.first_seq, second.segment.last_seq),
            (11, 20)
        );
        assert!(plan(&records[20..], received, now).is_none(), "today stays");
    }

    #[test]
    fn nothing_a_sink_has_yet_to_deliver_is_archived() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(20, now);
        let old = now.millis() - 30 * DAY_MS;
        let all = rows(&records, |_| old);
        for (delivered, want) in [(0, None), (7, Some(7)), (25, Some(20))] {
            let mut p = Planner::new("t", MIN_AGE_DAYS, now)
                .expect("old enough")
                .not_past(delivered);
            while p.next(Dialect::Sqlite).is_some() {
                p.feed(&all).expect("decodes");
            }
            assert_eq!(p.held_back(), delivered < 20, "{delivered}");
            let last = p
                .finish(Dialect::Sqlite)
                .expect("plans")
                .map(|plan| plan.segment.last_seq);
            assert_eq!(last, want, "{delivered}");
        }
    }

    #[test]
    fn a_segment_stops_at_its_caps_and_young_data_is_refused() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(MAX_SEGMENT_RECORDS + 5, now);
        let old = now.millis() - 30 * DAY_MS;
        let p = plan(&records, |_| old, now).expect("old records");
        let n = p.segment.records as usize;
        assert!(
            p.object.len() <= MAX_SEGMENT_BYTES,
            "{} bytes",
            p.object.len()
        );
        let next = serde_json::to_string(&records[n])
            .expect("serialises")
            .len()
            + 1;
        assert!(
            n == MAX_SEGMENT_RECORDS || p.object.len() + next > MAX_SEGMENT_BYTES,
            "stopped at {n} records, {} bytes",
            p.object.len()
        );
        let e = Planner::new("t", MIN_AGE_DAYS - 1, now).expect_err("too young");
        assert!(e.to_string().contains("olderThanDays"), "{e}");
    }

    #[test]
    fn an_object_read_in_pieces_of_any_size_reads_as_the_whole() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(40, now);
        let p = plan(&records, |_| now.millis() - 30 * DAY_MS, now).expect("old records");
        let whole: Vec<u64> = read_object(&p.segment, &p.object)
            .expect("matches")
            .iter()
            .map(|r| r.activity.seq)
            .collect();
        assert_eq!(whole, (1..=40).collect::<Vec<u64>>());
        let unterminated = p.object.trim_end();
        for piece in [1, 2, 7, 100, 1_500, 65_536] {
            for object in [p.object.as_str(), unterminated] {
                let mut reader = SegmentReader::new(&p.segment);
                let mut seqs = Vec::new();
                for chunk in object.as_bytes().chunks(piece) {
                    seqs.extend(
                        reader
                            .push(chunk)
                            .expect("a piece")
                            .iter()
                            .map(|r| r.activity.seq),
                    );
                }
                seqs.extend(
                    reader
                        .finish()
                        .expect("the end")
                        .iter()
                        .map(|r| r.activity.seq),
                );
                assert_eq!(seqs, whole, "pieces of {piece}");
            }
        }
        // A truncated object is found at its end; a line past any record's size at once.
        let mut reader = SegmentReader::new(&p.segment);
        reader
            .push(&p.object.as_bytes()[..p.object.len() / 2])
            .expect("a valid prefix");
        assert!(reader.finish().is_err());
        let mut reader = SegmentReader::new(&p.segment);
        assert!(reader.push(&vec![b'x'; MAX_RECORD_BYTES + 1]).is_err());
    }

    #[test]
    fn an_object_that_does_not_match_its_segment_is_named() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(5, now);
        let p = plan(&records, |_| now.millis() - 9 * DAY_MS, now).expect("old records");
        let dropped: String = p.object.lines().skip(1).map(|l| format!("{l}\n")).collect();
        assert!(
            read_object(&p.segment, &dropped)
                .expect_err("a record short")
                .contains("sequence numbers")
        );
        let mut other = p.segment.clone();
        other.last_hash = "f".repeat(64);
        assert!(
            read_object(&other, &p.object)
                .expect_err("other anchor")
                .contains("anchors")
        );
        assert!(read_object(&p.segment, "not json\n").is_err());
    }

    #[test]
    fn filters_on_archived_records_agree_with_the_sql_clause() {
        let now = Timestamp::from_millis(1_800_000_000_000).expect("valid");
        let records = chain(6, now);
        let archived: Vec<Archived> = records
            .iter()
            .map(|a| Archived {
                activity: a.clone(),
            })
            .collect();
        let all = Filter {
            from: 0,
            to: i64::MAX,
            ..Filter::default()
        };
        assert_eq!(
            export_rows(&archived, &all, &HashMap::new())
                .expect("rows")
                .len(),
            6
        );
        let one_user = Filter {
            user_id: Some("user-200".into()),
            ..all.clone()
        };
        let rows = export_rows(&archived, &one_user, &HashMap::new()).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].uint(0).expect("seq"), 2);
        let path = records[0].user_context.hierarchy.department_path.clone();
        let subtree = Filter {
            department_path: Some(path.clone()),
            ..all.clone()
        };
        let expected = records
            .iter()
            .filter(|a| a.user_context.hierarchy.department_path.starts_with(&path))
            .count();
        assert_eq!(
            export_rows(&archived, &subtree, &HashMap::new())
                .expect("rows")
                .len(),
            expected
        );
        let later = Filter {
            from: now.millis() + 1,
            ..all
        };
        assert!(
            export_rows(&archived, &later, &HashMap::new())
                .expect("rows")
                .is_empty()
        );
    }
}
