//! Export and audit at the edge: the log in chain order — archived segments from R2
//! first, then D1 a chunk at a time — encoded by `crm_store::export` (NDJSON exactly as
//! hashed, or CSV), and the chain verified by `crm_store::audit`, the same code
//! crm-host runs.

use crm_api::checkpoint::CheckpointKey;
use crm_core::Timestamp;
use crm_store::activities::Filter;
use crm_store::archive::Archived;
use crm_store::audit::Audit;
use crm_store::export::{self, CHUNK, Format};
use crm_store::keys::KeyScope;
use crm_store::listing::Subject;
use crm_store::subject_keys;
use worker::{Env, Response, ResponseBuilder};

use crate::archive;
use crate::auth;
use crate::d1::{self, DIALECT, Db};
use crate::http::{Answer, ApiResult, Ctx, Failure};
use crate::store;

/// Most bytes of records one export response starts another chunk after: the body is
/// built in memory and an isolate has 128 MB, so the cap is on bytes (50,000 records
/// at the metadata cap were ~600 MB). One chunk read past it (1,000 records of at most
/// ~12 KB) keeps a response under ~30 MB. Larger exports page with `afterSeq`;
/// `EXPORT_MAX_BYTES` lowers the cap (the tests).
const MAX_EXPORT_BYTES: usize = 16 << 20;

/// Room reserved past [`MAX_EXPORT_BYTES`] for the chunk that passes it (an eighth:
/// 2 MiB, a thousand records of ~2 KB).
const EXPORT_SLACK_DIVISOR: usize = 8;

fn max_export_bytes(env: &Env) -> usize {
    env.var("EXPORT_MAX_BYTES")
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(MAX_EXPORT_BYTES)
}

/// `GET /v1/export`: the records after `afterSeq`, up to about [`MAX_EXPORT_BYTES`];
/// when more remain, the `x-next-after-seq` header says where the next page starts.
pub async fn export(ctx: &mut Ctx, env: &Env) -> ApiResult<Response> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Read)?;
    let params = ctx.query.clone();
    let get = |k: &str| params.get(k).map(String::as_str);
    let format = Format::parse(get("format").unwrap_or("ndjson"))?;
    let snap = store::snapshot(env, &caller).await?;
    let now = Timestamp::from_millis(auth::now_ms())?;
    let range = crm_api::listing::export_range(&params, now)?;
    let mut filter: Filter =
        crm_api::listing::filter(&snap.directory, Subject::Tenant, &params, range, |s| {
            caller.may_read(s, &snap.directory).map_err(|Failure(e)| e)
        })?;
    crate::reads::narrow(&caller, &snap, &mut filter)?;
    let mut after = crm_api::listing::after_seq(&params)?;
    let tenant = caller.tenant();
    let db = Db::of_tenant(env, tenant).await?;
    let mut out = format.preamble()?;
    let max_bytes = max_export_bytes(env);
    // The page's room at once: grown by doubling, a 16 MiB page passed through a 32 MiB
    // buffer while the 16 MiB one was copied into it (wasm memory never shrinks).
    out.reserve(max_bytes + max_bytes / EXPORT_SLACK_DIVISOR);
    let mut written = 0;
    let mut more = false;
    'pages: loop {
        // A page holds at least one chunk: every page moves the export on.
        if written > 0 && out.len() >= max_bytes {
            more = true;
            break;
        }
        // Archived records come first (they are the oldest), a chunk at a time too.
        if let Some(segment) = archive::segment_after(&db, tenant, after).await? {
            let records = archive::records(env, &segment)
                .await?
                .map_err(Failure::internal)?;
            let fresh: Vec<Archived> = records
                .into_iter()
                .filter(|r| r.activity.seq > after)
                .collect();
            let mut keys = Vec::new();
            for st in subject_keys::by_ids(DIALECT, tenant, &Archived::key_ids(&fresh)) {
                keys.extend(d1::query(&db, &st).await?);
            }
            let rows =
                crm_store::archive::export_rows(&fresh, &filter, &subject_keys::materials(&keys)?)?;
            for piece in rows.chunks(CHUNK) {
                if written > 0 && out.len() >= max_bytes {
                    more = true;
                    break 'pages;
                }
                if let Some((bytes, last)) = format.encode(piece)? {
                    out.extend_from_slice(&bytes);
                    written += piece.len();
                    after = last;
                }
            }
            after = segment.last_seq;
            continue;
        }
        let rows = d1::query(&db, &export::chunk(DIALECT, tenant, &filter, after, CHUNK)).await?;
        // Rows archived while they were read: read their segment instead.
        if archive::segment_after(&db, tenant, after).await?.is_some() {
            continue;
        }
        let Some((bytes, last)) = format.encode(&rows)? else {
            break;
        };
        out.extend_from_slice(&bytes);
        written += rows.len();
        after = last;
        if rows.len() < CHUNK {
            break;
        }
    }
    let mut builder = ResponseBuilder::new()
        .with_header("content-type", format.content_type())?
        .with_header("x-export-records", &written.to_string())?;
    if more {
        builder = builder.with_header("x-next-after-seq", &after.to_string())?;
    }
    Ok(builder.fixed(out))
}

