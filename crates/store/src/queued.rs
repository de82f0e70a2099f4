//! Ids accepted for a queue but not written yet (the edge's ingest answers 202 before
//! its consumer writes). Reserving them lets a second request with the same id and
//! other content be refused before its 202, and a retry with the same content replay;
//! the consumer releases them in the transaction that writes the activities.
//! A reservation older than [`QUEUED_TTL_MS`] no longer counts: its messages were
//! written or dead-lettered long ago, and the stored activities decide from then on.

use std::collections::HashMap;

use crate::dialect::Dialect;
use crate::error::StoreResult;
use crate::ingest::{Candidate, IdConflict};
use crate::sql::{Row, Statement, Value};

/// How long a reservation counts: longer than a message can stay queued — 30 retries on
/// the ingest queue (~22 h) and 100 on the dead-letter queue (~4 days) at the delays
/// of [`retry_delay_seconds`] — so a second request with the same id and other content
/// is refused before its 202 for as long as the first may still be written. (It was an
/// hour: past it, both were accepted and the later one dead-lettered after its 202.)
/// A letter parked in D1 and re-driven later is checked when it is written.
pub const QUEUED_TTL_MS: i64 = 7 * 86_400_000;

/// Records `items` as queued (an id reserved earlier keeps its first content).
pub fn reserve(d: Dialect, tenant_id: &str, items: &[Candidate<'_>], now: i64) -> Vec<Statement> {
    let per = (d.max_params().saturating_sub(1) / 4).clamp(1, 100);
    items
        .chunks(per)
        .map(|chunk| {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(?{}, ?{}, ?{}, ?{})",
                        4 * i + 1,
                        4 * i + 2,
                        4 * i + 3,
                        4 * i + 4
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO queued_ids (tenant_id, id, input_hash, queued_at) VALUES {}
                 ON CONFLICT (tenant_id, id) DO UPDATE SET input_hash = excluded.input_hash,
                     queued_at = excluded.queued_at
                 WHERE queued_ids.queued_at < ?{}",
                rows.join(", "),
                4 * chunk.len() + 1
            );
            let mut params = Vec::with_capacity(4 * chunk.len() + 1);
            for c in chunk {
                params.extend([
                    Value::from(tenant_id),
                    Value::from(c.id),
                    Value::from(c.input_hash),
                    Value::from(now),
                ]);
            }
            params.push(Value::from(now - QUEUED_TTL_MS));
            d.stmt(&sql, params)
        })
        .collect()
}

/// Live reservations among `ids`: `SELECT id, input_hash`.
pub fn lookup(d: Dialect, tenant_id: &str, ids: &[&str], now: i64) -> Vec<Statement> {
    let per = d.max_params().saturating_sub(2).clamp(1, 500);
    ids.chunks(per)
        .map(|chunk| {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 3)).collect();
            let sql = format!(
                "SELECT id, input_hash FROM queued_ids
                 WHERE tenant_id = ?1 AND queued_at >= ?2 AND id IN ({})",
                marks.join(", ")
            );
            let mut params = vec![Value::from(tenant_id), Value::from(now - QUEUED_TTL_MS)];
            params.extend(chunk.iter().map(|id| Value::from(*id)));
            d.stmt(&sql, params)
        })
        .collect()
}

pub fn decode(row: &Row) -> StoreResult<(String, String)> {
    Ok((row.string(0)?, row.string(1)?))
}

/// Removes the reservations of written (or dead-lettered) ids, and any of the
/// tenant's reservations past their time.
pub fn release(d: Dialect, tenant_id: &str, ids: &[&str], now: i64) -> Vec<Statement> {
    let per = d.max_params().saturating_sub(2).clamp(1, 500);
    let mut out: Vec<Statement> = ids
        .chunks(per)
        .map(|chunk| {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let sql = format!(
                "DELETE FROM queued_ids WHERE tenant_id = ?1 AND id IN ({})",
                marks.join(", ")
            );
            let mut params = vec![Value::from(tenant_id)];
            params.extend(chunk.iter().map(|id| Value::from(*id)));
            d.stmt(&sql, params)
        })
        .collect();
    out.push(d.stmt(
        "DELETE FROM queued_ids WHERE tenant_id = ?1 AND queued_at < ?2",
        vec![tenant_id.into(), Value::from(now - QUEUED_TTL_MS)],
    ));
    out
}

