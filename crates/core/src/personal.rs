//! Crypto-shredding: a record's personal fields sealed under its subject's key.
//!
//! The personal fields of an activity — the user's name, email and title (and the
//! entity path's last segment, the name), the IP address, user agent and location, and
//! the metadata keys the tenant marks personal — are encrypted with XChaCha20-Poly1305
//! under a key of the record's subject (its user). The chain hashes the record's
//! **stored form**: those fields blanked and the ciphertext in their place. Destroying
//! the subject's key erases every record of the subject at once while every hash, and
//! so `audit verify`, stays as it was.
//!
//! A record has three forms, and [`stored_form`] maps each to the one that is hashed:
//! - *open* (the writer's, and a read with the key): the plaintext and the sealed block,
//!   `personal.state = "open"`;
//! - *stored* (the database body, archives): the fields blanked, no `state`;
//! - *erased* (a read after the key is gone): the fields read `[erased]` or null,
//!   `personal.state = "erased"`.
//!
//! The hash binds the ciphertext; the plaintext is bound to it by the AEAD tag (and to
//! the record by its associated data), which only a holder of the key can check.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::activity::Activity;

/// What an erased personal value reads as.
pub const ERASED: &str = "[erased]";
/// Bytes of a subject key.
pub const KEY_LEN: usize = 32;
/// Bytes of an XChaCha20 nonce: random nonces this long never repeat in practice.
pub const NONCE_LEN: usize = 24;
/// Random bytes a new subject key is made from: a 16-byte id, then the key.
pub const NEW_KEY_RANDOM_LEN: usize = 16 + KEY_LEN;

/// A subject's data key and the id records name it by.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey {
    pub id: String,
    material: [u8; KEY_LEN],
}

impl std::fmt::Debug for SubjectKey {
    // Never print key material (logs outlive erasures).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKey").field("id", &self.id).finish()
    }
}

impl SubjectKey {
    /// A new key from the caller's random bits: the id from the first 16 bytes (so
    /// keys made concurrently for one subject never share an id), the key from the rest.
    pub fn from_random(bytes: &[u8; NEW_KEY_RANDOM_LEN]) -> SubjectKey {
        let mut material = [0u8; KEY_LEN];
        material.copy_from_slice(&bytes[16..]);
        SubjectKey {
            id: hex::encode(&bytes[..16]),
            material,
        }
    }

    /// The stored text of the key material (base64).
    pub fn material_text(&self) -> String {
        STANDARD.encode(self.material)
    }

    /// A key read back from storage; `None` when the stored text is not a key.
    pub fn from_stored(id: &str, material: &str) -> Option<SubjectKey> {
        let bytes = STANDARD.decode(material).ok()?;
        Some(SubjectKey {
            id: id.to_owned(),
            material: bytes.try_into().ok()?,
        })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.material.into())
    }
}

/// How a read found a record's personal fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonalState {
    /// Decrypted with the subject's key.
    Open,
    /// The subject's key was destroyed (`POST /v1/subjects/{userId}/erase`).
    Erased,
}

/// A record's sealed personal fields, as stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Personal {
    /// The subject key that seals them.
    pub key_id: String,
    /// XChaCha20 nonce, base64.
    pub nonce: String,
    /// The fields' JSON encrypted with XChaCha20-Poly1305 (tag appended), base64.
    pub ciphertext: String,
    /// The metadata keys whose values are sealed (the names are not personal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_keys: Vec<String>,
    /// How this read found them; absent in the stored (hashed) form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PersonalState>,
}

/// The plaintext that is sealed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    name: String,
    entity_path: String,
    email: Option<String>,
    title: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    location: Option<String>,
    metadata: Map<String, Value>,
}

/// The top-level metadata keys of `a` that `personal_keys` names (case-insensitive,
/// as redaction matches), in the record's key order.
fn personal_metadata_keys(a: &Activity, personal_keys: &[String]) -> Vec<String> {
    a.metadata
        .keys()
        .filter(|k| personal_keys.iter().any(|p| p.eq_ignore_ascii_case(k)))
        .cloned()
        .collect()
}

/// Whether `a` holds anything personal to seal. A record without (the erasure record
/// itself) is stored as it is, and creates no key.
pub fn holds_personal(a: &Activity, personal_keys: &[String]) -> bool {
    let u = &a.user_context.user;
    let c = &a.compliance;
    !u.name.is_empty()
        || u.email.is_some()
        || u.title.is_some()
        || c.ip_address.is_some()
        || c.user_agent.is_some()
        || c.location.is_some()
        || !personal_metadata_keys(a, personal_keys).is_empty()
}

