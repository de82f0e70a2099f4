//! `POST /v1/subjects/{userId}/erase` (`crm_api::erasure`): the keys destroyed and the
//! erasure recorded in one writer transaction, then the scrub a chunk per transaction.

use axum::Json;
use axum::extract::{Path, State};
use crm_api::erasure::{self, ErasureAnswer, MAX_SCRUB_CHUNKS};
use crm_store::erasure::Scrub;
use crm_store::keys::KeyScope;
use crm_store::subject_keys;

use super::auth::Caller;
use crate::error::{HostError, HostResult};
use crate::service::{App, clock};
use crate::store::{Heads, IngestItem};

pub async fn erase(
    State(app): State<App>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> HostResult<Json<ErasureAnswer>> {
    caller.require(KeyScope::Admin)?;
    let tenant = caller.snapshot(&app).await?;
    let subject = erasure::subject(&user_id, &tenant.snapshot.directory)?;
    let now = clock::now();
    let (id, requested_by) = (app.ids.next(now), erasure::requested_by(&caller.principal));
    let d = app.store.dialect();
    let (t, s) = (tenant.clone(), subject.clone());
    let (keys_destroyed, record) = app
        .store
        .write(Some(tenant.id()), move |c| {
            let keys = c
                .query_opt(&subject_keys::count(d, t.id(), &s))?
                .map(|r| r.uint(0))
                .transpose()?
                .unwrap_or(0);
            if keys == 0
                && c.query_opt(&crm_store::erasure::has_records(d, t.id(), &s))?
                    .is_none()
            {
                return Err(erasure::unknown(&s).into());
            }
            c.execute(&subject_keys::destroy(d, t.id(), &s))?;
            let (activity, input_hash) = erasure::record(t.id(), &s, &requested_by, keys, id, now);
            let item = IngestItem {
                activity,
                input_hash,
            };
            let stored = crate::store::record(c, &t, vec![item], now.millis(), &mut Heads::new())?;
            let record = stored
                .into_iter()
                .next()
                .ok_or_else(|| HostError::internal(anyhow::anyhow!("no erasure record")))?;
            Ok((keys, record))
        })
        .await?;
    let mut scrub = Scrub::new(tenant.id(), &subject);
    for _ in 0..MAX_SCRUB_CHUNKS {
        let Some(read) = scrub.next(d) else { break };
        scrub = app
            .store
            .write(Some(tenant.id()), move |c| {
                let rows = c.query(&read)?;
                let statements = scrub.feed(d, &rows)?;
                c.execute_all(&statements)?;
                Ok(scrub)
            })
            .await?;
    }
    Ok(Json(ErasureAnswer {
        subject,
        keys_destroyed,
        record: Some(record),
        archived_segments: 0,
        rows_scrubbed: scrub.scrubbed(),
        complete: scrub.is_done(),
    }))
}