/// The first item whose id is queued with other content.
pub fn conflict(
    items: &[Candidate<'_>],
    queued: &HashMap<String, String>,
) -> Result<(), IdConflict> {
    match items
        .iter()
        .enumerate()
        .find(|(_, c)| queued.get(c.id).is_some_and(|h| h != c.input_hash))
    {
        Some((index, c)) => Err(IdConflict {
            id: c.id.to_owned(),
            index,
            stored: true,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_within_the_d1_parameter_limit() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("a{i}")).collect();
        let items: Vec<Candidate<'_>> = ids
            .iter()
            .map(|id| Candidate {
                id,
                input_hash: "h",
            })
            .collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        for st in reserve(Dialect::D1, "t", &items, 0)
            .iter()
            .chain(&lookup(Dialect::D1, "t", &refs, 0))
            .chain(&release(Dialect::D1, "t", &refs, 0))
        {
            assert!(st.params.len() <= Dialect::D1.max_params(), "{}", st.sql);
        }
    }

    #[test]
    fn only_other_content_under_a_queued_id_conflicts() {
        let queued = HashMap::from([("a".to_owned(), "h1".to_owned())]);
        let same = [Candidate {
            id: "a",
            input_hash: "h1",
        }];
        let other = [
            Candidate {
                id: "b",
                input_hash: "h9",
            },
            Candidate {
                id: "a",
                input_hash: "h2",
            },
        ];
        assert!(conflict(&same, &queued).is_ok());
        assert_eq!(conflict(&other, &queued).expect_err("conflict").index, 1);
    }
}

/// Shortest delay before a failed queue message is delivered again: a retry without a
/// delay comes in the next batch, and a D1 outage of a minute would exhaust every retry.
pub const MIN_RETRY_DELAY_SECONDS: u32 = 10;
/// Longest delay between deliveries: an outage past an hour is still retried hourly.
pub const MAX_RETRY_DELAY_SECONDS: u32 = 3_600;

/// How long a message that failed should wait before its next delivery: as long as it
/// has already been in the queue (so the wait doubles with each attempt, without the
/// platform having to tell the attempt number), within [`MIN_RETRY_DELAY_SECONDS`] and
/// [`MAX_RETRY_DELAY_SECONDS`]. With the consumers' `max_retries = 30` (wrangler.toml)
/// a message survives an outage of about 22 hours before it reaches the dead-letter
/// queue, whose consumer retries the same way 100 times (about four days) more.
pub fn retry_delay_seconds(sent_at_ms: i64, now_ms: i64) -> u32 {
    let age = u32::try_from(now_ms.saturating_sub(sent_at_ms).max(0) / 1_000).unwrap_or(u32::MAX);
    age.clamp(MIN_RETRY_DELAY_SECONDS, MAX_RETRY_DELAY_SECONDS)
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn retries_wait_longer_the_longer_a_message_has_failed() {
        assert_eq!(retry_delay_seconds(0, 0), MIN_RETRY_DELAY_SECONDS);
        assert_eq!(
            retry_delay_seconds(1_000, 0),
            MIN_RETRY_DELAY_SECONDS,
            "clock skew"
        );
        assert_eq!(retry_delay_seconds(0, 40_000), 40);
        assert_eq!(retry_delay_seconds(0, 86_400_000), MAX_RETRY_DELAY_SECONDS);
        // Doubling: each delivery happens at about twice the age of the one before, so
        // the 30 retries of wrangler.toml span 10 s, 20 s, … then hourly: ~22 hours.
        let mut at = 0_i64;
        for _ in 0..30 {
            at += i64::from(retry_delay_seconds(0, at)) * 1_000;
        }
        assert!(at > 20 * 3_600_000, "{at} ms");
    }

    /// The longest a message can stay queued (wrangler.toml: `max_retries` 30 on the
    /// ingest queues, 100 on the dead-letter queue, whose message is new when sent)
    /// stays inside a reservation's lifetime.
    #[test]
    fn a_reservation_outlives_every_retry_of_both_queues() {
        let span = |retries: u32| {
            let mut at = 0_i64;
            for _ in 0..retries {
                at += i64::from(retry_delay_seconds(0, at)) * 1_000;
            }
            at
        };
        let longest = span(30) + span(100);
        assert!(longest > 4 * 86_400_000, "{longest} ms");
        assert!(QUEUED_TTL_MS > longest, "{QUEUED_TTL_MS} <= {longest}");
    }
}
