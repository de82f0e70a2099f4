-- An entity's history ("who touched deal-4711?"), newest first:
-- GET /v1/entities/{type}/{id}/activities and the entityType/entityId listing filter.
CREATE INDEX activities_by_entity ON activities (tenant_id, entity_type, entity_id, occurred_at, seq);
