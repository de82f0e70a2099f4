-- Keys that expire, idempotent requests, CRM leads, retention anchors and per-sink
-- delivery positions (the fan-out reads the activity log itself; see ARCHITECTURE.md).

ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);

-- The first answer to a request with an `Idempotency-Key` header, replayed to retries.
-- `request_hash` covers method, path and body: the same key with another request is 409.
CREATE TABLE idempotency (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);

-- Leads of the CRM operations endpoints (the engine's own small CRM).
CREATE TABLE leads (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    data       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX leads_by_update ON leads (tenant_id, updated_at, id);

-- Retention deletes the oldest activities in chain order; the anchor is the last
-- deleted record, from which the remaining chain still verifies.
ALTER TABLE tenants ADD COLUMN anchor_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN anchor_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';

-- Per-tenant secret (hex) that signs viewer tokens and derives idempotent key texts;
-- rotating it revokes every viewer token of the tenant at once.
ALTER TABLE tenants ADD COLUMN secret TEXT NOT NULL DEFAULT '';

-- Fan-out: how far each sink has delivered each tenant's log (activities by seq).
CREATE TABLE sink_cursors (
    tenant_id     TEXT NOT NULL,
    sink          TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, sink)
);

-- Replaced by sink_cursors: the activities table is the ordered log the sinks read.
DROP TABLE outbox;
