//! Offline verification of an NDJSON export: an auditor checks what they were given
//! without asking the server. Every record's hash is recomputed; records with
//! consecutive sequence numbers must link (`prevHash` = the previous `hash`). A
//! filtered export has gaps between records it did not include; those are reported,
//! not treated as tampering.

use crm_core::Activity;
use crm_core::chain::compute_hash;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineVerification {
    pub ok: bool,
    pub records: u64,
    /// Pairs of consecutive records whose link was checked.
    pub links: u64,
    /// Whether the export covers an unbroken run of sequence numbers.
    pub contiguous: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub fn verify_ndjson(ndjson: &str) -> OfflineVerification {
    let mut v = OfflineVerification {
        ok: true,
        records: 0,
        links: 0,
        contiguous: true,
        first_bad_seq: None,
        reason: None,
    };
    let mut previous: Option<(u64, String)> = None;
    for (i, line) in ndjson
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fail = |v: &mut OfflineVerification, seq: Option<u64>, reason: String| {
            v.ok = false;
            v.first_bad_seq = seq;
            v.reason = Some(reason);
        };
        let a: Activity = match serde_json::from_str(line) {
            Ok(a) => a,
            Err(e) => {
                fail(
                    &mut v,
                    None,
                    format!("line {}: not an activity record ({e})", i + 1),
                );
                return v;
            }
        };
        if compute_hash(&a) != a.hash {
            fail(
                &mut v,
                Some(a.seq),
                "content does not match its hash (altered)".to_owned(),
            );
            return v;
        }
        match &previous {
            Some((seq, _)) if a.seq <= *seq => {
                fail(
                    &mut v,
                    Some(a.seq),
                    "records out of order or repeated".to_owned(),
                );
                return v;
            }
            Some((seq, hash)) if a.seq == seq + 1 => {
                if a.prev_hash != *hash {
                    fail(
                        &mut v,
                        Some(a.seq),
                        "prevHash does not match the previous record (reordered or removed)"
                            .to_owned(),
                    );
                    return v;
                }
                v.links += 1;
            }
            Some(_) => v.contiguous = false,
            None => {}
        }
        previous = Some((a.seq, a.hash.clone()));
        v.records += 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::chain::{GENESIS, seal};

    fn one() -> Activity {
        let dir = r#"{"organizations":[{"id":"o","name":"O"}],"departments":[{"id":"d","name":"D","organizationId":"o"}],
                      "users":[{"id":"u","name":"U","departmentId":"d","grants":["*"]}]}"#;
        let snap =
            crm_core::engine::TenantSnapshot::from_json("t", 1, "{}", dir).expect("snapshot");
        let now = crm_core::Timestamp::from_millis(1_700_000_000_000).expect("time");
        snap.enrich_json(
            r#"{"userId":"u","operation":"crm.leads.read"}"#,
            "g",
            now,
            None,
        )
        .expect("enriched")
    }

    fn chain(n: u64) -> Vec<Activity> {
        let setup = one();
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut a = setup.clone();
                a.id = format!("a-{seq}");
                seal(&mut a, seq, &prev);
                prev.clone_from(&a.hash);
                a
            })
            .collect()
    }

    fn ndjson(records: &[Activity]) -> String {
        records
            .iter()
            .map(|a| serde_json::to_string(a).expect("json") + "\n")
            .collect()
    }

    #[test]
    fn an_untouched_export_verifies_and_tampering_is_named() {
        let records = chain(5);
        let ok = verify_ndjson(&ndjson(&records));
        assert!(ok.ok && ok.contiguous);
        assert_eq!((ok.records, ok.links), (5, 4));

        let mut altered = records.clone();
        altered[2].operation = "crm.leads.delete".into();
        assert_eq!(verify_ndjson(&ndjson(&altered)).first_bad_seq, Some(3));

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_ndjson(&ndjson(&swapped)).first_bad_seq, Some(2));

        let mut gap = records.clone();
        gap.remove(2);
        let v = verify_ndjson(&ndjson(&gap));
        assert!(
            v.ok && !v.contiguous,
            "a gap is reported, not a failure: {v:?}"
        );
        assert!(!verify_ndjson("{not json").ok);
    }
}
