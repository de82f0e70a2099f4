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

/// How long a reservation counts: far beyond the queue's retries (minutes), short
/// enough that a dead-lettered message does not block its id for long.
pub const QUEUED_TTL_MS: i64 = 3_600_000;

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
