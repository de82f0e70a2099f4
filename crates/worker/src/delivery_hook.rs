//! Test hook, served only where `CONFORMANCE = "on"` (the e2e suite): puts packets of
//! the caller's activities straight on its shard's queue in the order asked, each as
//! often and as late as asked — what Queues may do to any message (at-least-once,
//! unordered, delayed delivery) made to happen on purpose, so the consumer's answer to
//! it is tried end to end rather than hoped for.

use crm_core::Timestamp;
use crm_store::keys::KeyScope;

use serde::Deserialize;
use serde_json::{Value, json};
use worker::{Env, Request};

use crate::auth::now_ms;
use crate::consumer::{Item, Packet};
use crate::http::{Answer, ApiResult, Failure};
use crate::{ingest, message, shards, store};

/// The hook's body: the packets (each an array of activities with their ids), then the
/// sends — which packet, after how many seconds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Hook {
    packets: Vec<Vec<Value>>,
    sends: Vec<Send>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Send {
    packet: usize,
    #[serde(default)]
    delay_seconds: u32,
}

pub async fn deliver(req: &mut Request, env: &Env) -> ApiResult<Answer> {
    let caller = crate::auth::caller(req, env).await?;
    caller.require(KeyScope::Admin)?;
    let hook: Hook = serde_json::from_value(crate::http::hook_body(req).await?)
        .map_err(|e| Failure::bad_request(format!("the hook's body: {e}")))?;
    let snap = store::snapshot(env, &caller).await?;
    let now = Timestamp::from_millis(now_ms())?;
    let tenant = caller.tenant();
    // Each packet enriched once: its copies are the same message, as a redelivery is.
    let packets = hook
        .packets
        .iter()
        .map(|bodies| {
            let items = bodies
                .iter()
                .map(|body| {
                    Ok(Item {
                        activity: snap.enrich_json(
                            &body.to_string(),
                            &ingest::fresh_id(now)?,
                            now,
                            None,
                        )?,
                        input_hash: ingest::input_hash(body),
                    })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            message::encode(&Packet {
                tenant_id: tenant.to_owned(),
                received_at: now.millis(),
                items,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let queue = env.queue(&shards::queue(shards::of_tenant(env, tenant).await?))?;
    for s in &hook.sends {
        let text = packets
            .get(s.packet)
            .ok_or_else(|| Failure::bad_request(format!("no packet {}", s.packet)))?;
        crate::invocation::spend_subrequest()?;
        queue
            .send(message::delayed(text.clone(), s.delay_seconds))
            .await?;
    }
    Ok(Answer(202, json!({ "sent": hook.sends.len() })))
}
