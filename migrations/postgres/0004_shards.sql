-- The edge's shard directory, read in its control database (the `DB` binding; every
-- shard gets the same schema, these two tables stay empty elsewhere). A tenant without
-- a row in tenant_shards lives on shard 0, so a single-database deployment needs none.
CREATE TABLE tenant_shards (
    tenant_id TEXT PRIMARY KEY,
    shard     INTEGER NOT NULL CHECK (shard >= 0)
);

-- Which tenant an API key belongs to, by the key's hash: a key is resolved here before
-- its tenant's shard (which holds the key itself, its scopes and revocation) is known.
CREATE TABLE key_directory (
    key_hash  TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL
);

INSERT INTO key_directory (key_hash, tenant_id) SELECT key_hash, tenant_id FROM api_keys;
