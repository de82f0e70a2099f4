-- Credit alerts (issue 27): every crossing of a tenant's alert rules, written in the
-- transaction whose balance change crossed it, numbered per tenant.
CREATE TABLE credit_alerts (
    tenant_id     TEXT NOT NULL,
    entry         BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    rule_id       TEXT NOT NULL,
    state         TEXT NOT NULL,
    grant_id      TEXT,
    balance_units BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, entry)
);

-- Days whose rollups were compacted (crm_store::compaction): each UTC day is compacted
-- once after it closes.
CREATE TABLE rollup_compactions (
    tenant_id TEXT NOT NULL,
    day       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);
