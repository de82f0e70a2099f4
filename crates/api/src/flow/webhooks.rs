//! `GET`/`POST /v1/webhooks`, `DELETE /v1/webhooks/{id}` and
//! `GET /v1/webhooks/{id}/deliveries`: an admin's webhook endpoints. Whether an insert
//! or a removal happened is told by the rows it changed (the insert is guarded by the
//! per-tenant bound). What is sent, and waking a runtime's sender after a re-send,
//! stay with the runtimes.

use crm_store::keys::KeyScope;
use crm_store::webhooks::{self, ENDPOINT_RANDOM_BYTES, StoredEndpoint};
use crm_store::{Row, Statement};

use super::{Collected, Flow, FlowError, ReadContext, Step, Written, spent};
use crate::webhook_targets::TargetPolicy;
use crate::webhooks::{
    DeliveryPage, NewWebhookAnswer, NewWebhookRequest, WebhookDelivery, WebhookList, no_delivery,
    no_webhook,
};

/// `GET /v1/webhooks`.
#[derive(Debug)]
pub struct ListWebhooks<'a> {
    cx: ReadContext<'a>,
    rows: Option<Collected>,
}

impl<'a> ListWebhooks<'a> {
    pub fn new(cx: ReadContext<'a>) -> ListWebhooks<'a> {
        ListWebhooks { cx, rows: None }
    }
}

impl Flow for ListWebhooks<'_> {
    type Answer = WebhookList;

    fn poll(&mut self) -> Result<Step<WebhookList>, FlowError> {
        match self.rows.take() {
            None => {
                self.cx.principal.require(KeyScope::Admin)?;
                self.rows = Some(Collected::default());
                Ok(Step::Read(webhooks::list(
                    self.cx.dialect,
                    self.cx.tenant(),
                )))
            }
            Some(mut rows) => {
                let endpoints = rows
                    .take()
                    .iter()
                    .map(webhooks::decode_endpoint)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Step::Done(WebhookList::of(&endpoints)?))
            }
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        self.rows.as_mut().ok_or_else(spent)?.push(row);
        Ok(())
    }
}

/// The flow of a change that is one write, its outcome told by the rows it changed.
#[derive(Debug)]
enum Once<A> {
    Start,
    Writing(A),
    Written(A, Vec<u64>),
    Spent,
}

impl<A> Once<A> {
    fn written(&mut self, outcome: Written, what: &str) -> Result<(), FlowError> {
        match (outcome, std::mem::replace(self, Once::Spent)) {
            (Written::Committed(rows), Once::Writing(a)) => {
                *self = Once::Written(a, rows);
                Ok(())
            }
            (Written::Refused, Once::Writing(_)) => {
                Err(FlowError::Internal(format!("a constraint refused {what}")))
            }
            _ => Err(spent()),
        }
    }
}

/// `POST /v1/webhooks` (201): the endpoint, with its signing secret shown this once.
#[derive(Debug)]
pub struct CreateWebhook<'a> {
    cx: ReadContext<'a>,
    request: Option<NewWebhookRequest>,
    targets: TargetPolicy,
    random: [u8; ENDPOINT_RANDOM_BYTES],
    state: Once<StoredEndpoint>,
}

impl<'a> CreateWebhook<'a> {
    /// `random`: the runtime's random bytes for the endpoint's id and secret.
    pub fn new(
        cx: ReadContext<'a>,
        request: NewWebhookRequest,
        targets: TargetPolicy,
        random: [u8; ENDPOINT_RANDOM_BYTES],
    ) -> CreateWebhook<'a> {
        CreateWebhook {
            cx,
            request: Some(request),
            targets,
            random,
            state: Once::Start,
        }
    }
}

impl Flow for CreateWebhook<'_> {
    type Answer = NewWebhookAnswer;

    fn poll(&mut self) -> Result<Step<NewWebhookAnswer>, FlowError> {
        match std::mem::replace(&mut self.state, Once::Spent) {
            Once::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let request = self.request.take().ok_or_else(spent)?;
                let (id, secret) = webhooks::from_random(&self.random)?;
                let now = self.cx.now.millis();
                let stored = request.plan(&self.targets, id, secret.text(), now)?;
                let insert = webhooks::insert(self.cx.dialect, self.cx.tenant(), &stored)?;
                self.state = Once::Writing(stored);
                Ok(Step::Write(vec![insert]))
            }
            // The guarded insert writes nothing past the per-tenant bound.
            Once::Written(_, rows) if rows.first() == Some(&0) => {
                Err(crate::webhooks::too_many_endpoints().into())
            }
            Once::Written(stored, _) => Ok(Step::Done(NewWebhookAnswer::of(&stored)?)),
            Once::Writing(_) | Once::Spent => Err(spent()),
        }
    }

    fn row(&mut self, _: &Row) -> Result<(), FlowError> {
        Err(spent())
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        self.state.written(outcome, "a webhook endpoint")
    }
}

/// `DELETE /v1/webhooks/{id}` (204): the endpoint and its pending deliveries go.
#[derive(Debug)]
pub struct RemoveWebhook<'a> {
    cx: ReadContext<'a>,
    id: String,
    state: Once<()>,
}

