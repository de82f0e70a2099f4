//! Cold history in R2 (`crm_store::archive`): `POST /v1/archive` moves a tenant's
//! oldest records out of its shard's D1 database into NDJSON objects in the `ARCHIVE`
//! bucket, and export and the audit read them back before the rows still in D1.

use crm_api::edge::{ArchiveAnswer, ArchiveRequest};
use crm_core::Timestamp;
use crm_store::archive::{self, Archived, Planner, Segment, SegmentReader};
use crm_store::keys::KeyScope;
use futures_util::StreamExt;
use worker::Env;

use crate::auth::now_ms;
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};

/// The R2 binding (`wrangler.toml`).
const BUCKET: &str = "ARCHIVE";

/// Segments one request stores at most: each is up to ten D1 reads, one R2 put and one
/// D1 batch, far inside an invocation's 1,000 subrequests and its CPU time, and each is
/// built and dropped before the next (`archive::MAX_SEGMENT_BYTES` of memory).
const MAX_SEGMENTS_PER_CALL: usize = 5;

/// `POST /v1/archive` (admin).
pub async fn archive(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Admin)?;
    let request: ArchiveRequest = ctx.parse()?;
    let tenant = caller.tenant();
    let db = Db::of_tenant(env, tenant).await?;
    let bucket = env.bucket(BUCKET)?;
    let mut stored: Vec<Segment> = Vec::new();
    for _ in 0..MAX_SEGMENTS_PER_CALL {
        let now = Timestamp::from_millis(now_ms())?;
        let mut planner = Planner::new(tenant, request.older_than_days, now)?;
        // The upstream reads what it sends from D1: archive only what it confirmed.
        if crate::upstream::url(env).is_some() {
            planner = planner.not_past(crate::upstream::delivered(&db, tenant).await?);
        }
        while let Some(st) = planner.next(DIALECT) {
            planner.feed(&d1::query(&db, &st).await?)?;
        }
        let held_back = planner.held_back();
        let Some(plan) = planner.finish(DIALECT)? else {
            return Answer::of(
                200,
                &ArchiveAnswer {
                    archived: stored,
                    more: false,
                    held_back_by_sink: held_back,
                },
            );
        };
        // The object first: a record is deleted from D1 only once R2 holds it.
        crate::invocation::spend_subrequest()?;
        bucket
            .put(&plan.segment.object_key, plan.object.into_bytes())
            .execute()
            .await?;
        d1::transaction(&db, &plan.statements).await?;
        stored.push(plan.segment);
    }
    Answer::of(
        200,
        &ArchiveAnswer {
            archived: stored,
            more: true,
            held_back_by_sink: false,
        },
    )
}

/// A segment's records from R2, or why its object does not match the segment.
pub async fn records(env: &Env, segment: &Segment) -> ApiResult<Result<Vec<Archived>, String>> {
    crate::invocation::spend_subrequest()?;
    let Some(object) = env
        .bucket(BUCKET)?
        .get(&segment.object_key)
        .execute()
        .await?
    else {
        return Ok(Err(format!(
            "archived segment {}–{}: its object {} is missing",
            segment.first_seq, segment.last_seq, segment.object_key
        )));
    };
    let body = object
        .body()
        .ok_or_else(|| Failure::internal("an archive object without a body"))?;
    // Piece by piece as R2 sends it: the object's text is never held whole.
    let mut stream = body.stream()?;
    let mut reader = SegmentReader::new(segment);
    let mut records = Vec::new();
    while let Some(piece) = stream.next().await {
        match reader.push(&piece?) {
            Ok(more) => records.extend(more),
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(reader.finish().map(|last| {
        records.extend(last);
        records
    }))
}

/// Deletes the tenant's segment objects whose records all lie at or before `anchor`
/// (retention moved past them). Idempotent: a pass that failed half way is finished by
/// the next.
pub async fn delete_objects_through(env: &Env, tenant: &str, anchor: u64) -> ApiResult<()> {
    let bucket = env.bucket(BUCKET)?;
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().prefix(archive::tenant_prefix(tenant));
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        crate::invocation::spend_subrequest()?;
        let page = list.execute().await?;
        let expired: Vec<String> = page
            .objects()
            .iter()
            .map(|o| o.key())
            .filter(|k| archive::key_last_seq(k).is_some_and(|last| last <= anchor))
            .collect();
        if !expired.is_empty() {
            crate::invocation::spend_subrequest()?;
            bucket.delete_multiple(expired).await?;
        }
        match page.cursor() {
            Some(c) if page.truncated() => cursor = Some(c),
            _ => return Ok(()),
        }
    }
}
