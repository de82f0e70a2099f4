//! Webhook endpoints a tenant registers and the deliveries made to them (issue 27),
//! once for every runtime. Two steps, each a handful of statements a runtime runs:
//!
//! - **Fan-in**: the credit alert events after the `webhooks` cursor
//!   (`crate::alerts::after`) become one delivery row per subscribed endpoint
//!   ([`fan_in`]), written with the cursor's move. Rows are keyed by (endpoint, event)
//!   and inserted only if absent, so a fan-in repeated after a crash or run by two
//!   hosts at once records each delivery once.
//! - **Dispatch**: [`claim_due`] takes due deliveries under a lease (a conditional
//!   update that returns what it took, so two dispatchers never send the same attempt);
//!   the runtime posts each, signed as Standard Webhooks says, and [`settle`] records
//!   the outcome: delivered, retried on [`RETRY_SCHEDULE_MS`], or failed once the
//!   schedule is spent. A dispatcher that dies mid-send leaves its lease to expire and
//!   the attempt is made again — at least once, with the same `webhook-id`.

use crm_core::Timestamp;
use crm_core::alerts::AlertState;
use crm_core::webhook_signature::SigningSecret;
use serde::Serialize;

use crate::alerts::AlertEvent;
use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};

/// The name of the fan-in's cursor over `credit_alerts` in `sink_cursors`.
pub const SINK: &str = "webhooks";
/// Endpoints a tenant may have at once: every alert is posted to each subscribed one,
/// so this bounds the deliveries one event makes.
pub const MAX_ENDPOINTS: usize = 20;
/// Random bytes of a new endpoint: 8 name its id, 24 are its signing key (the
/// specification asks for 24 to 64).
pub const ENDPOINT_RANDOM_BYTES: usize = 32;

/// The event types an endpoint may subscribe to.
pub const ALERT_FIRED: &str = "credits.alert.fired";
pub const ALERT_RESOLVED: &str = "credits.alert.resolved";
pub const EVENT_TYPES: &[&str] = &[ALERT_FIRED, ALERT_RESOLVED];

/// How long a claimed delivery is another dispatcher's to leave alone: longer than a
/// send may take ([`SEND_TIMEOUT_MS`]) plus its bookkeeping.
pub const LEASE_MS: i64 = 60_000;
/// A receiver that has not answered within this has failed the attempt.
pub const SEND_TIMEOUT_MS: u64 = 10_000;
/// The wait before each retry, after the first attempt (made when the event is fanned
/// in): the Standard Webhooks authors' schedule, about a day in all.
pub const RETRY_SCHEDULE_MS: [i64; 7] = [
    5_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    5 * 3_600_000,
    10 * 3_600_000,
    10 * 3_600_000,
];
/// Attempts before a delivery is given up: the first and one per retry.
pub const MAX_ATTEMPTS: u32 = RETRY_SCHEDULE_MS.len() as u32 + 1;
/// Characters of a failure kept in the delivery log.
const MAX_ERROR_CHARS: usize = 200;
/// Deliveries one dispatch round claims: what one round sends (the edge's cron pass
/// spends one subrequest on each, of the 1,000 an invocation has).
pub const CLAIM_BATCH: usize = 20;

/// A registered endpoint as stored (its secret included: deliveries are signed with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEndpoint {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
    pub created_at: i64,
}

impl StoredEndpoint {
    fn subscribes(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }
}

/// A new endpoint's id and signing secret from `random` (the runtime's randomness).
pub fn from_random(random: &[u8; ENDPOINT_RANDOM_BYTES]) -> StoreResult<(String, SigningSecret)> {
    let (id, key) = random.split_at(8);
    let secret = SigningSecret::from_key(key).map_err(|e| StoreError::decode(e.message))?;
    Ok((format!("wh_{}", hex::encode(id)), secret))
}

const ENDPOINT_COLUMNS: &str = "id, url, event_types, description, secret, created_at";

/// Registers an endpoint unless the tenant already has [`MAX_ENDPOINTS`]: the count and
/// the insert are one statement, so concurrent registrations cannot pass the bound. It
/// changes no row when refused (the runtime reads [`get`] back, or the change count).
pub fn insert(d: Dialect, tenant_id: &str, e: &StoredEndpoint) -> StoreResult<Statement> {
    let types = serde_json::to_string(&e.event_types)
        .map_err(|err| StoreError::decode(format!("event types: {err}")))?;
    Ok(d.stmt(
        &format!(
            "INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, description, secret, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, CAST(?7 AS BIGINT)
             WHERE (SELECT COUNT(*) FROM webhook_endpoints
                    WHERE tenant_id = ?1 AND removed_at IS NULL) < {MAX_ENDPOINTS}"
        ),
        vec![
            tenant_id.into(),
            e.id.as_str().into(),
            e.url.as_str().into(),
            types.into(),
            e.description.as_deref().into(),
            e.secret.as_str().into(),
            e.created_at.into(),
        ],
    ))
}

