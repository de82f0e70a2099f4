-- Ids accepted for a queue but not yet written (the edge's ingest): a second request
-- with the same id and other content is refused before its 202, and one with the same
-- content replays. The consumer removes rows once their activities are written.
CREATE TABLE queued_ids (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    queued_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Messages the edge's consumer could not write (after the queue's retries, or refused
-- for good), kept per tenant with the reason until an admin re-drives or drops them.
CREATE TABLE dead_letters (
    tenant_id TEXT NOT NULL,
    id        TEXT NOT NULL,
    reason    TEXT NOT NULL,
    body      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
