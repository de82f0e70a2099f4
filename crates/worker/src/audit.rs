//! Export and audit at the edge: the shared flows (`crm_api::flow::{export, audit}`),
//! driven over D1 and the R2 archive. An export's body is built in memory, so it is
//! paged by bytes; the checkpoint key is a Worker secret.

use crm_api::checkpoint::CheckpointKey;
use crm_api::flow::audit::{SignCheckpoint, VerifyChain};
use crm_api::flow::export::{self, ExportLog};
use worker::{Env, Response, ResponseBuilder};

use crate::flows;
use crate::http::{Answer, ApiResult, Ctx};

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
    let params = ctx.query.clone();
    let max_bytes = max_export_bytes(env);
    // The page's room at once: grown by doubling, a 16 MiB page passed through a 32 MiB
    // buffer while the 16 MiB one was copied into it (wasm memory never shrinks).
    let mut body = Vec::with_capacity(max_bytes + max_bytes / EXPORT_SLACK_DIVISOR);
    let exported = flows::run_into(ctx, env, Some(&mut body), |cx| {
        Box::new(ExportLog::new(cx, params, Some(max_bytes)))
    })
    .await?;
    // Checked by the flow before anything was read.
    let format = export::format(&ctx.query)?;
    let tenant = ctx.caller()?.tenant();
    let mut builder = ResponseBuilder::new()
        .with_header("content-type", format.content_type())?
        .with_header("content-disposition", &export::disposition(tenant, format))?
        .with_header("x-export-records", &exported.records.to_string())?;
    if let Some(after) = exported.next_after_seq {
        builder = builder.with_header("x-next-after-seq", &after.to_string())?;
    }
    Ok(builder.fixed(body))
}

/// `GET /v1/audit/verify`: the chain (R2 segments, then D1) and the ledger, at most
/// `limit` records per invocation (`crm_api::verify`), continued with `resume`.
pub async fn verify(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let (key, params) = (checkpoint_key(env), ctx.query.clone());
    let v = flows::run(ctx, env, |cx| Box::new(VerifyChain::new(cx, key, params))).await?;
    Answer::of(200, &v)
}

/// `GET /v1/audit/checkpoint`: the chain's head signed with the Worker secret
/// `CHECKPOINT_KEY` (64 hex digits), which D1 never holds.
pub async fn checkpoint(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let key = checkpoint_key(env);
    let signed = flows::run(ctx, env, |cx| Box::new(SignCheckpoint::new(cx, key))).await?;
    Answer::of(200, &signed)
}

/// The Worker secret `CHECKPOINT_KEY` (a plain variable works too: local development).
fn checkpoint_key(env: &Env) -> Option<CheckpointKey> {
    env.secret("CHECKPOINT_KEY")
        .or_else(|_| env.var("CHECKPOINT_KEY"))
        .ok()
        .and_then(|k| CheckpointKey::from_hex(&k.to_string()).ok())
}