/// The tenant's endpoints in use, oldest first.
pub fn list(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
             WHERE tenant_id = ?1 AND removed_at IS NULL ORDER BY created_at, id"
        ),
        vec![tenant_id.into()],
    )
}

/// One endpoint in use.
pub fn get(d: Dialect, tenant_id: &str, id: &str) -> Statement {
    d.stmt(
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
             WHERE tenant_id = ?1 AND id = ?2 AND removed_at IS NULL"
        ),
        vec![tenant_id.into(), id.into()],
    )
}

pub fn decode_endpoint(row: &Row) -> StoreResult<StoredEndpoint> {
    let types = row.text(2)?;
    Ok(StoredEndpoint {
        id: row.string(0)?,
        url: row.string(1)?,
        event_types: serde_json::from_str(types)
            .map_err(|e| StoreError::decode(format!("stored event types: {e}")))?,
        description: row.opt_string(3)?,
        secret: row.string(4)?,
        created_at: row.int(5)?,
    })
}

/// Removes an endpoint: nothing more is sent to it, its pending deliveries fail with
/// the reason, and its log stays readable by id until retention removes the tenant.
pub fn remove(d: Dialect, tenant_id: &str, id: &str, now: i64) -> Vec<Statement> {
    vec![
        d.stmt(
            "UPDATE webhook_endpoints SET removed_at = ?3
             WHERE tenant_id = ?1 AND id = ?2 AND removed_at IS NULL",
            vec![tenant_id.into(), id.into(), now.into()],
        ),
        d.stmt(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,
                    last_error = 'the endpoint was removed'
             WHERE tenant_id = ?1 AND endpoint_id = ?2 AND status = 'pending'",
            vec![tenant_id.into(), id.into()],
        ),
    ]
}

/// The event type of an alert event.
pub fn event_type(state: AlertState) -> &'static str {
    match state {
        AlertState::Fired => ALERT_FIRED,
        AlertState::Resolved => ALERT_RESOLVED,
    }
}

/// A delivery's body, as the Standard Webhooks specification shapes one: the type,
/// when it happened, and the event with its tenant.
#[derive(Serialize)]
struct Payload<'a> {
    r#type: &'static str,
    timestamp: Timestamp,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    tenant_id: &'a str,
    #[serde(flatten)]
    event: &'a AlertEvent,
}

pub fn payload(tenant_id: &str, event: &AlertEvent) -> StoreResult<String> {
    serde_json::to_string(&Payload {
        r#type: event_type(event.state),
        timestamp: event.at,
        data: Data { tenant_id, event },
    })
    .map_err(|e| StoreError::decode(format!("a webhook payload: {e}")))
}

/// The deliveries `events` make to the tenant's `endpoints`: one per endpoint that
/// subscribes to the event's type and existed when it happened (an endpoint registered
/// later is not sent the past), each due at once.
pub fn fan_in(
    d: Dialect,
    tenant_id: &str,
    endpoints: &[StoredEndpoint],
    events: &[AlertEvent],
    now: i64,
) -> StoreResult<Vec<Statement>> {
    let mut out = Vec::new();
    for event in events {
        let kind = event_type(event.state);
        let body = payload(tenant_id, event)?;
        for e in endpoints
            .iter()
            .filter(|e| e.subscribes(kind) && e.created_at <= event.at.millis())
        {
            out.push(d.stmt(
                "INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_seq, event_type, payload,
                     status, attempts, created_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)
                 ON CONFLICT (tenant_id, endpoint_id, event_seq) DO NOTHING",
                vec![
                    tenant_id.into(),
                    e.id.as_str().into(),
                    crate::sql::seq(event.entry),
                    kind.into(),
                    body.as_str().into(),
                    now.into(),
                ],
            ));
        }
    }
    Ok(out)
}

/// Alert events one fan-in step reads: with [`MAX_ENDPOINTS`] subscribers each, a
/// step writes at most 2,000 small rows (and the edge spends one statement on each).
pub const FAN_IN_BATCH: usize = 100;

