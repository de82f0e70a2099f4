-- Credit grants (issue 27): the balance is the sum of the remainders of the grants in
-- effect. Open grants (pending, active) are read by every transaction that changes
-- the balance; closed ones (exhausted, expired, voided) stay for the grants listing.
CREATE TABLE credit_grants (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    amount_units    INTEGER NOT NULL CHECK (amount_units > 0),
    remaining_units INTEGER NOT NULL CHECK (remaining_units >= 0),
    effective_at    INTEGER NOT NULL,
    expires_at      INTEGER,
    priority        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL,
    closed_at       INTEGER,
    reason          TEXT NOT NULL,
    external_id     TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX credit_grants_by_status ON credit_grants (tenant_id, status);
CREATE INDEX credit_grants_by_age ON credit_grants (tenant_id, created_at, id);

-- The balance held before grants existed becomes one grant in effect since the
-- tenant was created, so the balance stays the active grants' sum.
INSERT INTO credit_grants (tenant_id, id, amount_units, remaining_units, effective_at,
    expires_at, priority, created_at, status, closed_at, reason, external_id)
SELECT id, 'balance-before-grants', balance_units, balance_units, created_at,
    NULL, 50, created_at, 'active', NULL, 'balance before grants', NULL
FROM tenants WHERE balance_units > 0;
