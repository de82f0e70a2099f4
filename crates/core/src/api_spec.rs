//! The HTTP API's description, once for every runtime: each endpoint with its method,
//! path, purpose, the credential it needs, its request body and its answers. The host
//! builds its router from this table (an endpoint cannot exist undocumented), the
//! worker serves the same document, and [`document`] renders it as OpenAPI 3.1
//! (`GET /v1/openapi.json`). Schemas are JSON Schema 2020-12, as OpenAPI 3.1 uses.

use serde_json::{Map, Value, json};

/// What credential an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, metrics scrape, the document itself).
    Public,
    /// An API key with this scope (`admin` implies all), or — for `read` — a viewer token.
    Scope(&'static str),
}

/// One documented endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// Path template with `{name}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Component schema of the JSON request body, if any.
    pub body: Option<&'static str>,
    /// Query parameters accepted (all optional strings unless the summary says).
    pub query: &'static [&'static str],
    /// (status, component schema or "" for no JSON body), the success answers.
    pub ok: &'static [(u16, &'static str)],
    /// Whether the endpoint honours `Idempotency-Key`.
    pub idempotent: bool,
}

/// Query parameters every activity listing accepts.
pub const LIST_QUERY: &[&str] = &[
    "userId",
    "departmentId",
    "operation",
    "outcome",
    "since",
    "from",
    "to",
    "limit",
    "cursor",
];
const REPORT_QUERY: &[&str] = &["since", "from", "to", "groupBy", "tz"];

const fn ep(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        access,
        body: None,
        query: &[],
        ok: &[(200, "Object")],
        idempotent: false,
    }
}

const READ: Access = Access::Scope("read");
const INGEST: Access = Access::Scope("ingest");
const ADMIN: Access = Access::Scope("admin");

