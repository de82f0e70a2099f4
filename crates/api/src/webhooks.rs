//! The webhook endpoints' requests and answers (`/v1/webhooks…`), for both runtimes:
//! registering an endpoint (its signing secret in that answer only), listing and
//! removing endpoints, an endpoint's delivery log and re-sending a delivery. What is
//! stored and sent is `crm_store::webhooks`'s; which URLs are allowed,
//! [`crate::webhook_targets`]'s.

use std::collections::BTreeMap;

use crm_core::Timestamp;
use crm_store::webhooks::{self as store, Delivery, DeliveryStatus, StoredEndpoint};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::webhook_targets::TargetPolicy;

/// Deliveries per page of the log when `limit` is absent, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// A description is a label for people: one line.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhookRequest {
    /// Where deliveries are POSTed: `https`, on the public internet.
    pub url: String,
    /// What to send: `credits.alert.fired`, `credits.alert.resolved`.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl NewWebhookRequest {
    /// The endpoint to store under `id` with `secret` (the runtime's random bytes made
    /// both: `crm_store::webhooks::from_random`), or why not.
    pub fn plan(
        self,
        targets: &TargetPolicy,
        id: String,
        secret: String,
        now: i64,
    ) -> Result<StoredEndpoint, ApiError> {
        let url = targets.check(&self.url)?;
        if self.event_types.is_empty() {
            return Err(ApiError::invalid(
                "`eventTypes` names at least one event type",
            ));
        }
        let mut event_types = Vec::new();
        for t in self.event_types {
            if !store::EVENT_TYPES.contains(&t.as_str()) {
                return Err(ApiError::invalid(format!(
                    "`eventTypes`: `{}` is not one of {}",
                    crm_core::time::clip(&t),
                    store::EVENT_TYPES.join(", ")
                )));
            }
            if !event_types.contains(&t) {
                event_types.push(t);
            }
        }
        if let Some(d) = &self.description
            && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains(['\n', '\r']))
        {
            return Err(ApiError::invalid(format!(
                "`description` is one line of at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        Ok(StoredEndpoint {
            id,
            url: url.to_string(),
            event_types,
            description: self.description,
            secret,
            created_at: now,
        })
    }
}

/// A registered endpoint (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: Timestamp,
}

impl Webhook {
    pub fn of(e: &StoredEndpoint) -> Result<Webhook, ApiError> {
        Ok(Webhook {
            id: e.id.clone(),
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            description: e.description.clone(),
            created_at: Timestamp::from_millis(e.created_at)?,
        })
    }
}

/// The answer of `POST /v1/webhooks`: the endpoint and its signing secret, shown here
/// and never again (a receiver verifies deliveries with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewWebhookAnswer {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`, as the Standard Webhooks libraries take it.
    pub secret: String,
}

impl NewWebhookAnswer {
    pub fn of(e: &StoredEndpoint) -> Result<NewWebhookAnswer, ApiError> {
        Ok(NewWebhookAnswer {
            webhook: Webhook::of(e)?,
            secret: e.secret.clone(),
        })
    }
}

/// `GET /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

impl WebhookList {
    pub fn of(rows: &[StoredEndpoint]) -> Result<WebhookList, ApiError> {
        Ok(WebhookList {
            webhooks: rows.iter().map(Webhook::of).collect::<Result<_, _>>()?,
        })
    }
}

/// The refusal of a registration past [`store::MAX_ENDPOINTS`] (the guarded insert
/// wrote nothing).
pub fn too_many_endpoints() -> ApiError {
    ApiError::conflict(format!(
        "a tenant has at most {} webhook endpoints; remove one first",
        store::MAX_ENDPOINTS
    ))
}

/// The last attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: Timestamp,
    /// The receiver's status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why no answer came (refused address, connection failure, timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One delivery in an endpoint's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The event's id (`alert-{entry}`), also the `{deliveryId}` to re-send.
    pub id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts since the delivery was made or last re-sent.
    pub attempts: u32,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    /// The body sent (and signed), as JSON.
    pub payload: serde_json::Value,
}

