//! Queue message bodies travel as JSON text. `Queue::send` of a serde value would turn
//! every JSON object inside it into a JS `Map`, which comes back out of the queue as an
//! empty object: nested metadata and whole dead-letter bodies were lost that way. As
//! text, a message is also exactly as large as the packing measured it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::{ApiResult, Failure};

/// The JSON text of a message body.
pub fn encode<T: Serialize>(body: &T) -> ApiResult<String> {
    serde_json::to_string(body).map_err(Failure::internal)
}

/// A message body: JSON text, or a structured value (what a worker of an earlier
/// version queued, still in flight during a deploy).
pub fn decode<T: DeserializeOwned>(body: &Value) -> serde_json::Result<T> {
    match body {
        Value::String(text) => serde_json::from_str(text),
        other => T::deserialize(other),
    }
}
