//! The edge's shard directory, kept in its control database: which shard (a D1
//! database and its queue) holds a tenant, and which tenant an API key belongs to, so
//! a key can be resolved before its tenant's shard is known. A tenant without a row
//! lives on shard 0. crm-host has one database and does not read these tables.

use crate::dialect::Dialect;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Row, Statement};

/// The shard a tenant is placed on (no row: shard 0), and whether it is being moved.
pub fn shard_of(d: Dialect, tenant_id: &str) -> Statement {
    d.stmt(
        "SELECT shard, moving FROM tenant_shards WHERE tenant_id = ?1",
        vec![tenant_id.into()],
    )
}

/// Where a tenant is, as [`shard_of`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub shard: u32,
    /// A move is copying its rows: nothing of the tenant may be read or written.
    pub moving: bool,
}

impl Placement {
    /// A tenant without a row.
    pub const DEFAULT: Placement = Placement {
        shard: 0,
        moving: false,
    };

    pub fn decode(row: &Row) -> StoreResult<Placement> {
        Ok(Placement {
            shard: decode_shard(row)?,
            moving: row.int(1)? != 0,
        })
    }
}

/// Places (or moves) a tenant. Moving one also means copying its rows to the new
/// shard and draining its old queue first; see ARCHITECTURE.md, "Tenant shards".
pub fn place(d: Dialect, tenant_id: &str, shard: u32) -> Statement {
    d.stmt(
        "INSERT INTO tenant_shards (tenant_id, shard) VALUES (?1, ?2)
         ON CONFLICT (tenant_id) DO UPDATE SET shard = excluded.shard",
        vec![tenant_id.into(), i64::from(shard).into()],
    )
}

pub fn decode_shard(row: &Row) -> StoreResult<u32> {
    u32::try_from(row.int(0)?)
        .map_err(|_| StoreError::decode("tenant_shards.shard is out of range"))
}

/// The tenant of an API key, by the key's hash.
pub fn key_tenant(d: Dialect, key_hash: &str) -> Statement {
    d.stmt(
        "SELECT tenant_id FROM key_directory WHERE key_hash = ?1",
        vec![key_hash.into()],
    )
}

/// Registers a new key's hash for its tenant (before the key row is written on the
/// tenant's shard, so a key that exists is always found).
pub fn register_key(d: Dialect, key_hash: &str, tenant_id: &str) -> Statement {
    d.stmt(
        "INSERT INTO key_directory (key_hash, tenant_id) VALUES (?1, ?2)
         ON CONFLICT (key_hash) DO NOTHING",
        vec![key_hash.into(), tenant_id.into()],
    )
}
