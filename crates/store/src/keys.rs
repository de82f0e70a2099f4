//! API keys: stored as SHA-256 hashes of the key text, which is shown once. The tenant
//! and the scopes of a request come from its key only.

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement, Value};
use sha2::{Digest, Sha256};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyScope {
    /// Everything, including directory, prices, credit grants, keys and viewer tokens.
    Admin,
    /// Record activities and check permissions.
    Ingest,
    /// Queries, reports, balance.
    Read,
}

impl KeyScope {
    pub const ALL: [KeyScope; 3] = [KeyScope::Admin, KeyScope::Ingest, KeyScope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Admin => "admin",
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<KeyScope> {
        KeyScope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Stored form: comma-separated names.
    pub fn join(scopes: &[KeyScope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn split(text: &str) -> Vec<KeyScope> {
        text.split(',').filter_map(KeyScope::parse).collect()
    }
}

/// Prefix that makes keys recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "crm_";
/// Random bytes per key: 192 bits, beyond guessing.
pub const KEY_RANDOM_BYTES: usize = 24;

/// Whether `text` has the form of a key this engine issues (`crm_` and 48 lowercase hex
/// digits): anything else is refused before it costs a lookup.
pub fn has_key_form(text: &str) -> bool {
    text.strip_prefix(KEY_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * KEY_RANDOM_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// How a key is stored and looked up: its SHA-256, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key text made of `random` (the caller's randomness, [`KEY_RANDOM_BYTES`] of it),
/// and its id (derived from its hash, so the id reveals nothing): `(id, key)`.
pub fn from_random(random: &[u8; KEY_RANDOM_BYTES]) -> (String, String) {
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    let id = format!("key_{}", &hash_key(&key)[..16]);
    (id, key)
}

/// A live key as a request sees it, with the tenant's current directory version (one
/// query answers both, so revocation and directory changes are seen on the next request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub scopes: Vec<KeyScope>,
    pub tenant_version: u64,
    /// When the key stops working (ms), if ever.
    pub expires_at: Option<i64>,
}

impl KeyRecord {
    /// Whether the key still works at `now` (the lookup checked it when it was read).
    pub fn live_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// Admin keys may do everything.
    pub fn allows(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&KeyScope::Admin)
    }
}

/// The live (not revoked, not expired at `now`) key with this hash.
pub fn lookup(d: Dialect, key_hash: &str, now: i64) -> Statement {
    d.stmt(
        "SELECT k.id, k.tenant_id, k.scopes, t.version, k.expires_at FROM api_keys k
         JOIN tenants t ON t.id = k.tenant_id
         WHERE k.key_hash = ?1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ?2)",
        vec![key_hash.into(), now.into()],
    )
}

pub fn decode(row: &Row) -> StoreResult<KeyRecord> {
    Ok(KeyRecord {
        id: row.string(0)?,
        tenant_id: row.string(1)?,
        scopes: KeyScope::split(row.text(2)?),
        tenant_version: row.uint(3)?,
        expires_at: row.opt_int(4)?,
    })
}

/// A key to store: its id, hash and what it may do. The key text is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [KeyScope],
    pub label: Option<&'a str>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

pub fn insert(d: Dialect, k: &NewKey<'_>) -> StoreResult<Statement> {
    if k.scopes.is_empty() {
        return Err(StoreError::Core(crm_core::CoreError::invalid(
            "scopes",
            "a key needs at least one scope",
        )));
    }
    Ok(d.stmt(
        "INSERT INTO api_keys (id, tenant_id, key_hash, scopes, label, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vec![
            k.id.into(),
            k.tenant_id.into(),
            k.key_hash.into(),
            KeyScope::join(k.scopes).into(),
            k.label.into(),
            k.created_at.into(),
            k.expires_at.into(),
        ],
    ))
}

/// A key as an administrator lists it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: String,
    pub scopes: Vec<&'static str>,
    pub label: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub fn list(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        "SELECT id, scopes, label, created_at, expires_at, revoked_at FROM api_keys
         WHERE tenant_id = ?1 ORDER BY created_at, id",
        vec![tenant_id.into()],
    )
}

pub fn decode_info(row: &Row) -> StoreResult<KeyInfo> {
    Ok(KeyInfo {
        id: row.string(0)?,
        scopes: KeyScope::split(row.text(1)?)
            .into_iter()
            .map(KeyScope::as_str)
            .collect(),
        label: row.opt_string(2)?,
        created_at: row.int(3)?,
        expires_at: row.opt_int(4)?,
        revoked_at: row.opt_int(5)?,
    })
}

/// Revokes a key of this tenant (a key of another tenant is not found: 0 rows).
/// Revoking twice keeps the first time.
pub fn revoke(d: Dialect, tenant_id: &str, key_id: &str, now: i64) -> Statement {
    d.stmt(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE tenant_id = ?1 AND id = ?2",
        vec![tenant_id.into(), key_id.into(), Value::from(now)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_have_the_key_form_and_others_do_not() {
        let (_, key) = from_random(&[0xa5; KEY_RANDOM_BYTES]);
        assert!(has_key_form(&key), "{key}");
        assert!(!has_key_form(&key[..key.len() - 1]));
        assert!(!has_key_form(&key.to_uppercase()));
        assert!(!has_key_form("crm_"));
    }

    #[test]
    fn scopes_round_trip_and_unknown_names_are_dropped() {
        let text = KeyScope::join(&[KeyScope::Ingest, KeyScope::Read]);
        assert_eq!(text, "ingest,read");
        assert_eq!(
            KeyScope::split("ingest,bogus,admin"),
            vec![KeyScope::Ingest, KeyScope::Admin]
        );
    }

    #[test]
    fn a_key_without_scopes_is_refused() {
        let k = NewKey {
            id: "k",
            tenant_id: "t",
            key_hash: "h",
            scopes: &[],
            label: None,
            created_at: 0,
            expires_at: None,
        };
        assert!(insert(Dialect::Sqlite, &k).is_err());
    }
}
