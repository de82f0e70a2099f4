//! `POST /v1/subjects/{userId}/erase` at the edge (`crm_api::erasure`), as crm-host
//! answers it: the keys destroyed in the D1 transaction that records the erasure,
//! then the scrub a chunk per transaction, within the request's budget.

use crm_api::erasure::{self, ErasureAnswer, MAX_SCRUB_CHUNKS};
use crm_core::Timestamp;
use crm_store::erasure::Scrub;
use crm_store::keys::KeyScope;
use crm_store::subject_keys;
use worker::Env;

use crate::auth::now_ms;
use crate::consumer::{self, Item};
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::{ingest, store};

pub async fn erase(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let snap = store::snapshot(env, &caller).await?;
    let subject = erasure::subject(&ctx.param("userId")?, &snap.directory)?;
    let tenant = caller.tenant().to_owned();
    let db = Db::of_tenant(env, &tenant).await?;
    let keys = match d1::query_opt(&db, &subject_keys::count(DIALECT, &tenant, &subject)).await? {
        Some(row) => row.uint(0)?,
        None => 0,
    };
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
    let destroy = subject_keys::destroy(DIALECT, &tenant, &subject);
    let record = consumer::write(
        env,
        &tenant,
        std::slice::from_ref(&item),
        &[now.millis()],
        std::slice::from_ref(&destroy),
    )
    .await?
    .map_err(|c| Failure(crm_api::error::ApiError::conflict(c.message())))?
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
            record,
            rows_scrubbed: scrub.scrubbed(),
            complete: scrub.is_done(),
        },
    )
}
