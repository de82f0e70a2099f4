//! `POST /v1/subjects/{userId}/erase` at the edge (`crm_api::erasure`), as crm-host
//! answers it: the rollup values of archived records moved first (a segment per
//! transaction, while the keys still open them), the keys destroyed in the D1
//! transaction that records the erasure, then the scrub a chunk per transaction.

use crm_api::erasure::{self, ERASE_QUERY_BUDGET, ErasureAnswer, MAX_SCRUB_CHUNKS};
use crm_core::Timestamp;
use crm_store::erasure::Scrub;
use crm_store::keys::KeyScope;
use crm_store::subject_keys;
use worker::Env;

use crate::auth::now_ms;
use crate::consumer::{self, Item};
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{archive, ingest, store};

/// [`ERASE_QUERY_BUDGET`], lowered by the tests (`ERASE_QUERY_BUDGET`) to show an
/// erasure that continues over several requests.
fn query_budget(env: &Env) -> usize {
    env.var("ERASE_QUERY_BUDGET")
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(ERASE_QUERY_BUDGET)
}

pub async fn erase(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let snap = store::snapshot(env, &caller).await?;
    let subject = erasure::subject(&ctx.param("userId")?, &snap.directory)?;
    let tenant = caller.tenant().to_owned();
    let db = Db::of_tenant(env, &tenant).await?;
    let materials = subject_keys::materials(
        &d1::query(&db, &subject_keys::of_subject(DIALECT, &tenant, &subject)).await?,
    )?;
    let keys = materials.len() as u64;
    if keys == 0
        && d1::query_opt(
            &db,
            &crm_store::erasure::has_records(DIALECT, &tenant, &subject),
        )
        .await?
        .is_none()
    {
        return Err(erasure::unknown(&subject).into());
    }
    let mut archived_segments = 0;
    if keys > 0 {
        let mut through = match d1::query_opt(
            &db,
            &crm_store::erasure::progress(DIALECT, &tenant, &subject),
        )
        .await?
        {
            Some(row) => row.uint(0)?,
            None => 0,
        };
        while let Some(segment) = archive::segment_after(&db, &tenant, through).await? {
            let records = archive::records(env, &segment)
                .await?
                .map_err(Failure::internal)?;
            let statements = crm_store::erasure::archived(
                DIALECT,
                &tenant,
                &subject,
                &records,
                &materials,
                segment.last_seq,
            );
            let spent = crate::invocation::queries_spent() as usize;
            if archived_segments > 0 && spent + statements.len() > query_budget(env) {
                return Answer::of(
                    200,
                    &ErasureAnswer {
                        subject,
                        keys_destroyed: 0,
                        record: None,
                        rows_scrubbed: 0,
                        archived_segments,
                        complete: false,
                    },
                );
            }
            d1::transaction(&db, &statements).await?;
            through = segment.last_seq;
            archived_segments += 1;
        }
    }
    let now = Timestamp::from_millis(now_ms())?;
    let (activity, input_hash) = erasure::record(
        &tenant,
        &subject,
        &erasure::requested_by(&caller.principal),
        keys,
        ingest::fresh_id(now)?,
        now,
    );
    let item = Item {
        activity,
        input_hash,
    };
    let first = [
        subject_keys::destroy(DIALECT, &tenant, &subject),
        crm_store::erasure::forget_progress(DIALECT, &tenant, &subject),
    ];
    let record = consumer::write(
        env,
        &tenant,
        std::slice::from_ref(&item),
        &[now.millis()],
        &first,
    )
    .await?
    .map_err(|r| r.or_conflict(|c| Failure(crm_api::error::ApiError::conflict(c.message()))))?
    .pop()
    .ok_or_else(|| Failure::internal("recording answered nothing"))?;
    let mut scrub = Scrub::new(&tenant, &subject);
    for _ in 0..MAX_SCRUB_CHUNKS {
        let Some(read) = scrub.next(DIALECT) else {
            break;
        };
        let rows = d1::query(&db, &read).await?;
        d1::transaction(&db, &scrub.feed(DIALECT, &rows)?).await?;
    }
    Answer::of(
        200,
        &ErasureAnswer {
            subject,
            keys_destroyed: keys,
            record: Some(record),
            archived_segments,
            rows_scrubbed: scrub.scrubbed(),
            complete: scrub.is_done(),
        },
    )
}
