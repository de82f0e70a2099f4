-- Viewer tokens revoked one by one (DELETE /v1/viewer-tokens/{id}); kept until the
-- token would have expired anyway, then pruned by retention.
CREATE TABLE viewer_token_revocations (
    tenant_id TEXT NOT NULL,
    token_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, token_id)
);
