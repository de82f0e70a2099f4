//! Erasing a subject (`POST /v1/subjects/{userId}/erase`, `crm_core::personal`): its
//! keys are destroyed and the erasure is recorded in the chain (one transaction, see
//! the runtimes), then [`Scrub`] removes what is kept in the clear beside the sealed
//! records — the IP address and location search columns of the subject's rows, and
//! those values in the report rollups, whose counts move to `[erased]` so reports keep
//! their totals.
//!
//! [`Scrub`] is a state machine like the audit: [`Scrub::next`] asks for the next rows,
//! [`Scrub::feed`] answers the statements of one transaction for them. A chunk is
//! scrubbed and its rollups moved in the same transaction, and a scrubbed row is
//! skipped when read again, so a pass cut short anywhere is resumed by the next one.

use std::collections::{BTreeMap, HashMap};

use crm_core::personal::ERASED;
use crm_core::report::{Dimension, Tier};

use crate::archive::Archived;
use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::rollups;
use crate::sql::{Row, Statement, Value, seq};

/// Rows per scrub transaction: its rollup moves stay a few dozen statements (D1 counts
/// each against an invocation's 1,000 queries).
pub const SCRUB_ROWS: usize = 200;

/// Whether the tenant holds any record of `subject`: `SELECT 1`, a row or none.
pub fn has_records(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "SELECT 1 FROM activities WHERE tenant_id = ?1 AND user_id = ?2 LIMIT 1",
        vec![tenant_id.into(), subject.into()],
    )
}

/// How far an erasure has moved the rollup values of the subject's archived records:
/// `SELECT archived_through` (no row: not started).
pub fn progress(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "SELECT archived_through FROM erasure_progress WHERE tenant_id = ?1 AND subject_id = ?2",
        vec![tenant_id.into(), subject.into()],
    )
}

/// Forgets the progress: in the transaction that destroys the subject's keys.
pub fn forget_progress(d: Dialect, tenant_id: &str, subject: &str) -> Statement {
    d.stmt(
        "DELETE FROM erasure_progress WHERE tenant_id = ?1 AND subject_id = ?2",
        vec![tenant_id.into(), subject.into()],
    )
}

/// The statements of one transaction that move the rollup values of `subject`'s
/// records in one archived segment (opened with the subject's keys: `materials` by key
/// id, read before they are destroyed) and record that the erasure has passed
/// `through`, the segment's last seq.
pub fn archived(
    d: Dialect,
    tenant_id: &str,
    subject: &str,
    records: &[Archived],
    materials: &HashMap<String, String>,
    through: u64,
) -> Vec<Statement> {
    let mut moves = Moves::default();
    let sealed = |r: &&Archived| r.activity.user_id == subject && r.activity.personal.is_some();
    for r in records.iter().filter(sealed) {
        let mut a = r.activity.clone();
        crate::subject_keys::open_with(&mut a, materials);
        let h = &a.user_context.hierarchy;
        moves.add(
            a.occurred_at.millis(),
            &h.department_path,
            &h.department_id,
            a.compliance.ip_address.as_deref(),
            a.compliance.location.as_deref(),
            a.credits.units(),
        );
    }
    let mut out = moves.statements(d, tenant_id);
    out.push(d.stmt(
        "INSERT INTO erasure_progress (tenant_id, subject_id, archived_through) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, subject_id) DO UPDATE SET archived_through = excluded.archived_through",
        vec![tenant_id.into(), subject.into(), seq(through)],
    ));
    out
}

/// Scrubs one subject's rows, a chunk at a time, in `(occurred_at, seq)` order.
#[derive(Debug, Clone)]
pub struct Scrub {
    tenant_id: String,
    subject: String,
    after: Option<(i64, u64)>,
    done: bool,
    scrubbed: u64,
}

/// One rollup row's key, owned.
type RollupKey = (Tier, i64, String, String, Dimension, String);

impl Scrub {
    pub fn new(tenant_id: &str, subject: &str) -> Scrub {
        Scrub {
            tenant_id: tenant_id.to_owned(),
            subject: subject.to_owned(),
            after: None,
            done: false,
            scrubbed: 0,
        }
    }

