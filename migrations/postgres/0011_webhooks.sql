-- Webhook endpoints a tenant registers (issue 27) and the deliveries made to them: one
-- row per (endpoint, alert event), inserted by the fan-in that reads `credit_alerts`
-- after its `sink_cursors` entry `webhooks`, updated by each attempt.
CREATE TABLE webhook_endpoints (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    url         TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    removed_at  BIGINT,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id       TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT,
    PRIMARY KEY (tenant_id, endpoint_id, event_seq)
);

-- What the dispatcher asks each round: pending deliveries by when they are due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