/// One fan-in step of a tenant, from the rows it read — its endpoints
/// ([`list`]) and its events after the cursor (`crate::alerts::after` with
/// [`FAN_IN_BATCH`]): the deliveries to insert and the cursor's move past the last
/// event, to run as one transaction. Nothing when there were no events.
pub fn fan_in_step(
    d: Dialect,
    tenant_id: &str,
    endpoint_rows: &[Row],
    event_rows: &[Row],
    now: i64,
) -> StoreResult<Vec<Statement>> {
    let events = event_rows
        .iter()
        .map(crate::alerts::decode)
        .collect::<StoreResult<Vec<_>>>()?;
    let Some(last) = events.last().map(|e| e.entry) else {
        return Ok(Vec::new());
    };
    let endpoints = endpoint_rows
        .iter()
        .map(decode_endpoint)
        .collect::<StoreResult<Vec<_>>>()?;
    let mut out = fan_in(d, tenant_id, &endpoints, &events, now)?;
    out.push(crate::outbox::advance(d, tenant_id, SINK, last, now));
    Ok(out)
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryStatus {
    /// Not delivered yet; another attempt is due at `nextAttemptAt`.
    Pending,
    /// A 2xx answered an attempt.
    Delivered,
    /// Every attempt failed (or the endpoint was removed); `resend` tries again.
    Failed,
}

impl DeliveryStatus {
    fn parse(text: &str) -> StoreResult<DeliveryStatus> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(StoreError::decode(format!(
                "stored delivery status `{other}`"
            ))),
        }
    }
}

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_seq: u64,
    pub event_type: String,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

impl Delivery {
    /// Its id in the API: the alert event's, as Redis also names it.
    pub fn id(&self) -> String {
        format!("alert-{}", self.event_seq)
    }
}

/// The event number a delivery id names (`alert-{n}`).
pub fn parse_delivery_id(id: &str) -> Option<u64> {
    id.strip_prefix("alert-")?.parse().ok()
}

const DELIVERY_COLUMNS: &str = "tenant_id, endpoint_id, event_seq, event_type, payload, status, attempts, created_at, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at";

pub fn decode_delivery(row: &Row) -> StoreResult<Delivery> {
    let narrow = |what: &str, v: i64| {
        u32::try_from(v).map_err(|_| StoreError::decode(format!("stored {what} {v}")))
    };
    Ok(Delivery {
        tenant_id: row.string(0)?,
        endpoint_id: row.string(1)?,
        event_seq: row.uint(2)?,
        event_type: row.string(3)?,
        payload: row.string(4)?,
        status: DeliveryStatus::parse(row.text(5)?)?,
        attempts: narrow("attempts", row.int(6)?)?,
        created_at: row.int(7)?,
        next_attempt_at: row.opt_int(8)?,
        last_attempt_at: row.opt_int(9)?,
        last_status: row
            .opt_int(10)?
            .map(|s| u16::try_from(s).map_err(|_| StoreError::decode(format!("stored status {s}"))))
            .transpose()?,
        last_error: row.opt_string(11)?,
        delivered_at: row.opt_int(12)?,
    })
}

/// Whether any delivery is due at `now`: a read, so a dispatcher with nothing to send
/// takes no write lock (crm-host asks it every round).
pub fn any_due(d: Dialect, now: i64) -> Statement {
    d.stmt(
        "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1 LIMIT 1",
        vec![now.into()],
    )
}

/// Takes up to [`CLAIM_BATCH`] deliveries due at `now` (of every tenant in this
/// database) for one attempt each: their next attempt moves to the lease's end, so
/// another dispatcher's claim skips them, and the claimed rows come back (RETURNING:
/// what this claim took, never what another did).
pub fn claim_due(d: Dialect, now: i64) -> Statement {
    d.stmt(
        &format!(
            "UPDATE webhook_deliveries SET next_attempt_at = ?2
             WHERE status = 'pending' AND next_attempt_at <= ?1
               AND (tenant_id, endpoint_id, event_seq) IN (
                   SELECT tenant_id, endpoint_id, event_seq FROM webhook_deliveries
                   WHERE status = 'pending' AND next_attempt_at <= ?1
                   ORDER BY next_attempt_at LIMIT {CLAIM_BATCH})
             RETURNING {DELIVERY_COLUMNS}"
        ),
        vec![now.into(), (now + LEASE_MS).into()],
    )
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status.
    Answered(u16),
    /// No answer: refused address, connection failure, timeout.
    Failed(String),
    /// Will never be sent as things are (the endpoint is gone): failed at once.
    Abandoned(String),
}

