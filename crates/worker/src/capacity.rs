//! D1's 10 GB per database, kept from ever being reached by ingest
//! (`crm_store::database_size`): every D1 batch reports the database's size after it,
//! a writer records it (at most once a minute per isolate and shard), and ingest reads
//! the recorded size (cached for [`CACHE_MS`] per isolate and shard) and answers 507
//! from `INGEST_STOP_BYTES` on — before anything is queued, so nothing acknowledged
//! meets a full database. `D1_INGEST_STOP_BYTES` lowers the threshold (smaller plans;
//! the tests).

use std::cell::RefCell;
use std::collections::HashMap;

use crm_store::database_size;
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{ApiResult, Failure};

/// How long an isolate trusts the size it read: ingest costs one more query per shard
/// this often, and a database grows far less than the margin in that time.
const CACHE_MS: i64 = 10_000;

#[derive(Default)]
struct Shard {
    /// The size the last batch on this shard reported.
    measured: Option<u64>,
    /// When this isolate last recorded a size for the shard.
    recorded_at: Option<i64>,
    /// The recorded size ingest last read, and when.
    read: Option<(Option<u64>, i64)>,
}

thread_local! {
    static SHARDS: RefCell<HashMap<u32, Shard>> = RefCell::default();
}

fn with<T>(shard: u32, f: impl FnOnce(&mut Shard) -> T) -> T {
    SHARDS.with(|s| f(s.borrow_mut().entry(shard).or_default()))
}

/// What a batch reported (`meta.size_after`).
pub fn measured(shard: u32, size_bytes: u64) {
    with(shard, |s| s.measured = Some(size_bytes));
}

/// Records the shard's measured size when this isolate has not for a minute (after a
/// write, by the consumer and sync writers). A failure only delays the record.
pub async fn record_if_due(db: &Db) {
    let now = now_ms();
    let due = with(db.shard_number(), |s| match s.measured {
        Some(size)
            if s.recorded_at
                .is_none_or(|t| now - t >= database_size::RECORD_EVERY_MS) =>
        {
            s.recorded_at = Some(now);
            Some(size)
        }
        _ => None,
    });
    if let Some(size) = due
        && let Err(e) = d1::transaction(db, &[database_size::record(DIALECT, size, now)]).await
    {
        worker::console_error!("recording the database size failed: {}", e.message());
    }
}

fn stop_at(env: &Env) -> u64 {
    env.var("D1_INGEST_STOP_BYTES")
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(database_size::INGEST_STOP_BYTES)
}

/// Refuses new activities for a database at its stop size (507, nothing queued).
pub async fn admit(env: &Env, db: &Db) -> ApiResult<()> {
    let now = now_ms();
    let cached = with(db.shard_number(), |s| {
        s.read.filter(|(_, at)| now - at < CACHE_MS).map(|(v, _)| v)
    });
    let size = match cached {
        Some(v) => v,
        None => {
            let row = d1::query_opt(db, &database_size::read(DIALECT)).await?;
            let v = database_size::decode(row.as_ref())?;
            with(db.shard_number(), |s| s.read = Some((v, now)));
            v
        }
    };
    let stop = stop_at(env);
    if database_size::admits(size, stop) {
        Ok(())
    } else {
        Err(Failure::from(crm_api::storage::nearly_full(
            size.unwrap_or(stop),
            stop,
        )))
    }
}