impl<'a> RemoveWebhook<'a> {
    pub fn new(cx: ReadContext<'a>, id: String) -> RemoveWebhook<'a> {
        RemoveWebhook {
            cx,
            id,
            state: Once::Start,
        }
    }
}

impl Flow for RemoveWebhook<'_> {
    type Answer = ();

    fn poll(&mut self) -> Result<Step<()>, FlowError> {
        match std::mem::replace(&mut self.state, Once::Spent) {
            Once::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let (d, tenant, now) = (self.cx.dialect, self.cx.tenant(), self.cx.now.millis());
                self.state = Once::Writing(());
                Ok(Step::Write(webhooks::remove(d, tenant, &self.id, now)))
            }
            Once::Written((), rows) if rows.first() == Some(&0) => Err(no_webhook(&self.id).into()),
            Once::Written((), _) => Ok(Step::Done(())),
            Once::Writing(()) | Once::Spent => Err(spent()),
        }
    }

    fn row(&mut self, _: &Row) -> Result<(), FlowError> {
        Err(spent())
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        self.state.written(outcome, "a webhook's removal")
    }
}

/// `GET /v1/webhooks/{id}/deliveries`: the delivery log, newest first.
#[derive(Debug)]
pub struct WebhookDeliveries<'a> {
    cx: ReadContext<'a>,
    id: String,
    params: super::Params,
    state: Deliveries,
}

#[derive(Debug)]
enum Deliveries {
    Start,
    Endpoint {
        page: Statement,
        limit: usize,
        found: bool,
    },
    Page {
        limit: usize,
        rows: Collected,
    },
    Spent,
}

impl<'a> WebhookDeliveries<'a> {
    pub fn new(cx: ReadContext<'a>, id: String, params: super::Params) -> WebhookDeliveries<'a> {
        WebhookDeliveries {
            cx,
            id,
            params,
            state: Deliveries::Start,
        }
    }
}

impl Flow for WebhookDeliveries<'_> {
    type Answer = DeliveryPage;

    fn poll(&mut self) -> Result<Step<DeliveryPage>, FlowError> {
        let (d, tenant) = (self.cx.dialect, self.cx.tenant());
        match std::mem::replace(&mut self.state, Deliveries::Spent) {
            Deliveries::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let (before, limit) = crate::webhooks::deliveries_query(&self.params)?;
                self.state = Deliveries::Endpoint {
                    page: webhooks::page(d, tenant, &self.id, before, limit),
                    limit,
                    found: false,
                };
                Ok(Step::Read(webhooks::get(d, tenant, &self.id)))
            }
            Deliveries::Endpoint { found: false, .. } => Err(no_webhook(&self.id).into()),
            Deliveries::Endpoint { page, limit, .. } => {
                self.state = Deliveries::Page {
                    limit,
                    rows: Collected::default(),
                };
                Ok(Step::Read(page))
            }
            Deliveries::Page { limit, mut rows } => {
                let rows = rows
                    .take()
                    .iter()
                    .map(webhooks::decode_delivery)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Step::Done(DeliveryPage::new(&rows, limit)?))
            }
            Deliveries::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            Deliveries::Endpoint { found, .. } => {
                *found = true;
                Ok(())
            }
            Deliveries::Page { rows, .. } => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }
}

/// `POST /v1/webhooks/{id}/deliveries/{deliveryId}/resend` (202): the delivery due at
/// once, whatever it was; the runtime's sender takes it.
#[derive(Debug)]
pub struct ResendDelivery<'a> {
    cx: ReadContext<'a>,
    id: String,
    delivery: String,
    state: Resend,
}

#[derive(Debug)]
enum Resend {
    Start,
    Endpoint { seq: u64, found: bool },
    Writing(u64),
    Written(Vec<u64>, u64),
    Reading(Collected),
    Spent,
}

impl<'a> ResendDelivery<'a> {
    pub fn new(cx: ReadContext<'a>, id: String, delivery: String) -> ResendDelivery<'a> {
        ResendDelivery {
            cx,
            id,
            delivery,
            state: Resend::Start,
        }
    }
}

impl Flow for ResendDelivery<'_> {
    type Answer = WebhookDelivery;

    fn poll(&mut self) -> Result<Step<WebhookDelivery>, FlowError> {
        let (d, tenant) = (self.cx.dialect, self.cx.tenant());
        match std::mem::replace(&mut self.state, Resend::Spent) {
            Resend::Start => {
                self.cx.principal.require(KeyScope::Admin)?;
                let seq = crate::webhooks::delivery_seq(&self.delivery)?;
                self.state = Resend::Endpoint { seq, found: false };
                Ok(Step::Read(webhooks::get(d, tenant, &self.id)))
            }
            Resend::Endpoint { found: false, .. } => Err(no_webhook(&self.id).into()),
            Resend::Endpoint { seq, .. } => {
                let now = self.cx.now.millis();
                self.state = Resend::Writing(seq);
                Ok(Step::Write(vec![webhooks::resend(
                    d, tenant, &self.id, seq, now,
                )]))
            }
            Resend::Written(rows, _) if rows.first() != Some(&1) => {
                Err(no_delivery(&self.delivery).into())
            }
            Resend::Written(_, seq) => {
                self.state = Resend::Reading(Collected::default());
                Ok(Step::Read(webhooks::one(d, tenant, &self.id, seq)))
            }
            Resend::Reading(mut rows) => {
                let row = rows
                    .take()
                    .into_iter()
                    .next()
                    .ok_or_else(|| no_delivery(&self.delivery))?;
                Ok(Step::Done(WebhookDelivery::of(
                    &webhooks::decode_delivery(&row)?,
                )?))
            }
            Resend::Writing(_) | Resend::Spent => Err(spent()),
        }
    }

