//! Requests the edge makes to others (the upstream API, tenants' webhooks): a signed
//! JSON POST with a deadline, following no redirect. A receiver that does not answer
//! in time has failed the attempt; its cursor or delivery stays and the next pass
//! tries again, so one slow receiver costs one deadline, never the invocation.

use crm_core::webhook_signature::SigningSecret;
use futures_util::future::{Either, select};
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

use crate::auth::now_ms;

/// POSTs `body` (JSON) to `url` with `extra` headers, signed with `secret` when given;
/// the receiver's status, or why there is none.
pub async fn post(
    url: &str,
    body: &str,
    extra: &[(&str, &str)],
    secret: Option<&SigningSecret>,
    deadline_ms: u64,
) -> Result<u16, String> {
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
    set("content-type", "application/json")?;
    for (name, value) in extra {
        set(name, value)?;
    }
    if let Some(secret) = secret {
        // Signed when sent: a retry is a fresh timestamp and the same id.
        for (name, value) in secret.headers(body.as_bytes(), now_ms() / 1000).pairs() {
            set(name, value)?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()))
        // A 3xx is an answer, not a hop: the receiver is the URL configured.
        .with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    crate::invocation::spend_subrequest().map_err(|e| e.message().to_owned())?;
    let fetch = Fetch::Request(request);
    let sent = Box::pin(fetch.send());
    let deadline = Box::pin(Delay::from(std::time::Duration::from_millis(deadline_ms)));
    match select(sent, deadline).await {
        Either::Left((Ok(response), _)) => Ok(response.status_code()),
        Either::Left((Err(e), _)) => Err(format!("request failed: {e}")),
        Either::Right(_) => Err("timed out".into()),
    }
}
