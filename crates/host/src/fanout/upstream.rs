//! The upstream sink: `POST {base}/api/activities/batch` with `{ "activities": [...] }`
//! (the original sketch's "wrapper API"), in batches of at most 100, with a timeout.
//! 2xx delivers; 408, 429 and 5xx or a transport failure retry; any other 4xx will never
//! succeed as sent and goes to the spool at once. Credit alert events go to the same
//! upstream as `POST {base}/api/credit-alerts/batch` with `{ "alerts": [...] }`, by a
//! second sink of the alerts' feed, which retries until delivered (alert events are few
//! and the store keeps them; the spool holds activities for `crm-host replay`).

use std::time::Duration;

use crm_core::webhook_signature::SigningSecret;
use crm_store::outbox::Outgoing;
use reqwest::StatusCode;
use serde_json::value::RawValue;

use super::sink::{Delivery, Feed, Sink, SinkError};

/// The upstream API's batch limit.
pub const BATCH: usize = 100;
/// A request the upstream has not answered within this is retried.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct UpstreamSink {
    client: reqwest::Client,
    url: String,
    /// `Name: value` sent with every request (e.g. `Authorization: Bearer …`).
    auth: Option<(String, String)>,
    /// Signs every request as Standard Webhooks says, when set.
    signing: Option<SigningSecret>,
    feed: Feed,
}

/// A `whsec_…` secret, checked.
pub fn parse_secret(text: &str) -> anyhow::Result<SigningSecret> {
    SigningSecret::parse(text).map_err(|e| anyhow::anyhow!("--upstream-signing-secret: {e}"))
}

/// `Name: value` → its two parts.
pub fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("an auth header is `Name: value`"))?;
    let (name, value) = (name.trim(), value.trim());
    reqwest::header::HeaderName::from_bytes(name.as_bytes())?;
    reqwest::header::HeaderValue::from_str(value)?;
    Ok((name.to_owned(), value.to_owned()))
}

impl UpstreamSink {
    pub fn new(
        base_url: &str,
        auth: Option<(String, String)>,
        signing: Option<SigningSecret>,
        timeout: Duration,
        feed: Feed,
    ) -> anyhow::Result<UpstreamSink> {
        // No redirects: a redirect would carry the batch and its auth header to a host
        // nobody configured; a 3xx is a delivery failure like any other.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(UpstreamSink {
            client,
            url: format!(
                "{}{}",
                base_url.trim_end_matches('/'),
                feed.upstream_route().0
            ),
            auth,
            signing,
            feed,
        })
    }

    /// Sends records (JSON text each) as one batch.
    pub async fn send(&self, records: &[&str]) -> Result<(), SinkError> {
        let activities: Vec<&RawValue> = records
            .iter()
            .map(|r| serde_json::from_str::<&RawValue>(r))
            .collect::<Result<_, _>>()
            .map_err(|e| SinkError::Reject(format!("a stored record is not JSON: {e}")))?;
        let mut envelope = serde_json::Map::new();
        envelope.insert(
            self.feed.upstream_route().1.to_owned(),
            serde_json::json!(activities),
        );
        let body = serde_json::to_vec(&envelope).map_err(|e| SinkError::Reject(e.to_string()))?;
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some((name, value)) = &self.auth {
            req = req.header(name, value);
        }
        if let Some(secret) = &self.signing {
            // Signed when sent, not when queued: a retry is a fresh timestamp, the same id.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            for (name, value) in secret.headers(&body, now).pairs() {
                req = req.header(name, value);
            }
        }
        let req = req.body(body);
        let resp = req
            .send()
            .await
            .map_err(|e| SinkError::Retry(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(SinkError::Retry(format!("upstream answered {status}")))
        } else {
            Err(SinkError::Reject(format!("upstream answered {status}")))
        }
    }
}

impl Sink for UpstreamSink {
    fn name(&self) -> &'static str {
        self.feed.upstream_sink()
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn spools(&self) -> bool {
        self.feed == Feed::Activities
    }

    fn feed(&self) -> Feed {
        self.feed
    }

    fn deliver<'a>(&'a self, _tenant: &'a str, batch: &'a [Outgoing]) -> Delivery<'a> {
        Box::pin(async move {
            let records: Vec<&str> = batch.iter().map(|o| o.body.as_str()).collect();
            self.send(&records).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_headers_are_name_and_value() {
        assert_eq!(
            parse_header("Authorization: Bearer x").expect("valid"),
            ("Authorization".to_owned(), "Bearer x".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: v").is_err());
    }
}
