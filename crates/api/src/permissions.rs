//! `POST /v1/permissions/check`: one check (`{userId, permission}`) or a batch
//! (`{checks: [...]}`, at most [`MAX_CHECK_BATCH`]), parsed once for every runtime.

use crm_core::limits::MAX_CHECK_BATCH;
use crm_core::permission::{CheckRequest, Decision};
use serde_json::Value;

use crate::error::ApiError;
use crate::request;

#[derive(Debug, Clone, PartialEq)]
pub enum Checks {
    One(CheckRequest),
    Batch(Vec<CheckRequest>),
}

/// The body of `POST /v1/permissions/check`: one check, or a batch (recognised by its
/// `checks` member).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CheckBody {
    One(CheckRequest),
    Batch(Batch),
}

/// Many checks in one request.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    #[schemars(length(max = MAX_CHECK_BATCH))]
    checks: Vec<CheckRequest>,
}

/// The answer: one decision, or one per check in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CheckAnswer {
    One(Decision),
    Batch { decisions: Vec<Decision> },
}

impl Checks {
    pub fn from_body(body: Value) -> Result<Checks, ApiError> {
        if body.get("checks").is_none() {
            return Ok(Checks::One(request::parse(body)?));
        }
        let batch: Batch = request::parse(body)?;
        if batch.checks.len() > MAX_CHECK_BATCH {
            return Err(ApiError::too_large(format!(
                "at most {MAX_CHECK_BATCH} checks per request"
            )));
        }
        Ok(Checks::Batch(batch.checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_check_or_a_bounded_batch() {
        let one = Checks::from_body(json!({ "userId": "u", "permission": "crm.x" }));
        assert!(matches!(one, Ok(Checks::One(_))));
        let batch =
            Checks::from_body(json!({ "checks": [{ "userId": "u", "permission": "crm.x" }] }));
        assert!(matches!(batch, Ok(Checks::Batch(b)) if b.len() == 1));
        let extra = Checks::from_body(json!({ "checks": [], "more": 1 }));
        assert_eq!(extra.map_err(|e| e.status()), Err(400));
        let many = vec![json!({ "userId": "u", "permission": "crm.x" }); MAX_CHECK_BATCH + 1];
        assert_eq!(
            Checks::from_body(json!({ "checks": many })).map_err(|e| e.status()),
            Err(413)
        );
    }
}