/// Records the attempt a claim made: delivered on a 2xx; otherwise due again after the
/// schedule's next wait, or failed once [`MAX_ATTEMPTS`] are spent.
pub fn settle(d: Dialect, delivery: &Delivery, outcome: &Outcome, now: i64) -> Statement {
    let attempts = delivery.attempts.saturating_add(1);
    let (status, error) = match outcome {
        Outcome::Answered(s) => (Some(i64::from(*s)), None),
        Outcome::Failed(e) | Outcome::Abandoned(e) => (
            None,
            Some(e.chars().take(MAX_ERROR_CHARS).collect::<String>()),
        ),
    };
    let delivered = matches!(outcome, Outcome::Answered(s) if (200..300).contains(s));
    let (state, next) = if delivered {
        ("delivered", None)
    } else if matches!(outcome, Outcome::Abandoned(_)) {
        ("failed", None)
    } else if let Some(wait) = RETRY_SCHEDULE_MS.get(delivery.attempts as usize) {
        ("pending", Some(now + wait))
    } else {
        ("failed", None)
    };
    d.stmt(
        "UPDATE webhook_deliveries SET status = ?4, attempts = ?5, next_attempt_at = ?6,
                last_attempt_at = ?7, last_status = ?8, last_error = ?9, delivered_at = ?10
         WHERE tenant_id = ?1 AND endpoint_id = ?2 AND event_seq = ?3",
        vec![
            delivery.tenant_id.as_str().into(),
            delivery.endpoint_id.as_str().into(),
            crate::sql::seq(delivery.event_seq),
            state.into(),
            i64::from(attempts).into(),
            Value::Int(next),
            now.into(),
            Value::Int(status),
            Value::Text(error),
            Value::Int(delivered.then_some(now)),
        ],
    )
}

/// A page of an endpoint's deliveries, newest event first, below `before` if given;
/// one more than `limit` is read.
pub fn page(
    d: Dialect,
    tenant_id: &str,
    endpoint_id: &str,
    before: Option<u64>,
    limit: usize,
) -> Statement {
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = ?1 AND endpoint_id = ?2"
    );
    let mut params: Vec<Value> = vec![tenant_id.into(), endpoint_id.into()];
    if let Some(b) = before {
        params.push(crate::sql::seq(b));
        sql.push_str(" AND event_seq < ?3");
    }
    sql.push_str(&format!(" ORDER BY event_seq DESC LIMIT {}", limit + 1));
    d.stmt(&sql, params)
}

/// One delivery.
pub fn one(d: Dialect, tenant_id: &str, endpoint_id: &str, event_seq: u64) -> Statement {
    d.stmt(
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
             WHERE tenant_id = ?1 AND endpoint_id = ?2 AND event_seq = ?3"
        ),
        vec![
            tenant_id.into(),
            endpoint_id.into(),
            crate::sql::seq(event_seq),
        ],
    )
}