fn associated_data(a: &Activity, key_id: &str) -> String {
    format!("{}\n{}\n{key_id}", a.tenant_id, a.id)
}

/// The entity path without its last segment, the user's name (`Acme → Sales → `).
fn path_prefix<'a>(path: &'a str, name: &str) -> &'a str {
    path.strip_suffix(name).unwrap_or("")
}

fn too_large(why: &str) -> crate::CoreError {
    crate::CoreError::too_large(
        "personal",
        format!("personal fields cannot be sealed: {why}"),
    )
}

/// What a sealed record keeps in the clear outside its hashed body: the IP address and
/// location, for the search columns and the report rollups (which an erasure scrubs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Searchable {
    pub ip_address: Option<String>,
    pub location: Option<String>,
}

/// Seals `a`'s personal fields under `key` with `nonce` (random bits from the caller),
/// turning `a` into its stored form (what gets hashed and written); answers what stays
/// searchable in the clear.
pub fn seal(
    a: &mut Activity,
    key: &SubjectKey,
    nonce: &[u8; NONCE_LEN],
    personal_keys: &[String],
) -> Result<Searchable, crate::CoreError> {
    let metadata_keys = personal_metadata_keys(a, personal_keys);
    let u = &a.user_context.user;
    let fields = Fields {
        name: u.name.clone(),
        entity_path: a.user_context.entity_path.clone(),
        email: u.email.clone(),
        title: u.title.clone(),
        ip_address: a.compliance.ip_address.clone(),
        user_agent: a.compliance.user_agent.clone(),
        location: a.compliance.location.clone(),
        metadata: metadata_keys
            .iter()
            .filter_map(|k| a.metadata.get(k).map(|v| (k.clone(), v.clone())))
            .collect(),
    };
    let plaintext = serde_json::to_vec(&fields).map_err(|e| too_large(&e.to_string()))?;
    let aad = associated_data(a, &key.id);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: &plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| too_large("the cipher refused the plaintext"))?;
    let searchable = Searchable {
        ip_address: fields.ip_address,
        location: fields.location,
    };
    blank(a, &metadata_keys);
    a.personal = Some(Personal {
        key_id: key.id.clone(),
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(ciphertext),
        metadata_keys,
        state: None,
    });
    Ok(searchable)
}

/// Blanks the personal fields of any form of a record: what remains is its stored form
/// (the entity path keeps everything but the name).
fn blank(a: &mut Activity, metadata_keys: &[String]) {
    let prefix = path_prefix(&a.user_context.entity_path, &a.user_context.user.name).to_owned();
    a.user_context.entity_path = prefix;
    let u = &mut a.user_context.user;
    u.name = String::new();
    u.email = None;
    u.title = None;
    let c = &mut a.compliance;
    c.ip_address = None;
    c.user_agent = None;
    c.location = None;
    for k in metadata_keys {
        a.metadata.remove(k);
    }
    if let Some(p) = &mut a.personal {
        p.state = None;
    }
}

/// The form of `a` that is hashed and stored: unchanged for a record without sealed
/// fields; otherwise the personal fields blanked (from the open, erased or stored form
/// alike).
pub fn stored_form(a: &Activity) -> Cow<'_, Activity> {
    let Some(p) = &a.personal else {
        return Cow::Borrowed(a);
    };
    if p.state.is_none() {
        return Cow::Borrowed(a);
    }
    let mut s = a.clone();
    blank(&mut s, &p.metadata_keys);
    Cow::Owned(s)
}

fn decrypt(a: &Activity, p: &Personal, key: &SubjectKey) -> Option<Fields> {
    if key.id != p.key_id {
        return None;
    }
    let nonce: [u8; NONCE_LEN] = STANDARD.decode(&p.nonce).ok()?.try_into().ok()?;
    let ciphertext = STANDARD.decode(&p.ciphertext).ok()?;
    let aad = associated_data(a, &key.id);
    let plaintext = key
        .cipher()
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    serde_json::from_slice(&plaintext).ok()
}

