//! Signing outgoing deliveries as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp` (Unix
//! seconds) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret,
//! "{id}.{timestamp}.{body}")). A receiver checks the signature with any of the
//! specification's libraries and refuses old timestamps, so a captured delivery can
//! neither be altered nor replayed later.
//!
//! The id is derived from the body, so every retry of one delivery carries the same id
//! (receivers deduplicate by it) without anything to store.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, CoreResult};

/// The specification's prefix of a secret's text form.
const PREFIX: &str = "whsec_";
/// Key bytes a secret may have: the specification asks for 24 to 64; 16 is accepted
/// for secrets made by older tools, more than 128 is surely a mistake.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 16..=128;

/// A signing secret, `whsec_` + base64 of its key bytes.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

/// The three headers of one signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl SignedHeaders {
    /// (name, value) pairs, ready to set on a request.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("webhook-id", &self.id),
            ("webhook-timestamp", &self.timestamp),
            ("webhook-signature", &self.signature),
        ]
    }
}

impl SigningSecret {
    pub fn parse(text: &str) -> CoreResult<SigningSecret> {
        let bad = || {
            CoreError::invalid(
                "signingSecret",
                format!(
                    "a signing secret is `{PREFIX}` followed by base64 of {}-{} bytes",
                    KEY_BYTES.start(),
                    KEY_BYTES.end()
                ),
            )
        };
        let key = STANDARD
            .decode(text.trim().strip_prefix(PREFIX).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(bad());
        }
        Ok(SigningSecret(key))
    }

    /// A secret of these key bytes (a runtime's random bytes for a new endpoint).
    pub fn from_key(key: &[u8]) -> CoreResult<SigningSecret> {
        if !KEY_BYTES.contains(&key.len()) {
            return Err(CoreError::invalid(
                "signingSecret",
                format!(
                    "a signing key has {}-{} bytes",
                    KEY_BYTES.start(),
                    KEY_BYTES.end()
                ),
            ));
        }
        Ok(SigningSecret(key.to_vec()))
    }

    /// The text form, `whsec_` + base64 of the key: what the receiver configures.
    pub fn text(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,` + the signature of one message.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The headers of `body` sent at `now_secs`; the id is `msg_` + the first 16 bytes
    /// of the body's SHA-256, in hex.
    pub fn headers(&self, body: &[u8], now_secs: i64) -> SignedHeaders {
        let id = format!("msg_{}", hex::encode(&Sha256::digest(body)[..16]));
        SignedHeaders {
            signature: self.sign(&id, now_secs, body),
            timestamp: now_secs.to_string(),
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the specification's reference libraries.
    #[test]
    fn the_specifications_example_signs_alike() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_retry_carries_the_same_id_and_another_body_another() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let a = secret.headers(b"{\"a\":1}", 100);
        assert_eq!(a.id, secret.headers(b"{\"a\":1}", 200).id);
        assert_ne!(a.id, secret.headers(b"{\"a\":2}", 100).id);
        assert_eq!(a.timestamp, "100");
    }

    #[test]
    fn a_secret_made_from_key_bytes_reads_back_from_its_text() {
        let secret = SigningSecret::from_key(&[7; 24]).expect("24 bytes");
        let again = SigningSecret::parse(&secret.text()).expect("its own text");
        assert_eq!(again.sign("m", 1, b"x"), secret.sign("m", 1, b"x"));
        assert!(SigningSecret::from_key(&[7; 8]).is_err());
    }

    #[test]
    fn secrets_are_checked() {
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!",
            "whsec_AAAA",
        ] {
            assert!(SigningSecret::parse(bad).is_err(), "{bad}");
        }
    }
}