    /// Rows scrubbed so far.
    pub fn scrubbed(&self) -> u64 {
        self.scrubbed
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next chunk of the subject's sealed rows, or `None` when all are scrubbed.
    pub fn next(&self, d: Dialect) -> Option<Statement> {
        if self.done {
            return None;
        }
        let (at, after_seq) = self.after.unwrap_or((i64::MIN, 0));
        Some(d.stmt(
            &format!(
                "SELECT seq, occurred_at, department_path, department_id, ip_address, location,
                        {}
                 FROM activities
                 WHERE tenant_id = ?1 AND user_id = ?2 AND key_id IS NOT NULL
                   AND (occurred_at > ?3 OR (occurred_at = ?3 AND seq > ?4))
                 ORDER BY occurred_at, seq LIMIT {SCRUB_ROWS}",
                d.money("credits_units")
            ),
            vec![
                self.tenant_id.as_str().into(),
                self.subject.as_str().into(),
                at.into(),
                seq(after_seq),
            ],
        ))
    }

    /// Takes the rows [`Scrub::next`] read; answers the statements of one transaction
    /// that scrub them and move their rollup values (none when nothing is left clear).
    pub fn feed(&mut self, d: Dialect, rows: &[Row]) -> StoreResult<Vec<Statement>> {
        if rows.len() < SCRUB_ROWS {
            self.done = true;
        }
        let mut moves = Moves::default();
        let mut seqs = Vec::new();
        for row in rows {
            let (s, at) = (row.uint(0)?, row.int(1)?);
            self.after = Some((at, s));
            let (path, dept) = (row.text(2)?, row.text(3)?);
            if moves.add(
                at,
                path,
                dept,
                row.opt_text(4)?,
                row.opt_text(5)?,
                row.int(6)?,
            ) {
                seqs.push(s);
            }
        }
        self.scrubbed += seqs.len() as u64;
        let mut out = moves.statements(d, &self.tenant_id);
        let per = d.max_params().saturating_sub(1).clamp(1, 500);
        for chunk in seqs.chunks(per) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
            let mut params: Vec<Value> = vec![self.tenant_id.as_str().into()];
            params.extend(chunk.iter().map(|s| seq(*s)));
            out.push(d.stmt(
                &format!(
                    "UPDATE activities
                     SET ip_address = CASE WHEN ip_address IS NULL THEN NULL ELSE '{ERASED}' END,
                         location = CASE WHEN location IS NULL THEN NULL ELSE '{ERASED}' END
                     WHERE tenant_id = ?1 AND seq IN ({})",
                    marks.join(", ")
                ),
                params,
            ));
        }
        Ok(out)
    }
}

/// Rollup values to move to `[erased]`: per rollup row, the activities and credits.
#[derive(Debug, Default)]
struct Moves(BTreeMap<RollupKey, (i64, i64)>);

impl Moves {
    /// Adds one activity's personal rollup values (those not erased yet); false when it
    /// has none.
    fn add(
        &mut self,
        at: i64,
        path: &str,
        dept: &str,
        ip: Option<&str>,
        location: Option<&str>,
        credits: i64,
    ) -> bool {
        let clear = |v: Option<&str>| v.filter(|v| *v != ERASED).map(str::to_owned);
        let (ip, location) = (clear(ip), clear(location));
        if ip.is_none() && location.is_none() {
            return false;
        }
        for tier in Tier::ALL {
            for &dim in tier.dimensions() {
                let value = match dim {
                    Dimension::IpAddress => &ip,
                    Dimension::Location => &location,
                    _ => continue,
                };
                if let Some(v) = value {
                    let key = (
                        tier,
                        tier.start(at),
                        path.to_owned(),
                        dept.to_owned(),
                        dim,
                        v.clone(),
                    );
                    let m = self.0.entry(key).or_default();
                    m.0 += 1;
                    m.1 += credits;
                }
            }
        }
        true
    }

    fn statements(&self, d: Dialect, tenant_id: &str) -> Vec<Statement> {
        self.0
            .iter()
            .flat_map(|(key, (count, credits))| move_to_erased(d, tenant_id, key, *count, *credits))
            .collect()
    }
}