/// Turns a stored record into what a reader sees: the open form when `key` (the
/// subject key the record names, if it still exists) opens it, else the erased form.
/// A record without sealed fields, or already read, is left as it is.
pub fn open(a: &mut Activity, key: Option<&SubjectKey>) {
    let Some(p) = a.personal.clone() else {
        return;
    };
    if p.state.is_some() {
        return;
    }
    let prefix = a.user_context.entity_path.clone();
    match key.and_then(|k| decrypt(a, &p, k)) {
        Some(f) => {
            let u = &mut a.user_context.user;
            u.name = f.name;
            u.email = f.email;
            u.title = f.title;
            a.user_context.entity_path = f.entity_path;
            a.compliance.ip_address = f.ip_address;
            a.compliance.user_agent = f.user_agent;
            a.compliance.location = f.location;
            a.metadata.extend(f.metadata);
            if let Some(p) = &mut a.personal {
                p.state = Some(PersonalState::Open);
            }
        }
        None => erase(a, &p, prefix),
    }
}

fn erase(a: &mut Activity, p: &Personal, prefix: String) {
    a.user_context.user.name = ERASED.to_owned();
    a.user_context.entity_path = prefix + ERASED;
    for k in &p.metadata_keys {
        a.metadata
            .insert(k.clone(), Value::String(ERASED.to_owned()));
    }
    if let Some(p) = &mut a.personal {
        p.state = Some(PersonalState::Erased);
    }
}

/// Decrypts nothing: the erased form of a stored record (what every reader sees once
/// the subject's key is destroyed).
pub fn erased(a: &mut Activity) {
    open(a, None);
}

/// The operation an erasure is recorded under in the chain.
pub const ERASE_OPERATION: &str = "subject.erase";

/// What an erasure record says: who asked, when, which subject, how many keys went.
#[derive(Debug, Clone)]
pub struct Erasure<'a> {
    pub tenant_id: &'a str,
    /// A fresh id from the runtime.
    pub id: String,
    pub subject: &'a str,
    /// The principal that asked (`key:{id}` for an API key).
    pub requested_by: &'a str,
    pub keys_destroyed: u64,
    pub at: crate::Timestamp,
}