/// Makes a delivery due at once with a fresh schedule (its log keeps the last attempt
/// until the next one), whatever it was; answers the delivery as it now is.
pub fn resend(
    d: Dialect,
    tenant_id: &str,
    endpoint_id: &str,
    event_seq: u64,
    now: i64,
) -> Statement {
    d.stmt(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?4,
                delivered_at = NULL
         WHERE tenant_id = ?1 AND endpoint_id = ?2 AND event_seq = ?3",
        vec![
            tenant_id.into(),
            endpoint_id.into(),
            crate::sql::seq(event_seq),
            now.into(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::Credits;

    fn event(entry: u64, at: i64, state: AlertState) -> AlertEvent {
        AlertEvent {
            entry,
            at: Timestamp::from_millis(at).expect("in range"),
            rule_id: "low".into(),
            state,
            grant_id: None,
            balance: Credits::from_units(5).expect("small"),
        }
    }

    fn endpoint(id: &str, types: &[&str], created_at: i64) -> StoredEndpoint {
        StoredEndpoint {
            id: id.into(),
            url: "https://example.com/hook".into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            description: None,
            secret: "whsec_x".into(),
            created_at,
        }
    }

    fn delivery(attempts: u32) -> Delivery {
        Delivery {
            tenant_id: "t".into(),
            endpoint_id: "wh_1".into(),
            event_seq: 3,
            event_type: ALERT_FIRED.into(),
            payload: "{}".into(),
            status: DeliveryStatus::Pending,
            attempts,
            created_at: 0,
            next_attempt_at: Some(0),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            delivered_at: None,
        }
    }

    #[test]
    fn events_fan_in_to_the_endpoints_that_subscribe_and_existed_then() {
        let endpoints = [
            endpoint("wh_all", EVENT_TYPES, 0),
            endpoint("wh_fired", &[ALERT_FIRED], 0),
            endpoint("wh_later", EVENT_TYPES, 5_000),
        ];
        let events = [
            event(1, 1_000, AlertState::Fired),
            event(2, 9_000, AlertState::Resolved),
        ];
        let st = fan_in(Dialect::Sqlite, "t", &endpoints, &events, 10_000).expect("plan");
        let to: Vec<(String, i64)> = st
            .iter()
            .map(|s| match (&s.params[1], &s.params[2]) {
                (Value::Text(Some(e)), Value::Int(Some(n))) => (e.clone(), *n),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            to,
            vec![
                ("wh_all".into(), 1),
                ("wh_fired".into(), 1),
                ("wh_all".into(), 2),
                ("wh_later".into(), 2)
            ]
        );
        assert!(st.iter().all(|s| s.sql.contains("DO NOTHING")));
    }

    #[test]
    fn a_payload_is_shaped_as_the_specification_says() {
        let body = payload("acme", &event(7, 1_000, AlertState::Fired)).expect("json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["type"], ALERT_FIRED);
        assert_eq!(v["timestamp"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["data"]["tenantId"], "acme");
        assert_eq!(v["data"]["entry"], 7);
        assert_eq!(v["data"]["state"], "fired");
    }

    fn state_of(st: &Statement) -> (&Value, &Value, &Value) {
        (&st.params[3], &st.params[5], &st.params[9])
    }

    #[test]
    fn failures_follow_the_schedule_then_give_up_and_a_2xx_delivers() {
        let now = 1_000_000;
        for (attempts, wait) in RETRY_SCHEDULE_MS.iter().enumerate() {
            let st = settle(
                Dialect::Sqlite,
                &delivery(attempts as u32),
                &Outcome::Answered(503),
                now,
            );
            assert_eq!(
                state_of(&st),
                (
                    &"pending".into(),
                    &Value::Int(Some(now + wait)),
                    &Value::Int(None)
                )
            );
        }
        let last = settle(
            Dialect::Sqlite,
            &delivery(MAX_ATTEMPTS - 1),
            &Outcome::Failed("connection refused".into()),
            now,
        );
        assert_eq!(
            state_of(&last),
            (&"failed".into(), &Value::Int(None), &Value::Int(None))
        );
        assert_eq!(last.params[4], Value::Int(Some(i64::from(MAX_ATTEMPTS))));
        let ok = settle(Dialect::Sqlite, &delivery(2), &Outcome::Answered(204), now);
        assert_eq!(
            state_of(&ok),
            (
                &"delivered".into(),
                &Value::Int(None),
                &Value::Int(Some(now))
            )
        );
        let gone = settle(
            Dialect::Sqlite,
            &delivery(0),
            &Outcome::Abandoned("the endpoint was removed".into()),
            now,
        );
        assert_eq!(
            state_of(&gone),
            (&"failed".into(), &Value::Int(None), &Value::Int(None))
        );
        // A redirect is not a delivery: it is retried like any other failure.
        let moved = settle(Dialect::Sqlite, &delivery(0), &Outcome::Answered(301), now);
        assert_eq!(moved.params[3], "pending".into());
    }

    #[test]
    fn errors_are_clipped_in_the_log() {
        let st = settle(
            Dialect::Sqlite,
            &delivery(0),
            &Outcome::Failed("x".repeat(1000)),
            0,
        );
        match &st.params[8] {
            Value::Text(Some(e)) => assert_eq!(e.len(), MAX_ERROR_CHARS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_and_secrets_come_from_the_random_bytes() {
        let (id, secret) = from_random(&[0xab; ENDPOINT_RANDOM_BYTES]).expect("made");
        assert_eq!(id, "wh_abababababababab");
        assert!(secret.text().starts_with("whsec_"));
        assert_eq!(parse_delivery_id("alert-12"), Some(12));
        assert_eq!(parse_delivery_id("alert-x"), None);
        assert_eq!(parse_delivery_id("12"), None);
    }
}