/// Every endpoint of the API.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        ok: &[(200, "Health")],
        ..ep(
            "GET",
            "/healthz",
            "Liveness: the process answers.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "Ready")],
        ..ep(
            "GET",
            "/readyz",
            "Readiness: the database answers and the writer runs; fan-out detail.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "")],
        ..ep(
            "GET",
            "/metrics",
            "Prometheus metrics (process-wide, no tenant data).",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "Object")],
        ..ep("GET", "/v1/openapi.json", "This document.", Access::Public)
    },
    Endpoint {
        ok: &[(200, "Metrics")],
        ..ep(
            "GET",
            "/v1/metrics",
            "Requests, the real error rate, recorded and refused activities, pending fan-out.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Session")],
        ..ep(
            "GET",
            "/v1/session",
            "The caller and the users and departments it may read.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "DirectoryDocument")],
        ..ep(
            "GET",
            "/v1/directory",
            "The tenant's directory and its version.",
            READ,
        )
    },
    Endpoint {
        body: Some("Directory"),
        ok: &[(200, "DirectorySummary")],
        ..ep(
            "PUT",
            "/v1/directory",
            "Replace the directory (validated before anything changes).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("DirectoryPatch"),
        ok: &[(200, "DirectorySummary")],
        ..ep(
            "PATCH",
            "/v1/directory",
            "Remove, then upsert, directory entries.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("CheckRequest"),
        ok: &[(200, "CheckAnswer")],
        ..ep(
            "POST",
            "/v1/permissions/check",
            "Permission decision(s) with their source: one, or `{checks: [...]}`.",
            INGEST,
        )
    },
    Endpoint {
        ok: &[(200, "PolicyDocument")],
        ..ep(
            "GET",
            "/v1/policy",
            "The tenant policy: timezone, prices, redacted keys, retention days.",
            READ,
        )
    },
    Endpoint {
        body: Some("Policy"),
        ok: &[(200, "PolicyDocument")],
        ..ep(
            "PUT",
            "/v1/policy",
            "Replace the tenant policy (validated first).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Prices")],
        ..ep("GET", "/v1/credits/prices", "The price table.", READ)
    },
    Endpoint {
        body: Some("Prices"),
        ok: &[(200, "Prices")],
        ..ep(
            "PUT",
            "/v1/credits/prices",
            "Replace the price table.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Balance")],
        ..ep("GET", "/v1/credits/balance", "The credit balance.", READ)
    },
    Endpoint {
        body: Some("Grant"),
        ok: &[(200, "Balance")],
        idempotent: true,
        ..ep(
            "POST",
            "/v1/credits/grants",
            "Add credits (with a ledger entry).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("ActivityInput"),
        ok: &[
            (201, "IngestAnswer"),
            (200, "IngestAnswer"),
            (202, "QueuedAnswer"),
        ],
        query: &["sync"],
        idempotent: true,
        ..ep(
            "POST",
            "/v1/activities",
            "Record one activity or a batch of at most 1000; idempotent by id. crm-host answers after commit (201/200); the edge queues (202, ids fixed and returned) unless `sync=true`.",
            INGEST,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, "Page")],
        ..ep(
            "GET",
            "/v1/activities",
            "The tenant's activities, newest first, filtered, with a cursor.",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, "Page")],
        ..ep(
            "GET",
            "/v1/users/{id}/activities",
            "One user's activities.",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, "Page")],
        ..ep(
            "GET",
            "/v1/departments/{id}/activities",
            "A department subtree's activities.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Report")],
        ..ep("GET", "/v1/reports", "Report over the whole tenant.", READ)
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Report")],
        ..ep(
            "GET",
            "/v1/reports/users/{id}",
            "Report over one user.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Report")],
        ..ep(
            "GET",
            "/v1/reports/departments/{id}",
            "Report over a department subtree.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Dashboard")],
        ..ep(
            "GET",
            "/v1/dashboards/users/{id}",
            "A user's context, report, recent activities and their summary.",
            READ,
        )
    },
    Endpoint {
        body: Some("OperationInput"),
        ok: &[(201, "OperationAnswer"), (200, "OperationAnswer")],
        idempotent: true,
        ..ep(
            "POST",
            "/v1/operations/{operation}",
            "Check, price, charge and record an operation of any CRM (403 denied, 402 insufficient credits, both recorded).",
            INGEST,
        )
    },
    Endpoint {
        body: Some("LeadCreate"),
        ok: &[(201, "OperationAnswer"), (200, "OperationAnswer")],
        idempotent: true,
        ..ep(
            "POST",
            "/v1/leads",
            "Create a lead: check, charge, store, record in one transaction.",
            INGEST,
        )
    },
    Endpoint {
        query: &["userId", "sessionId", "limit", "cursor"],
        ok: &[(200, "OperationAnswer")],
        ..ep(
            "GET",
            "/v1/leads",
            "List leads (recorded as crm.leads.read by `userId`).",
            INGEST,
        )
    },
    Endpoint {
        query: &["userId", "sessionId"],
        ok: &[(200, "OperationAnswer")],
        ..ep(
            "GET",
            "/v1/leads/{id}",
            "Read a lead (recorded as crm.leads.read by `userId`).",
            INGEST,
        )
    },
    Endpoint {
        body: Some("LeadUpdate"),
        ok: &[(200, "OperationAnswer")],
        idempotent: true,
        ..ep(
            "PATCH",
            "/v1/leads/{id}",
            "Change a lead (optimistic `expectedVersion`).",
            INGEST,
        )
    },
    Endpoint {
        query: &[
            "format",
            "userId",
            "departmentId",
            "operation",
            "outcome",
            "since",
            "from",
            "to",
            "afterSeq",
        ],
        ok: &[(200, "")],
        ..ep(
            "GET",
            "/v1/export",
            "Records in chain order after `afterSeq`: NDJSON (as hashed) or CSV. crm-host streams them all; the edge answers pages (header `x-next-after-seq`).",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "Verification")],
        ..ep(
            "GET",
            "/v1/audit/verify",
            "Recompute the hash chain; name the first bad sequence number.",
            READ,
        )
    },
    Endpoint {
        query: &["limit"],
        ..ep(
            "GET",
            "/v1/dead-letters",
            "The edge's dead letters (activities its consumer could not write), oldest first. crm-host writes before it answers and has none: always empty there (its fan-out spools instead).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(202, "Object")],
        ..ep(
            "POST",
            "/v1/dead-letters/{id}/redrive",
            "Re-queue one of the edge's dead letters (crm-host has none: 404).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("ArchiveRequest"),
        ok: &[(200, "ArchiveAnswer")],
        ..ep(
            "POST",
            "/v1/archive",
            "Move the tenant's oldest records (received more than `olderThanDays` days ago, at least 7) out of the edge's database into R2, a few segments per call (`more` says whether to call again). Export and audit verify read them from there; reports keep their rollups. crm-host keeps its history in its database (retention removes it): 501.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("ViewerTokenRequest"),
        ok: &[(200, "ViewerToken")],
        ..ep(
            "POST",
            "/v1/viewer-tokens",
            "Issue a short-lived read-only token for a dashboard (tenant, user or department).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "KeyList")],
        ..ep(
            "GET",
            "/v1/keys",
            "The tenant's API keys (never their secrets).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("KeyRequest"),
        ok: &[(201, "NewKey")],
        ..ep(
            "POST",
            "/v1/keys",
            "Create a key; its text is shown once.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, "")],
        ..ep(
            "DELETE",
            "/v1/keys/{id}",
            "Revoke a key; refused on the next request everywhere.",
            ADMIN,
        )
    },
];

fn obj(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

/// The component schemas answers and bodies refer to.
pub fn schemas() -> Map<String, Value> {
    let credits = json!({ "type": "string", "pattern": "^-?[0-9]+\\.[0-9]{4}$", "description": "Exact credits, 4 decimals" });
    let timestamp = json!({ "type": "string", "format": "date-time" });
    let stored = obj(
        &[
            "id",
            "seq",
            "outcome",
            "credits",
            "hash",
            "occurredAt",
            "duplicate",
        ],
        json!({ "id": { "type": "string" }, "seq": { "type": "integer", "minimum": 1 }, "outcome": r("Outcome"),
                "credits": r("Credits"), "hash": { "type": "string" }, "occurredAt": r("Timestamp"), "duplicate": { "type": "boolean" } }),
    );
    let activity = obj(
        &[
            "id",
            "tenantId",
            "seq",
            "occurredAt",
            "userId",
            "operation",
            "outcome",
            "credits",
            "userContext",
            "permission",
            "metadata",
            "compliance",
            "prevHash",
            "hash",
        ],
        json!({ "id": { "type": "string" }, "tenantId": { "type": "string" }, "seq": { "type": "integer" },
                "occurredAt": r("Timestamp"), "userId": { "type": "string" }, "operation": { "type": "string" },
                "outcome": r("Outcome"), "credits": r("Credits"), "entityType": nullable("string"), "entityId": nullable("string"),
                "sessionId": nullable("string"), "userContext": { "type": "object" }, "permission": { "type": "object" },
                "metadata": { "type": "object" }, "compliance": { "type": "object" }, "directoryVersion": { "type": "integer" },
                "prevHash": { "type": "string" }, "hash": { "type": "string" } }),
    );
    let decision = obj(
        &["userId", "permission", "allowed", "source", "reason"],
        json!({ "userId": { "type": "string" }, "permission": { "type": "string" }, "allowed": { "type": "boolean" },
                "source": { "type": "string" }, "reason": { "type": "string" } }),
    );
    let entries = [
        ("Object", json!({ "type": "object" })),
        ("Credits", credits),
        ("Timestamp", timestamp),
        (
            "Outcome",
            json!({ "enum": ["success", "denied", "failed", "insufficient_credits"] }),
        ),
        (
            "Error",
            obj(
                &["error"],
                json!({ "error": obj(&["code", "message", "details"], json!({
            "code": { "type": "string" }, "message": { "type": "string" }, "details": { "type": "object" } })) }),
            ),
        ),
        (
            "Health",
            obj(&["status"], json!({ "status": { "const": "ok" } })),
        ),
        (
            "Ready",
            obj(
                &["status", "engine"],
                json!({ "status": { "const": "ready" }, "engine": { "type": "string" }, "fanout": { "type": "object" } }),
            ),
        ),
        (
            "Metrics",
            obj(
                &["requests", "fanout"],
                json!({ "requests": obj(&["requests", "errorRate"], json!({ "requests": { "type": "integer" }, "errorRate": { "type": "number" } })), "fanout": { "type": "object" } }),
            ),
        ),
        (
            "Session",
            obj(
                &["tenantId", "caller", "tenantWide", "users", "departments"],
                json!({ "tenantId": { "type": "string" }, "caller": { "type": "object" },
            "tenantWide": { "type": "boolean" }, "users": { "type": "array" }, "departments": { "type": "array" } }),
            ),
        ),
        (
            "Directory",
            obj(
                &[],
                json!({ "organizations": { "type": "array" }, "departments": { "type": "array" }, "users": { "type": "array" }, "roles": { "type": "array" } }),
            ),
        ),
        (
            "DirectoryPatch",
            obj(
                &[],
                json!({ "upsert": r("Directory"), "remove": { "type": "object" } }),
            ),
        ),
        (
            "DirectoryDocument",
            obj(
                &["version", "directory"],
                json!({ "version": { "type": "integer" }, "directory": r("Directory") }),
            ),
        ),
        (
            "DirectorySummary",
            obj(
                &["version", "users", "departments", "roles", "permissions"],
                json!({ "version": { "type": "integer" },
            "users": { "type": "integer" }, "departments": { "type": "integer" }, "roles": { "type": "integer" }, "permissions": { "type": "integer" } }),
            ),
        ),
        (
            "CheckRequest",
            json!({ "oneOf": [obj(&["userId", "permission"], json!({ "userId": { "type": "string" }, "permission": { "type": "string" } })),
            obj(&["checks"], json!({ "checks": { "type": "array" } }))] }),
        ),
        ("Decision", decision),
        (
            "CheckAnswer",
            json!({ "oneOf": [r("Decision"), obj(&["decisions"], json!({ "decisions": { "type": "array", "items": r("Decision") } }))] }),
        ),
        (
            "Prices",
            obj(
                &[],
                json!({ "default": r("Credits"), "prices": { "type": "object" } }),
            ),
        ),
        (
            "Policy",
            obj(
                &[],
                json!({ "timezone": nullable("string"), "prices": r("Prices"), "redactKeys": { "type": "array", "items": { "type": "string" } },
            "retentionDays": { "type": "integer", "minimum": 1 } }),
            ),
        ),
        (
            "PolicyDocument",
            obj(
                &["version", "policy"],
                json!({ "version": { "type": "integer" }, "policy": r("Policy") }),
            ),
        ),
        (
            "ArchiveRequest",
            obj(
                &["olderThanDays"],
                json!({ "olderThanDays": { "type": "integer", "minimum": 7, "maximum": 36500 } }),
            ),
        ),
        (
            "ArchiveAnswer",
            obj(
                &["archived", "more"],
                json!({ "archived": { "type": "array", "items": { "type": "object" } }, "more": { "type": "boolean" } }),
            ),
        ),
        (
            "Balance",
            obj(&["balance"], json!({ "balance": r("Credits") })),
        ),
        (
            "Grant",
            obj(
                &["amount"],
                json!({ "amount": { "type": ["string", "number"] }, "reason": { "type": "string" } }),
            ),
        ),
        (
            "ActivityInput",
            json!({ "oneOf": [{ "type": "object" }, { "type": "array", "maxItems": 1000 }] }),
        ),
        ("Stored", stored),
        ("Activity", activity),
        (
            "IngestAnswer",
            json!({ "oneOf": [r("Stored"), obj(&["created", "duplicates", "results"], json!({ "created": { "type": "integer" },
            "duplicates": { "type": "integer" }, "results": { "type": "array", "items": r("Stored") } }))] }),
        ),
        (
            "QueuedAnswer",
            obj(
                &["accepted", "queued", "ids"],
                json!({ "accepted": { "type": "integer" }, "queued": { "type": "integer" },
                "ids": { "type": "array", "items": { "type": "string" } } }),
            ),
        ),
        (
            "Page",
            obj(
                &["activities", "nextCursor"],
                json!({ "activities": { "type": "array", "items": r("Activity") }, "nextCursor": nullable("string") }),
            ),
        ),
        (
            "Report",
            obj(
                &[
                    "totalActivities",
                    "totalCreditsUsed",
                    "operationBreakdown",
                    "temporalBreakdown",
                    "entityBreakdown",
                    "outcomeBreakdown",
                    "complianceSummary",
                    "userBreakdown",
                    "departmentBreakdown",
                    "groupBy",
                    "timezone",
                    "period",
                ],
                json!({ "totalActivities": { "type": "integer" }, "totalCreditsUsed": r("Credits"), "operationBreakdown": { "type": "array" },
                "temporalBreakdown": { "type": "array" }, "entityBreakdown": { "type": "array" }, "outcomeBreakdown": { "type": "object" },
                "complianceSummary": { "type": "object" }, "userBreakdown": { "type": "array" }, "departmentBreakdown": { "type": "array" },
                "mostActiveUser": { "type": ["object", "null"] }, "groupBy": { "enum": ["hour", "day", "week", "month"] }, "timezone": { "type": "string" },
                "period": obj(&["from", "to"], json!({ "from": r("Timestamp"), "to": r("Timestamp") })) }),
            ),
        ),
        (
            "Dashboard",
            obj(
                &["userId", "context", "report", "recent", "recentSummary"],
                json!({ "userId": { "type": "string" }, "context": { "type": "object" },
            "report": r("Report"), "recent": { "type": "array", "items": r("Activity") }, "recentSummary": { "type": "object" } }),
            ),
        ),
        (
            "OperationInput",
            obj(
                &["userId"],
                json!({ "userId": { "type": "string" }, "entityType": { "type": "string" }, "entityId": { "type": "string" },
            "sessionId": { "type": "string" }, "metadata": { "type": "object" }, "compliance": { "type": "object" }, "outcome": { "enum": ["success", "failed"] } }),
            ),
        ),
        (
            "OperationAnswer",
            obj(
                &["allowed", "activity", "creditsCharged"],
                json!({ "allowed": { "const": true }, "activity": r("Stored"),
            "creditsCharged": r("Credits"), "lead": { "type": "object" }, "leads": { "type": "array" }, "nextCursor": nullable("string") }),
            ),
        ),
        (
            "LeadFields",
            obj(
                &[],
                json!({ "title": { "type": "string" }, "source": { "type": "string" }, "status": { "enum": ["open", "qualified", "won", "lost"] },
            "value": { "type": ["string", "number"] }, "customFields": { "type": "object" } }),
            ),
        ),
        (
            "LeadCreate",
            obj(
                &["userId", "lead"],
                json!({ "userId": { "type": "string" }, "leadId": { "type": "string" }, "lead": r("LeadFields"),
            "sessionId": { "type": "string" }, "compliance": { "type": "object" } }),
            ),
        ),
        (
            "LeadUpdate",
            obj(
                &["userId", "changes"],
                json!({ "userId": { "type": "string" }, "changes": r("LeadFields"), "expectedVersion": { "type": "integer" },
            "sessionId": { "type": "string" }, "compliance": { "type": "object" } }),
            ),
        ),
        (
            "Verification",
            obj(
                &["ok", "verified", "anchorSeq", "headSeq"],
                json!({ "ok": { "type": "boolean" }, "verified": { "type": "integer" },
            "anchorSeq": { "type": "integer" }, "headSeq": { "type": "integer" }, "firstBadSeq": { "type": "integer" }, "reason": { "type": "string" } }),
            ),
        ),
        (
            "ViewerTokenRequest",
            obj(
                &[],
                json!({ "userId": { "type": "string" }, "departmentId": { "type": "string" }, "ttlSeconds": { "type": "integer", "minimum": 1, "maximum": 86_400 } }),
            ),
        ),
        (
            "ViewerToken",
            obj(
                &["token", "expiresAt", "scope", "dashboardPath"],
                json!({ "token": { "type": "string" }, "expiresAt": r("Timestamp"),
            "scope": {}, "dashboardPath": { "type": "string" } }),
            ),
        ),
        (
            "KeyList",
            obj(
                &["keys"],
                json!({ "keys": { "type": "array", "items": obj(&["id", "scopes", "createdAt"], json!({ "id": { "type": "string" },
            "scopes": { "type": "array" }, "label": nullable("string"), "createdAt": { "type": "integer" }, "expiresAt": nullable("integer"), "revokedAt": nullable("integer") })) } }),
            ),
        ),
        (
            "KeyRequest",
            obj(
                &["scopes"],
                json!({ "scopes": { "type": "array", "items": { "enum": ["admin", "ingest", "read"] } }, "label": { "type": "string" },
            "expiresInSeconds": { "type": "integer" } }),
            ),
        ),
        (
            "NewKey",
            obj(
                &["id", "key", "scopes"],
                json!({ "id": { "type": "string" }, "key": { "type": "string" }, "scopes": { "type": "array" },
            "label": nullable("string"), "expiresAt": { "type": ["string", "null"] } }),
            ),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The query parameters `method path` accepts (empty for an undocumented endpoint).
pub fn query_params(method: &str, path: &str) -> &'static [&'static str] {
    ENDPOINTS
        .iter()
        .find(|e| e.method == method && e.path == path)
        .map_or(&[], |e| e.query)
}

/// Statuses every authenticated endpoint may answer with an `Error` body.
const ERRORS: &[(u16, &str)] = &[
    (400, "Invalid input (field named in details)."),
    (401, "No valid API key or viewer token."),
    (402, "Insufficient credits (the activity is recorded)."),
    (403, "The credential may not do this."),
    (404, "No such resource in this tenant."),
    (
        409,
        "Conflicting id or idempotency key, or a stale version.",
    ),
    (413, "Too large."),
    (422, "Refers to something the directory does not have."),
    (429, "Too many requests; retry after `Retry-After`."),
    (
        501,
        "Not served by this runtime (crm-host or the edge); the message says why.",
    ),
    (503, "Temporarily unavailable; retry after `Retry-After`."),
];

/// The OpenAPI 3.1 document of [`ENDPOINTS`].
pub fn document(version: &str) -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(e.query.iter().map(|q| json!({ "name": q, "in": "query", "required": false, "schema": { "type": "string" } })))
            .chain(e.idempotent.then(|| json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 200 } })))
            .collect();
        let mut responses = Map::new();
        for (status, schema) in e.ok {
            let content = if schema.is_empty() {
                json!({ "description": "Success" })
            } else {
                json!({ "description": "Success", "content": { "application/json": { "schema": r(schema) } } })
            };
            responses.insert(status.to_string(), content);
        }
        if e.access != Access::Public || e.body.is_some() {
            for (status, description) in ERRORS {
                responses.insert(
                    status.to_string(),
                    json!({ "description": description, "content": { "application/json": { "schema": r("Error") } } }),
                );
            }
        }
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{} {}", e.method.to_lowercase(), e.path),
            "parameters": params,
            "responses": responses,
        });
        match e.access {
            Access::Public => op["security"] = json!([]),
            Access::Scope(s) => op["x-required-scope"] = json!(s),
        }
        if let Some(body) = e.body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": r(body) } } });
        }
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM activity engine",
            "version": version,
            "description": "Permission checks, credit metering, enriched tamper-evident activity logs and reports. Served identically by crm-host and crm-worker.",
        },
        "servers": [{ "url": "/" }],
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (`crm_…`) or a viewer token (`vt1.…`)." } },
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented_once_with_known_schemas() {
        let doc = document("test");
        let known = schemas();
        let mut seen = std::collections::BTreeSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            assert!(doc["paths"][e.path][e.method.to_lowercase()].is_object());
            for name in e
                .body
                .iter()
                .chain(e.ok.iter().map(|(_, s)| s).filter(|s| !s.is_empty()))
            {
                assert!(
                    known.contains_key(*name),
                    "{} {}: unknown schema {name}",
                    e.method,
                    e.path
                );
            }
        }
        let text = doc.to_string();
        for name in text
            .split("#/components/schemas/")
            .skip(1)
            .map(|t| t.split('"').next().unwrap_or_default())
        {
            assert!(known.contains_key(name), "dangling $ref {name}");
        }
    }
}
