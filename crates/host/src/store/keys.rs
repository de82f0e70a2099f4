//! API keys: stored as SHA-256 hashes; the tenant and scopes come from the key only.

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::{HostError, HostResult};

/// Prefix that makes keys recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "crm_";
/// Random bytes per key: 192 bits, beyond guessing.
const KEY_RANDOM_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scope {
    /// Everything, including directory, prices and credit grants.
    Admin,
    /// Record activities and check permissions.
    Ingest,
    /// Queries, reports, balance.
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }

    fn parse(text: &str) -> Option<Scope> {
        [Scope::Admin, Scope::Ingest, Scope::Read]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub scopes: Vec<Scope>,
}

impl ApiKeyRecord {
    /// Admin keys may do everything.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a key and returns its id and the key text (shown once, never stored).
pub fn create(
    conn: &Connection,
    tenant_id: &str,
    scopes: &[Scope],
    label: Option<&str>,
    now: i64,
) -> HostResult<(String, String)> {
    if scopes.is_empty() {
        return Err(HostError::BadRequest(
            "a key needs at least one scope".to_owned(),
        ));
    }
    let mut random = [0u8; KEY_RANDOM_BYTES];
    rand::rng().fill_bytes(&mut random);
    let key = format!("{KEY_PREFIX}{}", hex::encode(random));
    let id = format!("key_{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16]);
    let scopes_text = scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, key_hash, scopes, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, tenant_id, hash_key(&key), scopes_text, label, now],
    )?;
    Ok((id, key))
}

pub fn lookup(conn: &Connection, key: &str) -> HostResult<Option<ApiKeyRecord>> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT id, tenant_id, scopes FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
            [hash_key(key)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.map(|(id, tenant_id, scopes)| ApiKeyRecord {
        id,
        tenant_id,
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
    }))
}
