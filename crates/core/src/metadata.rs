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
    check_depth(&Value::Object(map.clone()), 1)?;
    redact(&mut map, redact_keys);
    let size = serde_json::to_vec(&map)
        .expect("a JSON value always serializes")
        .len();
    if size > MAX_METADATA_BYTES {
        return Err(CoreError::too_large(
            "metadata",
            format!("metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(map)
}

fn check_depth(value: &Value, depth: usize) -> CoreResult<()> {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(m) => {
            if m.len() > MAX_METADATA_KEYS {
                return Err(CoreError::too_large(
                    "metadata",
                    format!("a metadata object has more than {MAX_METADATA_KEYS} keys"),
                ));
            }
            Box::new(m.values())
        }
        Value::Array(a) => Box::new(a.iter()),
        _ => return Ok(()),
    };
    if depth > MAX_METADATA_DEPTH {
        return Err(CoreError::too_large(
            "metadata",
            format!("metadata nests deeper than {MAX_METADATA_DEPTH} levels"),
        ));
    }
    for child in children {
        check_depth(child, depth + 1)?;
    }
    Ok(())
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
