-- The schema of migrations/0001_init.sql for PostgreSQL: the same tables, columns and
-- keys; BIGINT where SQLite says INTEGER. Every table and index leads with the tenant
-- id, so the schema can be distributed by tenant (e.g. Citus) later. Department paths
-- compare byte-wise (COLLATE "C") so the subtree range [path, path-with-'0') selects
-- exactly what it selects in SQLite.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1,
    policy        TEXT NOT NULL,
    directory     TEXT NOT NULL,
    balance_units BIGINT NOT NULL DEFAULT 0 CHECK (balance_units >= 0),
    head_seq      BIGINT NOT NULL DEFAULT 0,
    head_hash     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tenant_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    version    BIGINT NOT NULL,
    policy     TEXT NOT NULL,
    directory  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    key_hash   TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    label      TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE activities (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    user_id         TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    department_path TEXT COLLATE "C" NOT NULL,
    operation       TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    entity_type     TEXT,
    entity_id       TEXT,
    credits_units   BIGINT NOT NULL,
    session_id      TEXT,
    ip_address      TEXT,
    location        TEXT,
    auth_method     TEXT,
    input_hash      TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX activities_by_seq ON activities (tenant_id, seq);
CREATE INDEX activities_by_time ON activities (tenant_id, occurred_at, seq);
CREATE INDEX activities_by_user ON activities (tenant_id, user_id, occurred_at, seq);
CREATE INDEX activities_by_department ON activities (tenant_id, department_path, occurred_at, seq);
CREATE INDEX activities_by_operation ON activities (tenant_id, operation, occurred_at, seq);

CREATE TABLE rollups_hourly (
    tenant_id       TEXT NOT NULL,
    hour_start      BIGINT NOT NULL,
    user_id         TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    department_path TEXT COLLATE "C" NOT NULL,
    operation       TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    location        TEXT NOT NULL,
    auth_method     TEXT NOT NULL,
    ip_address      TEXT NOT NULL,
    count           BIGINT NOT NULL,
    credits_units   BIGINT NOT NULL,
    latest          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour_start, user_id, department_id, department_path, operation,
                 outcome, entity_type, location, auth_method, ip_address)
);
CREATE INDEX rollups_by_user ON rollups_hourly (tenant_id, user_id, hour_start);
CREATE INDEX rollups_by_department ON rollups_hourly (tenant_id, department_path, hour_start);

CREATE TABLE credit_ledger (
    tenant_id     TEXT NOT NULL,
    entry         BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    delta_units   BIGINT NOT NULL,
    balance_units BIGINT NOT NULL CHECK (balance_units >= 0),
    kind          TEXT NOT NULL,
    detail        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entry)
);

CREATE TABLE outbox (
    tenant_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    activity_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, seq)
);
