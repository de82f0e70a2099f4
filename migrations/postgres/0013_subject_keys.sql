-- Crypto-shredding (crm_core::personal): each subject's data keys. A record names the
-- key that seals its personal fields (`activities.key_id`); erasing a subject deletes
-- its keys, after which every record of it reads as erased while its hash still holds.
-- A subject may have several keys: writers that create one at once each keep theirs.
CREATE TABLE subject_keys (
    tenant_id  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    material   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);
CREATE INDEX subject_keys_by_subject ON subject_keys (tenant_id, subject_id);

ALTER TABLE activities ADD COLUMN key_id TEXT;

-- How far an erasure at the edge has moved the rollup values of the subject's archived
-- records (crm_store::erasure::archived): each segment's moves and this row change in
-- one transaction; the row goes with the keys.
CREATE TABLE erasure_progress (
    tenant_id        TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    archived_through BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subject_id)
);