impl Erasure<'_> {
    /// The record of the erasure, appended to the chain like any activity: about the
    /// subject (`userId`, entity `subject/{id}`), holding nothing personal, with the
    /// requester and the count of destroyed keys in its metadata.
    pub fn record(&self) -> Activity {
        use crate::activity::{
            Compliance, Hierarchy, OperationContext, Outcome, PermissionContext, UserContext,
            UserProfile,
        };
        let mut metadata = Map::new();
        metadata.insert("erasedSubject".into(), Value::from(self.subject));
        metadata.insert("requestedBy".into(), Value::from(self.requested_by));
        metadata.insert("keysDestroyed".into(), Value::from(self.keys_destroyed));
        Activity {
            id: self.id.clone(),
            tenant_id: self.tenant_id.to_owned(),
            seq: 0,
            occurred_at: self.at,
            user_id: self.subject.to_owned(),
            operation: ERASE_OPERATION.to_owned(),
            outcome: Outcome::Success,
            entity_type: Some("subject".to_owned()),
            entity_id: Some(self.subject.to_owned()),
            credits: crate::Credits::ZERO,
            session_id: None,
            user_context: UserContext {
                user: UserProfile {
                    id: self.subject.to_owned(),
                    name: String::new(),
                    email: None,
                    title: None,
                    department_id: String::new(),
                    organization_id: String::new(),
                },
                department: String::new(),
                hierarchy: Hierarchy {
                    organization_id: String::new(),
                    organization_name: String::new(),
                    department_id: String::new(),
                    department_name: String::new(),
                    // Outside every department's subtree; counted in tenant reports.
                    department_path: "/".to_owned(),
                    parent_entity_id: String::new(),
                },
                entity_path: String::new(),
            },
            permission: PermissionContext {
                granted: Vec::new(),
                roles: Vec::new(),
                operation_context: OperationContext {
                    required: ERASE_OPERATION.to_owned(),
                    has: true,
                    source: "api-key".to_owned(),
                    reason: crate::permission::Reason::Granted,
                },
            },
            metadata,
            compliance: Compliance::default(),
            directory_version: None,
            personal: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{compute_hash, seal as chain_seal};

    fn key(b: u8) -> SubjectKey {
        SubjectKey::from_random(&[b; NEW_KEY_RANDOM_LEN])
    }

    fn sealed_record() -> Activity {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/conformance/fixtures/acme.json"
        ))
        .expect("the fixture is JSON");
        let snap = crate::engine::TenantSnapshot::from_json(
            "t",
            1,
            &fixture["policy"].to_string(),
            &fixture["directory"].to_string(),
        )
        .expect("the fixture compiles");
        let now = crate::Timestamp::from_millis(1_700_000_000_000).expect("in range");
        let mut a = snap
            .enrich_json(
                r#"{"id":"a-1","userId":"user-123","operation":"crm.leads.read"}"#,
                "unused",
                now,
                None,
            )
            .expect("valid input");
        a.compliance.ip_address = Some("203.0.113.9".into());
        a.compliance.user_agent = Some("Mozilla/5.0".into());
        a.compliance.location = Some("Berlin".into());
        a.metadata
            .insert("Phone".into(), Value::String("+49 30 1234".into()));
        a.metadata
            .insert("stage".into(), Value::String("won".into()));
        let clear = a.clone();
        let searchable = seal(&mut a, &key(7), &[1; NONCE_LEN], &["phone".into()]).expect("seals");
        assert_eq!(searchable.ip_address.as_deref(), Some("203.0.113.9"));
        assert_eq!(searchable.location.as_deref(), Some("Berlin"));
        chain_seal(&mut a, 1, crate::chain::GENESIS);
        // The record a reader gets with the key: the original, with the sealed block.
        let mut open_form = a.clone();
        open(&mut open_form, Some(&key(7)));
        let mut expected = clear;
        expected.seq = a.seq;
        expected.prev_hash = a.prev_hash.clone();
        expected.hash = a.hash.clone();
        expected.personal = open_form.personal.clone();
        assert_eq!(open_form, expected);
        open_form
    }

    fn stored(a: &Activity) -> Activity {
        stored_form(a).into_owned()
    }

    #[test]
    fn the_stored_form_holds_no_personal_value() {
        let a = sealed_record();
        let text = serde_json::to_string(&stored(&a)).expect("serializes");
        for secret in [
            a.user_context.user.name.as_str(),
            "203.0.113.9",
            "Mozilla/5.0",
            "Berlin",
            "+49 30 1234",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("\"stage\":\"won\""));
        assert!(text.contains("\"metadataKeys\":[\"Phone\"]"));
    }

    #[test]
    fn open_erased_and_stored_forms_hash_alike() {
        let open_form = sealed_record();
        let mut reread = stored(&open_form);
        assert_eq!(compute_hash(&reread), open_form.hash);
        open(&mut reread, Some(&key(7)));
        assert_eq!(
            reread, open_form,
            "the key opens the stored form to the original"
        );
        let mut gone = stored(&open_form);
        erased(&mut gone);
        assert_eq!(gone.user_context.user.name, ERASED);
        assert!(gone.user_context.entity_path.ends_with(ERASED));
        assert_eq!(gone.compliance.ip_address, None);
        assert_eq!(gone.metadata["Phone"], Value::String(ERASED.into()));
        assert_eq!(gone.metadata["stage"], Value::String("won".into()));
        assert_eq!(
            gone.personal.as_ref().and_then(|p| p.state),
            Some(PersonalState::Erased)
        );
        assert_eq!(compute_hash(&gone), open_form.hash);
    }

    #[test]
    fn another_key_or_an_altered_ciphertext_reads_as_erased() {
        let a = sealed_record();
        let mut other = stored(&a);
        open(&mut other, Some(&key(8)));
        assert_eq!(other.user_context.user.name, ERASED);
        let mut moved = stored(&a);
        moved.id = "another-record".into();
        open(&mut moved, Some(&key(7)));
        assert_eq!(
            moved.user_context.user.name, ERASED,
            "the ciphertext is bound to its record"
        );
    }

    #[test]
    fn changing_the_sealed_block_breaks_the_hash() {
        let a = sealed_record();
        let mut s = stored(&a);
        if let Some(p) = &mut s.personal {
            p.ciphertext = STANDARD.encode([0u8; 40]);
        }
        assert_ne!(compute_hash(&s), a.hash);
    }

    #[test]
    fn the_erasure_record_holds_nothing_personal() {
        let at = crate::Timestamp::from_millis(1_700_000_000_000).expect("in range");
        let r = Erasure {
            tenant_id: "t",
            id: "e-1".into(),
            subject: "user-123",
            requested_by: "key:k1",
            keys_destroyed: 2,
            at,
        }
        .record();
        assert!(!holds_personal(&r, &[]));
        assert_eq!(r.operation, ERASE_OPERATION);
        assert_eq!(r.metadata["keysDestroyed"], Value::from(2));
        assert_eq!(stored(&r), r);
    }

    #[test]
    fn keys_round_trip_through_storage_and_never_print() {
        let k = key(3);
        let back = SubjectKey::from_stored(&k.id, &k.material_text()).expect("decodes");
        assert_eq!(back, k);
        assert!(!format!("{k:?}").contains(&k.material_text()));
        assert!(SubjectKey::from_stored("x", "not base64!").is_none());
    }
}
