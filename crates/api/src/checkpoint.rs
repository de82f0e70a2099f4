//! Signed checkpoints (issue 26.6): the head of a tenant's chain — seq, hash, time —
//! signed with an Ed25519 key that the database does not hold. Whoever keeps
//! checkpoints detects a chain rewritten by someone who could write the whole database
//! (the chain alone cannot: its hashes can be recomputed): `GET /v1/audit/verify` with
//! `checkpointSeq` and `checkpointHash` checks that the record at that seq still has
//! that hash.
//!
//! The key is passed in by the runtime (crm-host: a key file apart from the database;
//! the edge: a Worker secret). Signing is deterministic (RFC 8032), so this stays pure.

use crm_core::Timestamp;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::ApiError;

type Params = BTreeMap<String, String>;

/// Domain separation: a checkpoint signature can never be read as anything else.
const CONTEXT: &str = "crm-checkpoint-v1";

/// A signed statement of a tenant's chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    pub tenant_id: String,
    /// The head's sequence number (0 for an empty chain).
    pub seq: u64,
    /// The head record's hash (the genesis hash for an empty chain).
    pub hash: String,
    /// When the checkpoint was signed.
    pub at: Timestamp,
    /// The signer's Ed25519 public key, hex: pin it, and compare.
    pub public_key: String,
    /// Ed25519 over `crm-checkpoint-v1\n{tenantId}\n{seq}\n{hash}\n{at ms}`, hex.
    pub signature: String,
}

fn message(tenant_id: &str, seq: u64, hash: &str, at: Timestamp) -> String {
    format!("{CONTEXT}\n{tenant_id}\n{seq}\n{hash}\n{}", at.millis())
}

/// The signing key of a runtime.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret half.
        write!(f, "CheckpointKey({})", self.public_hex())
    }
}

impl CheckpointKey {
    /// From a 32-byte seed (as 64 hex digits, surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(text.trim()).map_err(|_| "a checkpoint key is 64 hex digits".to_owned())?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a checkpoint key is 64 hex digits (32 bytes)".to_owned())?;
        Ok(CheckpointKey::from_seed(seed))
    }

    /// From 32 random bytes the runtime drew.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        CheckpointKey(SigningKey::from_bytes(&seed))
    }

    /// The seed as written to a key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// Ed25519 over `context` and `bytes` (a separate context per use, so a signature
    /// made for one thing is never accepted as another), hex.
    pub(crate) fn sign_bytes(&self, context: &str, bytes: &[u8]) -> String {
        let mut message = format!("{context}\n").into_bytes();
        message.extend_from_slice(bytes);
        hex::encode(self.0.sign(&message).to_bytes())
    }

    /// Whether `signature` (hex) is this key's over `context` and `bytes`.
    pub(crate) fn verifies(&self, context: &str, bytes: &[u8], signature: &str) -> bool {
        let Some(sig) = hex::decode(signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        let mut message = format!("{context}\n").into_bytes();
        message.extend_from_slice(bytes);
        self.0
            .verifying_key()
            .verify(&message, &Signature::from_bytes(&sig))
            .is_ok()
    }

    pub fn sign(&self, tenant_id: &str, seq: u64, hash: &str, at: Timestamp) -> Checkpoint {
        let signature = self.0.sign(message(tenant_id, seq, hash, at).as_bytes());
        Checkpoint {
            tenant_id: tenant_id.to_owned(),
            seq,
            hash: hash.to_owned(),
            at,
            public_key: self.public_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

impl Checkpoint {
    /// Whether the signature is the named key's over these fields. A verifier also
    /// compares `public_key` with the key it pinned.
    pub fn verify(&self) -> Result<(), String> {
        let key: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the public key is not 32 bytes of hex")?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| "not an Ed25519 public key")?;
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        key.verify(
            message(&self.tenant_id, self.seq, &self.hash, self.at).as_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| "the signature does not match".to_owned())
    }
}

/// How long a caller should wait when the runtime has no signing key: an operator has
/// to set it, which takes minutes, not seconds.
pub const NO_KEY_RETRY_AFTER_SECONDS: u32 = 300;

/// A runtime without its signing key (an edge deployment without the Worker secret):
/// 503, until an operator sets it.
pub fn not_configured() -> ApiError {
    ApiError::unavailable(
        "checkpoint signing is not configured (Worker secret CHECKPOINT_KEY)",
        NO_KEY_RETRY_AFTER_SECONDS,
    )
}

/// A checkpoint the caller kept, named in `GET /v1/audit/verify`: `checkpointSeq` and
/// `checkpointHash`, both or neither.
pub fn kept(params: &Params) -> Result<Option<(u64, String)>, ApiError> {
    match (params.get("checkpointSeq"), params.get("checkpointHash")) {
        (None, None) => Ok(None),
        (Some(seq), Some(hash)) => {
            let seq = seq
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("`checkpointSeq` must be a sequence number"))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::invalid(
                    "`checkpointHash` must be a record hash (64 hex digits)",
                ));
            }
            Ok(Some((seq, hash.to_ascii_lowercase())))
        }
        _ => Err(ApiError::invalid(
            "`checkpointSeq` and `checkpointHash` go together",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CheckpointKey {
        CheckpointKey::from_hex(&"07".repeat(32)).expect("key")
    }

    #[test]
    fn a_checkpoint_verifies_and_any_changed_field_does_not() {
        let at = Timestamp::from_millis(1_700_000_000_000).expect("time");
        let c = key().sign("t1", 42, &"ab".repeat(32), at);
        c.verify().expect("verifies");
        let later = Timestamp::from_millis(1_700_000_000_001).expect("time");
        for changed in [
            Checkpoint {
                seq: 41,
                ..c.clone()
            },
            Checkpoint {
                tenant_id: "t2".to_owned(),
                ..c.clone()
            },
            Checkpoint {
                hash: "cd".repeat(32),
                ..c.clone()
            },
            Checkpoint {
                at: later,
                ..c.clone()
            },
            Checkpoint {
                public_key: CheckpointKey::from_hex(&"08".repeat(32))
                    .expect("key")
                    .public_hex(),
                ..c.clone()
            },
        ] {
            assert!(changed.verify().is_err(), "{changed:?}");
        }
        // Deterministic: the same head signs the same way.
        assert_eq!(key().sign("t1", 42, &"ab".repeat(32), at), c);
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let k = key();
        assert_eq!(
            CheckpointKey::from_hex(&k.to_hex())
                .expect("again")
                .public_hex(),
            k.public_hex()
        );
        assert!(
            !format!("{k:?}").contains(&k.to_hex()),
            "Debug never shows the seed"
        );
        assert!(CheckpointKey::from_hex("zz").is_err());
        assert!(CheckpointKey::from_hex(&"07".repeat(31)).is_err());
    }

    #[test]
    fn kept_checkpoints_are_both_parameters_or_neither() {
        let p = |pairs: &[(&str, &str)]| -> Params {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(kept(&p(&[])).expect("none"), None);
        let h = "AB".repeat(32);
        assert_eq!(
            kept(&p(&[("checkpointSeq", "7"), ("checkpointHash", &h)])).expect("kept"),
            Some((7, "ab".repeat(32)))
        );
        assert!(kept(&p(&[("checkpointSeq", "7")])).is_err());
        assert!(kept(&p(&[("checkpointSeq", "x"), ("checkpointHash", &h)])).is_err());
        assert!(kept(&p(&[("checkpointSeq", "7"), ("checkpointHash", "ab")])).is_err());
    }
}