/// Moves `count` activities (and their credits) of one rollup row to the same row
/// with the value `[erased]`, and removes the row once empty. Guarded on the row
/// holding them: a value compaction already folded into `(other)` is not stored
/// by name any more, and its counts stay where they are.
fn move_to_erased(
    d: Dialect,
    tenant_id: &str,
    key: &RollupKey,
    count: i64,
    credits: i64,
) -> Vec<Statement> {
    let (tier, period, path, dept, dim, value) = key;
    let params = || -> Vec<Value> {
        vec![
            tenant_id.into(),
            tier.as_str().into(),
            (*period).into(),
            path.as_str().into(),
            dept.as_str().into(),
            dim.as_str().into(),
            value.as_str().into(),
            count.into(),
            credits.into(),
        ]
    };
    let row = "tenant_id = ?1 AND tier = ?2 AND period_start = ?3 AND department_path = ?4
               AND department_id = ?5 AND dimension = ?6 AND value = ?7";
    vec![
        d.stmt(
            &format!(
                "INSERT INTO report_rollups ({}, count, credits_units, latest)
                 SELECT tenant_id, tier, period_start, department_path, department_id,
                        dimension, '{ERASED}', ?8, ?9, latest
                 FROM report_rollups WHERE {row} AND count >= ?8
                 {}",
                rollups::KEY_COLUMNS,
                rollups::merge_sums(d)
            ),
            params(),
        ),
        d.stmt(
            &format!(
                "UPDATE report_rollups SET count = count - ?8, credits_units = credits_units - ?9
                 WHERE {row} AND count >= ?8"
            ),
            params(),
        ),
        d.stmt(
            &format!("DELETE FROM report_rollups WHERE {row} AND count = 0"),
            params()[..7].to_vec(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, ip: Option<&str>, location: Option<&str>) -> Row {
        let text = |v: Option<&str>| Value::Text(v.map(str::to_owned));
        Row(vec![
            Value::Int(Some(seq)),
            Value::Int(Some(1_800_000_000_000 + seq)),
            text(Some("/d/")),
            text(Some("d")),
            text(ip),
            text(location),
            Value::Int(Some(5_000)),
        ])
    }

    #[test]
    fn a_chunk_moves_each_clear_value_once_and_skips_what_is_erased() {
        let mut scrub = Scrub::new("t", "u");
        assert!(scrub.next(Dialect::Sqlite).is_some());
        let rows = [
            row(1, Some("203.0.113.7"), Some("Lisbon")),
            row(2, Some(ERASED), None),
            row(3, Some("203.0.113.7"), None),
        ];
        let statements = scrub.feed(Dialect::Sqlite, &rows).expect("feeds");
        // Two breakdown tiers (hour, day) × (one IP + one location) rollup rows, each
        // moved by three statements, then one update of rows 1 and 3.
        assert_eq!(statements.len(), 4 * 3 + 1);
        let update = statements.last().expect("update");
        assert!(update.sql.starts_with("UPDATE activities"));
        assert_eq!(update.params.len(), 3, "the tenant and two seqs");
        let ip_move = statements
            .iter()
            .find(|s| {
                s.sql.contains("INSERT") && s.params[6] == Value::Text(Some("203.0.113.7".into()))
            })
            .expect("the IP's move");
        assert_eq!(
            ip_move.params[7],
            Value::Int(Some(2)),
            "both rows of the hour"
        );
        assert_eq!(ip_move.params[8], Value::Int(Some(10_000)));
        assert_eq!(scrub.scrubbed(), 2);
        assert!(scrub.is_done(), "a short chunk is the last");
        assert!(scrub.next(Dialect::Sqlite).is_none());
    }

    #[test]
    fn a_full_chunk_continues_after_its_last_row() {
        let mut scrub = Scrub::new("t", "u");
        let rows: Vec<Row> = (1..=SCRUB_ROWS as i64)
            .map(|s| row(s, None, None))
            .collect();
        assert!(
            scrub
                .feed(Dialect::Sqlite, &rows)
                .expect("feeds")
                .is_empty()
        );
        let next = scrub.next(Dialect::Sqlite).expect("more");
        assert_eq!(next.params[3], seq(SCRUB_ROWS as u64));
    }
}
