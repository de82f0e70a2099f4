//! Activity metadata: a bounded JSON object, redacted per tenant policy before storage.

use serde_json::{Map, Value};

use crate::error::{CoreError, CoreResult};
use crate::limits::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_METADATA_KEYS};

/// Replacement for redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// Checks shape and size, then returns the object with redacted keys replaced.
pub fn sanitize(value: Option<Value>, redact_keys: &[String]) -> CoreResult<Map<String, Value>> {
    let mut map = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(CoreError::invalid(
                "metadata",
                "metadata must be a JSON object",
            ));
        }
    };
    check_object(&map, 1)?;
    redact(&mut map, redact_keys);
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, &map).expect("a JSON value always serializes");
    if size.0 > MAX_METADATA_BYTES {
        return Err(CoreError::too_large(
            "metadata",
            format!(
                "metadata is {} bytes; the limit is {MAX_METADATA_BYTES}",
                size.0
            ),
        ));
    }
    Ok(map)
}

/// Counts serialized bytes without keeping them: the size check runs on every activity.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_deep() -> CoreError {
    CoreError::too_large(
        "metadata",
        format!("metadata nests deeper than {MAX_METADATA_DEPTH} levels"),
    )
}

fn check_object(m: &Map<String, Value>, depth: usize) -> CoreResult<()> {
    if m.len() > MAX_METADATA_KEYS {
        return Err(CoreError::too_large(
            "metadata",
            format!("a metadata object has more than {MAX_METADATA_KEYS} keys"),
        ));
    }
    if depth > MAX_METADATA_DEPTH {
        return Err(too_deep());
    }
    m.values().try_for_each(|v| check_depth(v, depth + 1))
}

fn check_depth(value: &Value, depth: usize) -> CoreResult<()> {
    match value {
        Value::Object(m) => check_object(m, depth),
        Value::Array(a) => {
            if depth > MAX_METADATA_DEPTH {
                return Err(too_deep());
            }
            a.iter().try_for_each(|v| check_depth(v, depth + 1))
        }
        _ => Ok(()),
    }
}

fn redact(map: &mut Map<String, Value>, keys: &[String]) {
    for (k, v) in map.iter_mut() {
        if keys.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            *v = Value::String(REDACTED.to_owned());
        } else {
            redact_value(v, keys);
        }
    }
}

fn redact_value(value: &mut Value, keys: &[String]) {
    match value {
        Value::Object(m) => redact(m, keys),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{REDACTED, sanitize};
    use crate::error::ErrorCode;
    use crate::limits::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_METADATA_KEYS};

    /// `levels` containers, objects or arrays, one inside the other.
    fn nested(levels: usize, array: bool) -> Value {
        (1..levels).fold(json!(1), |inner, _| {
            if array {
                json!([inner])
            } else {
                json!({ "k": inner })
            }
        })
    }

    fn code(v: Value) -> Option<ErrorCode> {
        sanitize(Some(json!({ "top": v })), &[])
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn nesting_is_refused_one_level_past_the_limit_for_objects_and_arrays() {
        for array in [false, true] {
            // The top-level object is the first level.
            assert_eq!(
                code(nested(MAX_METADATA_DEPTH, array)),
                None,
                "array: {array}"
            );
            assert_eq!(
                code(nested(MAX_METADATA_DEPTH + 1, array)),
                Some(ErrorCode::TooLarge),
                "array: {array}"
            );
        }
    }

    #[test]
    fn keys_and_bytes_are_bounded_and_redaction_applies_at_every_depth() {
        let keys = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect());
        assert!(sanitize(Some(keys(MAX_METADATA_KEYS)), &[]).is_ok());
        assert!(sanitize(Some(keys(MAX_METADATA_KEYS + 1)), &[]).is_err());
        let big = json!({ "s": "x".repeat(MAX_METADATA_BYTES) });
        assert_eq!(
            sanitize(Some(big), &[]).map_err(|e| e.code).err(),
            Some(ErrorCode::TooLarge)
        );
        let clean = sanitize(
            Some(json!({ "Password": "p", "list": [{ "password": "q" }], "n": 1 })),
            &["password".to_owned()],
        )
        .expect("valid");
        assert_eq!(
            Value::Object(clean),
            json!({ "Password": REDACTED, "list": [{ "password": REDACTED }], "n": 1 })
        );
    }
}
