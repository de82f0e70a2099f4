-- How large this database was when a write last measured it (crm_store::database_size):
-- the edge refuses new ingest before D1's per-database cap. One row.
CREATE TABLE database_size (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    size_bytes  INTEGER NOT NULL,
    measured_at INTEGER NOT NULL
);
