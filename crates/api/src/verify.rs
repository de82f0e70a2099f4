//! `GET /v1/audit/verify` as both runtimes read and answer it: a kept checkpoint
//! (`checkpointSeq`, `checkpointHash`), a record budget (`limit`, at most
//! `crm_store::audit::MAX_RECORDS_PER_CALL`) and a `resume` token continuing a
//! verification an earlier call paused. The token is the pause point signed with the
//! runtime's checkpoint key: a client cannot hand in a prefix it did not have verified.

use std::collections::BTreeMap;

use crm_store::audit::{MAX_RECORDS_PER_CALL, Paused, Verification};

use crate::ApiError;
use crate::checkpoint::CheckpointKey;

/// Domain separation for resume tokens.
const CONTEXT: &str = "crm-verify-resume-v1";

/// What one verify call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyQuery {
    pub kept: Option<(u64, String)>,
    pub resume: Option<Paused>,
    /// Records this call verifies at most.
    pub limit: u64,
}

fn bad_token() -> ApiError {
    ApiError::invalid("`resume` is not a resume token of this deployment and tenant")
}

fn no_key() -> ApiError {
    ApiError::unavailable(
        "paging a verification needs the checkpoint signing key (Worker secret CHECKPOINT_KEY)",
        crate::checkpoint::NO_KEY_RETRY_AFTER_SECONDS,
    )
}

/// The call's parameters. `key` signs resume tokens; without one (an edge deployment
/// without `CHECKPOINT_KEY`) a chain longer than one call cannot be paged (503).
pub fn query(
    params: &BTreeMap<String, String>,
    key: Option<&CheckpointKey>,
    tenant: &str,
) -> Result<VerifyQuery, ApiError> {
    let kept = crate::checkpoint::kept(params)?;
    let limit = match params.get("limit") {
        None => MAX_RECORDS_PER_CALL,
        Some(l) => l
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=MAX_RECORDS_PER_CALL).contains(l))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "`limit` is 1-{MAX_RECORDS_PER_CALL} records per call"
                ))
            })?,
    };
    let resume = params
        .get("resume")
        .map(|token| {
            let (body, signature) = token.split_once('.').ok_or_else(bad_token)?;
            let bytes = hex::decode(body).map_err(|_| bad_token())?;
            if !key.ok_or_else(no_key)?.verifies(CONTEXT, &bytes, signature) {
                return Err(bad_token());
            }
            let paused: Paused = serde_json::from_slice(&bytes).map_err(|_| bad_token())?;
            if paused.tenant_id != tenant {
                return Err(bad_token());
            }
            Ok(paused)
        })
        .transpose()?;
    if resume.is_some() && kept.is_some() {
        return Err(ApiError::invalid(
            "a kept checkpoint is named on the first call; `resume` carries it on",
        ));
    }
    Ok(VerifyQuery {
        kept,
        resume,
        limit,
    })
}

/// The answer of a call: with a signed `resume` token when it paused.
pub fn answer(
    mut v: Verification,
    paused: Option<Paused>,
    key: Option<&CheckpointKey>,
) -> Result<Verification, ApiError> {
    if let Some(p) = paused {
        let key = key.ok_or_else(no_key)?;
        let bytes = serde_json::to_vec(&p).unwrap_or_default();
        v.resume = Some(format!(
            "{}.{}",
            hex::encode(&bytes),
            key.sign_bytes(CONTEXT, &bytes)
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_store::audit::CheckpointCheck;

    fn key(byte: &str) -> CheckpointKey {
        CheckpointKey::from_hex(&byte.repeat(32)).expect("key")
    }

    fn p(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn resume_tokens_carry_the_pause_and_nothing_else_passes() {
        let paused: Paused = serde_json::from_value(serde_json::json!({
            "tenantId": "t1", "after": 10, "hash": "ab".repeat(32), "verified": 10,
            "kept": null, "keptCheck": CheckpointCheck::Matched,
            "ledger": { "entry": 2, "balance": 5, "charge": null, "lastCharged": 9 }
        }))
        .expect("a pause");
        let v = Verification {
            ok: true,
            verified: 10,
            anchor_seq: 0,
            head_seq: 20,
            first_bad_seq: None,
            reason: None,
            checkpoint: None,
            ledger_entries: 2,
            first_bad_entry: None,
            rollup_periods: 0,
            first_bad_rollup: None,
            complete: false,
            resume: None,
        };
        assert_eq!(
            answer(v.clone(), Some(paused.clone()), None)
                .expect_err("no key")
                .status(),
            503
        );
        let token = answer(v, Some(paused.clone()), Some(&key("07")))
            .expect("signed")
            .resume
            .expect("a token");
        let q = query(&p(&[("resume", &token)]), Some(&key("07")), "t1").expect("valid");
        assert_eq!((q.resume, q.limit), (Some(paused), MAX_RECORDS_PER_CALL));
        // Another deployment's key, another tenant, an edited pause: refused.
        assert!(query(&p(&[("resume", &token)]), Some(&key("08")), "t1").is_err());
        assert!(query(&p(&[("resume", &token)]), Some(&key("07")), "t2").is_err());
        let (body, sig) = token.split_once('.').expect("two parts");
        let edited = String::from_utf8(hex::decode(body).expect("hex"))
            .expect("json")
            .replace("\"after\":10", "\"after\":19");
        let forged = format!("{}.{sig}", hex::encode(edited));
        assert!(query(&p(&[("resume", &forged)]), Some(&key("07")), "t1").is_err());
        for bad in [
            ("limit", "0"),
            ("limit", "100001"),
            ("limit", "x"),
            ("resume", "zz"),
        ] {
            assert!(
                query(&p(&[bad]), Some(&key("07")), "t1").is_err(),
                "{bad:?}"
            );
        }
    }
}
