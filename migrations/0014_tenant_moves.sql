-- A tenant being moved between shards (`cargo xtask move-tenant`): while `moving` is 1
-- the edge refuses its requests and holds its queued packets (503, retried), so
-- nothing is written to either copy until the move switches `shard` and clears it.
ALTER TABLE tenant_shards ADD COLUMN moving INTEGER NOT NULL DEFAULT 0;
