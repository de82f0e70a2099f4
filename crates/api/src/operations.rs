//! CRM operations as both runtimes answer them: the request body of `POST
//! /v1/operations/{operation}`, the activity id a retry lands on, and the HTTP answer
//! for each outcome (success with the credits charged; `denied` 403,
//! `insufficient_credits` 402, `failed` 404/409 — each with the recorded activity).

use crate::error::{ApiCode, ApiError};
use crate::leads::LeadResult;
use crm_core::activity::{ComplianceInput, ReportedOutcome};
use crm_core::{CoreError, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crm_store::ingest::Stored;

/// The activity id of an operation request sent with an `Idempotency-Key`: derived
/// from tenant, route and key, so a retry is the same activity.
pub fn derived_id(tenant_id: &str, route: &str, idempotency_key: &str) -> String {
    format!(
        "idem-{}",
        &hex::encode(Sha256::digest(format!(
            "{tenant_id}\n{route}\n{idempotency_key}"
        )))[..40]
    )
}

/// The body of `POST /v1/operations/{operation}`: an activity without `id` and
/// `operation` (those come from the idempotency key and the path).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationInput {
    /// Who did it (checked for the operation's permission, charged, recorded).
    pub user_id: String,
    /// `failed` when the CRM's own operation failed (recorded, charged nothing).
    #[serde(default)]
    pub outcome: ReportedOutcome,
    #[serde(default)]
    pub entity_type: Option<String>,
    #[serde(default)]
    pub entity_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    /// When it happened; the time of receipt when absent.
    #[serde(default)]
    pub occurred_at: Option<crm_core::Timestamp>,
    #[serde(default)]
    #[schemars(with = "Option<Map<String, Value>>")]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub compliance: Option<ComplianceInput>,
}

/// The activity input of `POST /v1/operations/{operation}`: the body, checked as an
/// [`OperationInput`], with its id and operation.
pub fn metering_input(operation: &str, id: &str, body: Value) -> Result<Value, ApiError> {
    crm_core::names::validate_operation("operation", operation)?;
    let Value::Object(body) = body else {
        return Err(CoreError::invalid(
            "body",
            "the body must be an object with at least `userId`",
        )
        .into());
    };
    for taken in ["id", "operation"] {
        if body.contains_key(taken) {
            return Err(CoreError::invalid(
                taken,
                format!(
                    "`{taken}` comes from the path and the Idempotency-Key header, not the body"
                ),
            )
            .into());
        }
    }
    crate::request::parse::<OperationInput>(Value::Object(body.clone()))?;
    Ok(Value::Object(activity_input(operation, id, body)))
}

/// The answer of a CRM operation that succeeded.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationAnswer {
    /// Always true here: a refusal is an error answer with the recorded activity.
    pub allowed: bool,
    pub activity: Stored,
    pub credits_charged: crm_core::Credits,
    /// A lead operation's lead or page of leads.
    #[serde(flatten)]
    pub result: Option<LeadResult>,
}

/// An operation's activity input: the request's fields plus its id and operation.
pub fn activity_input(
    operation: &str,
    id: &str,
    mut body: Map<String, Value>,
) -> Map<String, Value> {
    body.insert("operation".to_owned(), json!(operation));
    body.insert("id".to_owned(), json!(id));
    body
}

/// The HTTP answer of an operation: status and body, or the refusal (with the recorded
/// activity in its details). `result` is the effect's answer (a lead, a page of
/// leads); `error_code` why a `failed` operation failed.
pub fn answer(
    stored: &Stored,
    result: Option<LeadResult>,
    error_code: Option<&str>,
    fresh_status: u16,
) -> Result<(u16, OperationAnswer), ApiError> {
    let activity = serde_json::to_value(stored).map_err(|_| ApiError::internal())?;
    let refused = |code: ApiCode, message: &str, extra: Value| {
        let mut details = json!({ "activity": activity });
        if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        Err(ApiError::new(code, message).with_details(details))
    };
    match stored.outcome {
        Outcome::Success => Ok((
            if stored.duplicate { 200 } else { fresh_status },
            OperationAnswer {
                allowed: true,
                activity: stored.clone(),
                credits_charged: stored.credits,
                result,
            },
        )),
        Outcome::Denied => refused(
            ApiCode::Forbidden,
            "the user does not hold the permission for this operation; recorded as denied",
            json!({}),
        ),
        Outcome::InsufficientCredits => refused(
            ApiCode::Core(crm_core::ErrorCode::InsufficientCredits),
            "the credit balance cannot cover this operation; recorded as insufficient_credits",
            json!({}),
        ),
        Outcome::Failed => {
            let code = error_code.unwrap_or("failed");
            let status = match code {
                "lead_not_found" => ApiCode::NotFound,
                _ => ApiCode::Conflict,
            };
            refused(
                status,
                "the operation failed; recorded as failed",
                json!({ "errorCode": code }),
            )
        }
    }
}