    fn row(&mut self, row: &Row) -> Result<(), FlowError> {
        match &mut self.state {
            Resend::Endpoint { found, .. } => {
                *found = true;
                Ok(())
            }
            Resend::Reading(rows) => {
                rows.push(row);
                Ok(())
            }
            _ => Err(spent()),
        }
    }

    fn written(&mut self, outcome: Written) -> Result<(), FlowError> {
        match (outcome, std::mem::replace(&mut self.state, Resend::Spent)) {
            (Written::Committed(rows), Resend::Writing(seq)) => {
                self.state = Resend::Written(rows, seq);
                Ok(())
            }
            (Written::Refused, _) => Err(FlowError::Internal(
                "a constraint refused a delivery's re-send".to_owned(),
            )),
            _ => Err(spent()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testing::{admin, context, params, refusal, run, run_writing, snapshot};
    use crm_store::Dialect;

    fn request() -> NewWebhookRequest {
        serde_json::from_value(serde_json::json!({
            "url": "https://hooks.example.com/crm",
            "eventTypes": ["credits.alert.fired"],
        }))
        .expect("a request")
    }

    #[test]
    fn an_insert_the_bound_refused_is_409_and_a_refused_url_writes_nothing() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::D1, &snap, &admin);
        let flow = CreateWebhook::new(
            cx,
            request(),
            TargetPolicy::default(),
            [7; ENDPOINT_RANDOM_BYTES],
        );
        let (answer, _) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![0]));
        assert_eq!(refusal(answer).status(), 409);
        let flow = CreateWebhook::new(
            cx,
            request(),
            TargetPolicy::default(),
            [7; ENDPOINT_RANDOM_BYTES],
        );
        let (answer, _) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![1]));
        let answer = serde_json::to_value(answer.expect("created")).expect("JSON");
        assert!(
            answer["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
            "{answer}"
        );
        let inward: NewWebhookRequest = serde_json::from_value(serde_json::json!({
            "url": "https://127.0.0.1/hook",
            "eventTypes": ["credits.alert.fired"],
        }))
        .expect("a request");
        let flow = CreateWebhook::new(
            cx,
            inward,
            TargetPolicy::default(),
            [7; ENDPOINT_RANDOM_BYTES],
        );
        let (answer, asked) = run_writing(flow, |_| Vec::new(), |_| Written::Committed(vec![1]));
        assert_eq!(refusal(answer).status(), 400);
        assert!(asked.is_empty());
    }

    #[test]
    fn an_unknown_endpoint_is_404_for_its_log_and_its_removal() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let (answer, asked) = run(
            WebhookDeliveries::new(cx, "wh_missing".to_owned(), params(&[("limit", "5")])),
            |_| Vec::new(),
        );
        assert_eq!(refusal(answer).message, no_webhook("wh_missing").message);
        assert_eq!(asked.len(), 1, "the page is not read");
        let (answer, _) = run_writing(
            RemoveWebhook::new(cx, "wh_missing".to_owned()),
            |_| Vec::new(),
            |statements| Written::Committed(vec![0; statements.len()]),
        );
        assert_eq!(refusal(answer).status(), 404);
    }

    #[test]
    fn a_resend_is_404_for_a_bad_id_a_missing_endpoint_or_a_missing_delivery() {
        let snap = snapshot();
        let admin = admin();
        let cx = context(Dialect::Sqlite, &snap, &admin);
        let resend =
            |delivery: &str| ResendDelivery::new(cx, "wh_1".to_owned(), delivery.to_owned());
        let (answer, asked) = run(resend("nonsense"), |_| Vec::new());
        assert_eq!(refusal(answer).message, no_delivery("nonsense").message);
        assert!(asked.is_empty());
        let id = "alert-7";
        let (answer, asked) = run(resend(id), |_| Vec::new());
        assert_eq!(refusal(answer).message, no_webhook("wh_1").message);
        assert_eq!(asked.len(), 1, "nothing is written");
        let found = |_: &Statement| vec![Row(Vec::new())];
        let (answer, asked) = run_writing(resend(id), found, |_| Written::Committed(vec![0]));
        assert_eq!(refusal(answer).message, no_delivery(id).message);
        assert_eq!(
            asked.len(),
            2,
            "the endpoint read, the re-send written, no read-back"
        );
    }
}