/// `GET /v1/audit/verify`: the chain (R2 segments, then D1) and the ledger, at most
/// `limit` records per invocation (`crm_api::verify`), continued with `resume`.
pub async fn verify(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let tenant = caller.tenant();
    let key = checkpoint_key(env).ok();
    let q = crm_api::verify::query(&ctx.query, key.as_ref(), tenant)?;
    let bounds = bounds(&db, tenant).await?;
    let mut audit = match q.resume {
        Some(paused) => {
            Audit::resume(bounds, paused).map_err(|m| Failure(crm_api::ApiError::conflict(m)))?
        }
        None => Audit::new(tenant, bounds).with_checkpoint(q.kept),
    }
    .with_budget(q.limit);
    while let Some(st) = audit.next(DIALECT) {
        if let Some(segment) = archive::segment_after(&db, tenant, audit.position()).await? {
            let records = archive::records(env, &segment).await?;
            audit.feed_archived(&segment, records);
            continue;
        }
        let rows = d1::query(&db, &st).await?;
        // Rows archived while they were read: check their segment instead.
        if archive::segment_after(&db, tenant, audit.position())
            .await?
            .is_some()
        {
            continue;
        }
        audit.feed(&rows)?;
    }
    let (v, paused) = audit.finish();
    let v = crm_api::verify::answer(v, paused, key.as_ref())?;
    Ok(serde_json::to_value(v).map_err(Failure::internal)?.into())
}

/// How long a caller should wait when the signing key is missing: an operator has to
/// set the secret, which takes minutes, not seconds.
const NO_KEY_RETRY_AFTER_SECONDS: u32 = 300;

/// The Worker secret `CHECKPOINT_KEY` (a plain variable works too: local development).
fn checkpoint_key(env: &Env) -> ApiResult<CheckpointKey> {
    env.secret("CHECKPOINT_KEY")
        .or_else(|_| env.var("CHECKPOINT_KEY"))
        .map_err(|_| ())
        .and_then(|k| CheckpointKey::from_hex(&k.to_string()).map_err(|_| ()))
        .map_err(|()| {
            Failure(crm_api::ApiError::unavailable(
                "checkpoint signing is not configured (Worker secret CHECKPOINT_KEY)",
                NO_KEY_RETRY_AFTER_SECONDS,
            ))
        })
}

/// `GET /v1/audit/checkpoint`: the chain's head signed with the Worker secret
/// `CHECKPOINT_KEY` (64 hex digits), which D1 never holds.
pub async fn checkpoint(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require_tenant_wide()?;
    let key = checkpoint_key(env)?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let bounds = bounds(&db, caller.tenant()).await?;
    let at = Timestamp::from_millis(auth::now_ms())?;
    Ok(
        serde_json::to_value(key.sign(caller.tenant(), bounds.head_seq, &bounds.head_hash, at))
            .map_err(Failure::internal)?
            .into(),
    )
}

/// The tenant's chain anchor and head.
async fn bounds(db: &Db, tenant: &str) -> ApiResult<export::Bounds> {
    let row = d1::query_opt(db, &export::bounds(DIALECT, tenant))
        .await?
        .ok_or_else(|| Failure::not_found("the key's tenant does not exist"))?;
    Ok(export::decode_bounds(&row)?)
}
