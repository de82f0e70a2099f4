-- Archived segments of a tenant's chain (crm_store::archive): runs of consecutive
-- records moved out of `activities` into objects (R2 at the edge), with the chain
-- anchors that export and the audit check them against.
CREATE TABLE archives (
    tenant_id   TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    day         TEXT NOT NULL,
    records     BIGINT NOT NULL,
    -- The latest occurredAt among its records: retention drops a segment whole once
    -- this is past the tenant's retention.
    max_occurred_at BIGINT NOT NULL,
    prev_hash   TEXT NOT NULL,
    last_hash   TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    archived_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, first_seq)
);
