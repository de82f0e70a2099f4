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
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // The serializer writes UTF-8 only; the lossy path is never taken.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `value` canonically into `out`. Strings and scalars go through serde_json's
/// compact serializer (what `Value`'s `Display` runs), straight into `out`: no text per
/// key or value.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar<T: Serialize + ?Sized>(scalar: &T, out: &mut Vec<u8>) {
    // Writing JSON scalars and strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, scalar);
}

/// Room for a typical activity's canonical form (~1.2 KB), so writing it rarely grows
/// the buffer.
const CANONICAL_CAPACITY: usize = 2048;

/// Hash of an activity given its `prev_hash` (already set on it): of its stored form,
/// so a record hashes alike whether read open, erased or as stored
/// (`crate::personal`).
pub fn compute_hash(activity: &Activity) -> String {
    let mut canonical = Vec::with_capacity(CANONICAL_CAPACITY);
    crate::canonical::write(
        &*crate::personal::stored_form(activity),
        Some("hash"),
        &mut canonical,
    )
    .expect("activities always serialize");
    let mut hasher = Sha256::new();
    hasher.update(activity.prev_hash.as_bytes());
    hasher.update(&canonical);
    hex::encode(hasher.finalize())
}

/// Appends `activity` after `prev_hash` with sequence number `seq`.
pub fn seal(activity: &mut Activity, seq: u64, prev_hash: &str) {
    activity.seq = seq;
    activity.prev_hash = prev_hash.to_owned();
    activity.hash = compute_hash(activity);
}

/// Where and why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Break {
    /// The first sequence number that is wrong (missing, altered or out of place).
    pub seq: u64,
    pub reason: String,
}

/// Verifies a chain one activity at a time, in `seq` order, so stores can stream
/// millions of records through it. Starts after an anchor: `(0, GENESIS)` for a full
/// chain, or the last record retention deleted.
#[derive(Debug, Clone)]
pub struct Verifier {
    next_seq: u64,
    prev_hash: String,
    verified: u64,
}

impl Verifier {
    pub fn new(anchor_seq: u64, anchor_hash: &str) -> Verifier {
        Verifier {
            next_seq: anchor_seq + 1,
            prev_hash: anchor_hash.to_owned(),
            verified: 0,
        }
    }

    /// Continues a verification paused after `after_seq`, whose hash was `hash`, with
    /// `verified` records counted so far.
    pub fn resume(after_seq: u64, hash: &str, verified: u64) -> Verifier {
        Verifier {
            next_seq: after_seq + 1,
            prev_hash: hash.to_owned(),
            verified,
        }
    }

    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// Hash of the last record verified (the anchor's before any).
    pub fn last_hash(&self) -> &str {
        &self.prev_hash
    }

    pub fn push(&mut self, a: &Activity) -> Result<(), Break> {
        let at = |seq, reason: &str| Break {
            seq,
            reason: reason.to_owned(),
        };
        if a.seq > self.next_seq {
            return Err(at(self.next_seq, "this record is missing (deleted)"));
        }
        if a.seq < self.next_seq {
            return Err(at(a.seq, "record out of order or repeated"));
        }
        if a.prev_hash != self.prev_hash {
            return Err(at(
                a.seq,
                "prevHash does not match the previous record's hash (reordered or removed)",
            ));
        }
        if compute_hash(a) != a.hash {
            return Err(at(a.seq, "content does not match its hash (altered)"));
        }
        self.prev_hash.clone_from(&a.hash);
        self.next_seq += 1;
        self.verified += 1;
        Ok(())
    }

    /// After the last record: the chain must end where the store says its head is
    /// (records cut off the end are detected too).
    pub fn finish(&self, head_seq: u64, head_hash: &str) -> Result<(), Break> {
        if self.next_seq - 1 != head_seq {
            return Err(Break {
                seq: self.next_seq,
                reason: format!(
                    "the chain ends at seq {} but the head is {head_seq}",
                    self.next_seq - 1
                ),
            });
        }
        if self.prev_hash != head_hash {
            return Err(Break {
                seq: head_seq,
                reason: "the last record's hash is not the recorded head".to_owned(),
            });
        }
        Ok(())
    }
}

/// Verifies a run of activities in `seq` order. `prev_hash` is the hash before the
/// first one (`GENESIS` when starting at seq 1). Returns the last hash.
pub fn verify(activities: &[Activity], prev_hash: &str, first_seq: u64) -> CoreResult<String> {
    let mut v = Verifier::new(first_seq.saturating_sub(1), prev_hash);
    for a in activities {
        v.push(a).map_err(|b| {
            CoreError::new(
                ErrorCode::ChainBroken,
                format!("chain broken at seq {}: {}", b.seq, b.reason),
            )
        })?;
    }
    Ok(v.last_hash().to_owned())
}
