//! `POST /v1/activities`: the request's shape (one activity, or a batch) and the
//! answers every runtime gives once the activities are recorded — typed, so crm-host
//! and the edge's `?sync=true` cannot answer differently.

use crm_core::limits::MAX_BATCH;
use crm_store::ingest::Stored;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{ApiCode, ApiError};

/// A request body: one activity object, or a non-empty array of at most [`MAX_BATCH`].
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    One(Value),
    Batch(Vec<Value>),
}

/// Documented as what [`Submission::from_body`] takes: an activity or a batch of them.
impl schemars::JsonSchema for Submission {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ActivitySubmission".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = generator.subschema_for::<crm_core::ActivityInput>();
        schemars::json_schema!({ "oneOf": [item, { "type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": item }] })
    }
}

impl Submission {
    pub fn from_body(body: Value) -> Result<Submission, ApiError> {
        match body {
            Value::Array(items) if items.is_empty() => Err(ApiError::invalid("the batch is empty")),
            Value::Array(items) if items.len() > MAX_BATCH => Err(ApiError::too_large(format!(
                "a batch holds at most {MAX_BATCH} activities, this one has {}",
                items.len()
            ))),
            Value::Array(items) => Ok(Submission::Batch(items)),
            one @ Value::Object(_) => Ok(Submission::One(one)),
            _ => Err(ApiError::invalid(
                "the body must be an activity object or an array of them",
            )),
        }
    }

    pub fn items(&self) -> &[Value] {
        match self {
            Submission::One(v) => std::slice::from_ref(v),
            Submission::Batch(items) => items,
        }
    }

    pub fn is_single(&self) -> bool {
        matches!(self, Submission::One(_))
    }

    /// SHA-256 of the whole request's canonical JSON: what an `Idempotency-Key` is
    /// bound to (a retry with an extra item or another field is another request).
    pub fn request_hash(&self) -> String {
        let body = match self {
            Submission::One(v) => v.clone(),
            Submission::Batch(items) => Value::Array(items.clone()),
        };
        crate::request::digest(&body)
    }
}

/// The operationId whose requests an `Idempotency-Key` is scoped to here.
pub const ENDPOINT: &str = "ingestActivities";

/// The answer to a recorded batch.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchAnswer {
    pub created: usize,
    pub duplicates: usize,
    pub results: Vec<Stored>,
}

/// The answer once recorded: the one activity's record, or the batch's.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IngestAnswer {
    One(Stored),
    Batch(BatchAnswer),
}

/// The edge's answer when it queued the activities (202): their ids are fixed, the
/// records are written by the consumer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QueuedAnswer {
    /// Activities in the request.
    pub accepted: usize,
    /// Of those, newly queued (the rest were queued or recorded before).
    pub queued: usize,
    /// Every activity's id, in the request's order.
    pub ids: Vec<String>,
}

/// The `sync` query parameter (`true` or `false`; absent is `false`).
pub fn sync_param(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid("`sync` must be true or false")),
    }
}

/// Status and body once `stored` (one per item, in order) is committed: 201 when
/// anything was created, 200 when every item replays an earlier request; a single
/// activity the balance could not cover is 402 (recorded as `insufficient_credits`,
/// charged nothing), with the activity in the details.
pub fn answer(single: bool, stored: Vec<Stored>) -> Result<(u16, IngestAnswer), ApiError> {
    let status = if stored.iter().all(|s| s.duplicate) {
        200
    } else {
        201
    };
    if single {
        let one = stored.into_iter().next().ok_or_else(ApiError::internal)?;
        if one.refused_for_credits() {
            return Err(ApiError::new(
                ApiCode::Core(crm_core::ErrorCode::InsufficientCredits),
                "the credit balance cannot cover this operation; it was recorded as insufficient_credits",
            )
            .with_details(json!({ "activity": encode(&one)? })));
        }
        return Ok((status, IngestAnswer::One(one)));
    }
    let created = stored.iter().filter(|s| !s.duplicate).count();
    let answer = BatchAnswer {
        created,
        duplicates: stored.len() - created,
        results: stored,
    };
    Ok((status, IngestAnswer::Batch(answer)))
}

/// Answers are plain data; failing to encode one is a bug, answered as internal.
fn encode<T: Serialize>(answer: &T) -> Result<Value, ApiError> {
    serde_json::to_value(answer).map_err(|_| ApiError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::{Credits, Outcome, Timestamp};

    fn stored(outcome: Outcome, duplicate: bool) -> Stored {
        Stored {
            id: "a1".to_owned(),
            seq: 1,
            outcome,
            credits: Credits::ZERO,
            hash: "h".to_owned(),
            occurred_at: Timestamp::from_millis(0).expect("epoch"),
            duplicate,
        }
    }

    #[test]
    fn one_activity_answers_its_record_and_402_when_credits_ran_out() {
        let (status, body) = answer(true, vec![stored(Outcome::Success, false)]).expect("ok");
        let body = encode(&body).expect("encoded");
        assert_eq!(status, 201);
        assert_eq!(body["id"], "a1");
        assert_eq!(
            answer(true, vec![stored(Outcome::Success, true)])
                .expect("ok")
                .0,
            200
        );
        let refused =
            answer(true, vec![stored(Outcome::InsufficientCredits, false)]).expect_err("402");
        assert_eq!(refused.status(), 402);
        assert_eq!(
            refused.details["activity"]["outcome"],
            "insufficient_credits"
        );
    }

    #[test]
    fn a_batch_answers_counts_and_every_result() {
        let (status, body) = answer(
            false,
            vec![
                stored(Outcome::Success, true),
                stored(Outcome::InsufficientCredits, false),
            ],
        )
        .expect("ok");
        let body = encode(&body).expect("encoded");
        assert_eq!(status, 201);
        assert_eq!(body["created"], 1);
        assert_eq!(body["duplicates"], 1);
        assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn bodies_are_one_object_or_a_bounded_non_empty_array() {
        assert!(Submission::from_body(json!({})).expect("one").is_single());
        assert_eq!(
            Submission::from_body(json!([])).map_err(|e| e.status()),
            Err(400)
        );
        assert_eq!(
            Submission::from_body(json!(3)).map_err(|e| e.status()),
            Err(400)
        );
        let big = Value::Array(vec![json!({}); MAX_BATCH + 1]);
        assert_eq!(Submission::from_body(big).map_err(|e| e.status()), Err(413));
        assert_eq!(sync_param(Some("yes")).map_err(|e| e.status()), Err(400));
    }
}
