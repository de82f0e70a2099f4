//! Tamper-evident per-tenant log: `hash = sha256(prev_hash || canonical JSON)`, where the
//! canonical JSON is the activity without its `hash` field, object keys sorted, no
//! whitespace. The first activity of a tenant chains from `GENESIS`.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::activity::Activity;
use crate::error::{CoreError, CoreResult, ErrorCode};

/// `prev_hash` of a tenant's first activity: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Writes `value` as JSON with object keys sorted at every level. Done by hand rather
/// than relying on serde_json's map order, which a `preserve_order` feature enabled by
/// any crate in a build would silently change.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).expect("activities always serialize")
}

/// Hash of an activity given its `prev_hash` (already set on it).
pub fn compute_hash(activity: &Activity) -> String {
    let mut value = to_value(activity);
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    let mut hasher = Sha256::new();
    hasher.update(activity.prev_hash.as_bytes());
    hasher.update(canonical_json(&value).as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends `activity` after `prev_hash` with sequence number `seq`.
pub fn seal(activity: &mut Activity, seq: u64, prev_hash: &str) {
    activity.seq = seq;
    activity.prev_hash = prev_hash.to_owned();
    activity.hash = compute_hash(activity);
}

/// Verifies a run of activities in `seq` order. `prev_hash` is the hash before the
/// first one (`GENESIS` when starting at seq 1). Returns the last hash.
pub fn verify(activities: &[Activity], prev_hash: &str, first_seq: u64) -> CoreResult<String> {
    let mut expected_prev = prev_hash.to_owned();
    for (expected_seq, a) in (first_seq..).zip(activities) {
        let broken = |what: &str| {
            CoreError::new(
                ErrorCode::ChainBroken,
                format!("chain broken at seq {}: {what}", a.seq),
            )
        };
        if a.seq != expected_seq {
            return Err(broken("sequence gap"));
        }
        if a.prev_hash != expected_prev {
            return Err(broken("prevHash does not match the previous hash"));
        }
        if compute_hash(a) != a.hash {
            return Err(broken("content does not match its hash"));
        }
        expected_prev = a.hash.clone();
    }
    Ok(expected_prev)
}
