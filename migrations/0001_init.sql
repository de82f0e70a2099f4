-- Schema shared by the host (SQLite) and the worker (D1). Portable SQLite only:
-- no INSERT OR REPLACE (it deletes and re-inserts, losing data); upserts say what they update.
-- Money is INTEGER units of 1/10,000 credit; times are INTEGER Unix milliseconds (UTC).

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- Bumped whenever directory or policy changes; engines cache snapshots by it.
    version       INTEGER NOT NULL DEFAULT 1,
    policy        TEXT NOT NULL,
    directory     TEXT NOT NULL,
    balance_units INTEGER NOT NULL DEFAULT 0 CHECK (balance_units >= 0),
    -- Hash-chain head: last sequence number and hash appended for this tenant.
    head_seq      INTEGER NOT NULL DEFAULT 0,
    head_hash     TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Every directory/policy version ever active, for audit and rollback.
CREATE TABLE tenant_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    version    INTEGER NOT NULL,
    policy     TEXT NOT NULL,
    directory  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- API keys, stored as SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    key_hash   TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE activities (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    -- Materialized path `/top/child/leaf/` at the time of the activity: subtree
    -- queries are an index range on it, never LIKE '%id%'.
    department_path TEXT NOT NULL,
    operation       TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    entity_type     TEXT,
    entity_id       TEXT,
    credits_units   INTEGER NOT NULL,
    session_id      TEXT,
    ip_address      TEXT,
    location        TEXT,
    auth_method     TEXT,
    -- SHA-256 of the client's input (canonical JSON): same id + same content is a
    -- replay, same id + different content is a conflict.
    input_hash      TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    -- The full activity record (camelCase JSON), exactly as hashed.
    body            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX activities_by_seq ON activities (tenant_id, seq);
CREATE INDEX activities_by_time ON activities (tenant_id, occurred_at, seq);
CREATE INDEX activities_by_user ON activities (tenant_id, user_id, occurred_at, seq);
CREATE INDEX activities_by_department ON activities (tenant_id, department_path, occurred_at, seq);
CREATE INDEX activities_by_operation ON activities (tenant_id, operation, occurred_at, seq);

-- Hourly rollups, one row per combination of every report dimension, so a report
-- from rollups equals the report from raw rows. '' stands for "absent" (key columns
-- must be NOT NULL for the upsert's conflict target to match).
CREATE TABLE rollups_hourly (
    tenant_id       TEXT NOT NULL,
    hour_start      INTEGER NOT NULL,
    user_id         TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    department_path TEXT NOT NULL,
    operation       TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    location        TEXT NOT NULL,
    auth_method     TEXT NOT NULL,
    ip_address      TEXT NOT NULL,
    count           INTEGER NOT NULL,
    credits_units   INTEGER NOT NULL,
    latest          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, hour_start, user_id, department_id, department_path, operation,
                 outcome, entity_type, location, auth_method, ip_address)
);
CREATE INDEX rollups_by_user ON rollups_hourly (tenant_id, user_id, hour_start);
CREATE INDEX rollups_by_department ON rollups_hourly (tenant_id, department_path, hour_start);

-- Credit ledger: every balance change, in order. The balance in `tenants` is the
-- running total; the ledger explains it.
CREATE TABLE credit_ledger (
    tenant_id     TEXT NOT NULL,
    entry         INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    delta_units   INTEGER NOT NULL,
    balance_units INTEGER NOT NULL CHECK (balance_units >= 0),
    kind          TEXT NOT NULL,
    detail        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entry)
);

-- Transactional outbox: one row per recorded activity, written in the same
-- transaction; the fan-out (Redis, upstream sink) drains it.
CREATE TABLE outbox (
    tenant_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    activity_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, seq)
);
