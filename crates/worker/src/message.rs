//! Queue message bodies travel as JSON text with the `text` content type. workers-rs
//! sends a serde value with the `json` content type after turning every JSON object
//! inside it into a JS `Map`, which `JSON.stringify` writes as `{}`: nested metadata and
//! whole dead-letter bodies were lost that way. As `text`, a message is also exactly as
//! large as the packing measured it (as `json`, a string grows by its escapes).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use worker::{MessageBuilder, QueueContentType, SendMessage};

use crate::http::{ApiResult, Failure};

/// The JSON text of a message body (its length is the message's size).
pub fn encode<T: Serialize>(body: &T) -> ApiResult<String> {
    serde_json::to_string(body).map_err(Failure::internal)
}

/// A message carrying `text` as is.
pub fn text(text: String) -> SendMessage<String> {
    delayed(text, 0)
}

/// A message carrying `text`, delivered no sooner than `seconds` from now.
pub fn delayed(text: String, seconds: u32) -> SendMessage<String> {
    MessageBuilder::new(text)
        .content_type(QueueContentType::Text)
        .delay_seconds(seconds)
        .build()
}

/// A message body: JSON text, or a structured value (what a worker of an earlier
/// version queued, still in flight during a deploy).
pub fn decode<T: DeserializeOwned>(body: &Value) -> serde_json::Result<T> {
    match body {
        Value::String(text) => serde_json::from_str(text),
        other => T::deserialize(other),
    }
}