impl WebhookDelivery {
    pub fn of(d: &Delivery) -> Result<WebhookDelivery, ApiError> {
        let at = |ms: Option<i64>| ms.map(Timestamp::from_millis).transpose();
        Ok(WebhookDelivery {
            id: d.id(),
            event_type: d.event_type.clone(),
            status: d.status,
            attempts: d.attempts,
            created_at: Timestamp::from_millis(d.created_at)?,
            next_attempt_at: at(d.next_attempt_at)?,
            last_attempt: d
                .last_attempt_at
                .map(|ms| {
                    Ok::<_, ApiError>(Attempt {
                        at: Timestamp::from_millis(ms)?,
                        status_code: d.last_status,
                        error: d.last_error.clone(),
                    })
                })
                .transpose()?,
            delivered_at: at(d.delivered_at)?,
            payload: serde_json::from_str(&d.payload).map_err(|_| ApiError::internal())?,
        })
    }
}

/// `GET /v1/webhooks/{id}/deliveries`: newest event first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub deliveries: Vec<WebhookDelivery>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl DeliveryPage {
    /// From the rows `crm_store::webhooks::page` read (one past the limit, if any).
    pub fn new(rows: &[Delivery], limit: usize) -> Result<DeliveryPage, ApiError> {
        let all = rows
            .iter()
            .map(WebhookDelivery::of)
            .collect::<Result<Vec<_>, _>>()?;
        let (deliveries, next_cursor) = crate::paging::cut(all, limit, |d| format!("d{}", d.id));
        Ok(DeliveryPage {
            deliveries,
            next_cursor,
        })
    }
}

/// What `GET /v1/webhooks/{id}/deliveries` asks for: events below a cursor, a limit.
pub fn deliveries_query(
    params: &BTreeMap<String, String>,
) -> Result<(Option<u64>, usize), ApiError> {
    let before = params
        .get("cursor")
        .map(|c| {
            c.strip_prefix('d')
                .and_then(store::parse_delivery_id)
                .ok_or_else(|| ApiError::invalid("`cursor` is not a deliveries cursor"))
        })
        .transpose()?;
    Ok((
        before,
        crate::paging::limit(params, DEFAULT_LIMIT, MAX_LIMIT)?,
    ))
}

/// The event number of a `{deliveryId}`, or 404 (no delivery has another form).
pub fn delivery_seq(id: &str) -> Result<u64, ApiError> {
    store::parse_delivery_id(id).ok_or_else(|| no_delivery(id))
}

pub fn no_webhook(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook `{}`", crm_core::time::clip(id)))
}

pub fn no_delivery(id: &str) -> ApiError {
    ApiError::not_found(format!("no delivery `{}`", crm_core::time::clip(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str, types: &[&str]) -> NewWebhookRequest {
        NewWebhookRequest {
            url: url.into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            description: None,
        }
    }

    #[test]
    fn a_request_becomes_the_endpoint_to_store() {
        let e = request(
            "https://hooks.example.com/a",
            &[
                store::ALERT_FIRED,
                store::ALERT_FIRED,
                store::ALERT_RESOLVED,
            ],
        )
        .plan(&TargetPolicy::default(), "wh_1".into(), "whsec_k".into(), 5)
        .expect("valid");
        assert_eq!(
            e.event_types,
            vec![store::ALERT_FIRED, store::ALERT_RESOLVED]
        );
        assert_eq!(e.url, "https://hooks.example.com/a");
        let answer = serde_json::to_value(NewWebhookAnswer::of(&e).expect("answer")).expect("json");
        assert_eq!(answer["secret"], "whsec_k");
        assert_eq!(answer["id"], "wh_1");
        let listed = serde_json::to_value(WebhookList::of(&[e]).expect("list")).expect("json");
        assert!(listed["webhooks"][0].get("secret").is_none());
    }

    #[test]
    fn bad_requests_are_refused() {
        let p = TargetPolicy::default();
        let plan = |r: NewWebhookRequest| r.plan(&p, "wh_1".into(), "s".into(), 0);
        assert!(plan(request("https://hooks.example.com", &[])).is_err());
        assert!(plan(request("https://hooks.example.com", &["activity.created"])).is_err());
        assert!(plan(request("https://10.0.0.1", &[store::ALERT_FIRED])).is_err());
        let mut r = request("https://hooks.example.com", &[store::ALERT_FIRED]);
        r.description = Some("two\nlines".into());
        assert!(plan(r).is_err());
        assert_eq!(too_many_endpoints().status(), 409);
    }

    #[test]
    fn delivery_cursors_and_ids_are_checked() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            deliveries_query(&p(&[("cursor", "dalert-9"), ("limit", "3")])).expect("ok"),
            (Some(9), 3)
        );
        assert!(deliveries_query(&p(&[("cursor", "x")])).is_err());
        assert_eq!(delivery_seq("alert-4").expect("ok"), 4);
        assert_eq!(delivery_seq("4").map_err(|e| e.status()), Err(404));
    }
}
