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
    /// The operator's secret (`crate::provisioning::check_operator`), never an API key.
    Operator,
}

/// How large a request body an endpoint takes (its `Content-Length` is refused past
/// this before anything is read, and the read stops there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// No body is read (GET, DELETE, and POSTs without input).
    None,
    /// Small JSON documents: keys, grants, policies, one operation.
    Small,
    /// A batch of activities or a whole directory.
    Large,
}

/// Largest body of a [`BodyLimit::Large`] endpoint: a full batch of 1,000 activities at
/// the metadata cap.
pub const LARGE_BODY: usize = 16 << 20;
/// Largest body of a [`BodyLimit::Small`] endpoint: a price table or policy with room
/// to spare.
pub const SMALL_BODY: usize = 1 << 20;

impl BodyLimit {
    /// The most bytes a body may have (0: none is read).
    pub fn bytes(self) -> usize {
        match self {
            BodyLimit::None => 0,
            BodyLimit::Small => SMALL_BODY,
            BodyLimit::Large => LARGE_BODY,
        }
    }
}

/// One documented endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// The OpenAPI `operationId`: a name a generated client can use as a method.
    pub id: &'static str,
    /// The OpenAPI tag grouping it.
    pub tag: &'static str,
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

/// Bodies past [`SMALL_BODY`]: a batch of activities or a whole directory.
const LARGE_BODY_PATHS: &[&str] = &["/v1/activities", "/v1/directory"];

impl Endpoint {
    /// How large a body this endpoint reads.
    pub fn body_limit(&self) -> BodyLimit {
        match self.body {
            None => BodyLimit::None,
            Some(_) if LARGE_BODY_PATHS.contains(&self.path) => BodyLimit::Large,
            Some(_) => BodyLimit::Small,
        }
    }

    /// The credential this endpoint needs at least, decided before any body is read.
    pub fn scope(&self) -> Option<&'static str> {
        match self.access {
            Access::Public | Access::Operator => None,
            Access::Scope(s) => Some(s),
        }
    }

    /// The values of this endpoint's `{name}` path parameters in `path`, if it matches.
    fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut params = Vec::new();
        let mut template = self.path.split('/');
        let mut given = path.split('/');
        loop {
            match (template.next(), given.next()) {
                (None, None) => return Some(params),
                (Some(t), Some(g)) => {
                    if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                        if g.is_empty() {
                            return None;
                        }
                        params.push((name, g.to_owned()));
                    } else if t != g {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }
}

/// A request matched to its endpoint, with its path parameters (still percent-encoded).
#[derive(Debug, Clone)]
pub struct Route {
    pub endpoint: &'static Endpoint,
    pub params: Vec<(&'static str, String)>,
}

impl Route {
    /// A path parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Result<String, crate::ApiError> {
        let raw = self
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str());
        crate::request::path_segment(raw)
    }
}

/// The router of both runtimes: the endpoint `method path` names, or 404 (no such
/// path) / 405 (the path exists with other methods), answered alike everywhere.
pub fn route(method: &str, path: &str) -> Result<Route, crate::ApiError> {
    let mut path_known = false;
    for e in ENDPOINTS {
        if let Some(params) = e.matches(path) {
            if e.method.eq_ignore_ascii_case(method) {
                return Ok(Route {
                    endpoint: e,
                    params,
                });
            }
            path_known = true;
        }
    }
    Err(if path_known {
        crate::ApiError::method_not_allowed()
    } else {
        crate::ApiError::no_such_endpoint()
    })
}

/// The endpoint named by its operationId.
pub fn by_id(id: &str) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| e.id == id)
}

/// Query parameters every activity listing accepts.
pub const LIST_QUERY: &[&str] = &[
    "userId",
    "departmentId",
    "operation",
    "outcome",
    "entityType",
    "entityId",
    "sessionId",
    "ipAddress",
    "location",
    "metadata",
    "since",
    "from",
    "to",
    "limit",
    "cursor",
];
const REPORT_QUERY: &[&str] = &["since", "from", "to", "groupBy", "tz"];

const fn ep(
    id: &'static str,
    tag: &'static str,
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
) -> Endpoint {
    Endpoint {
        id,
        tag,
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
            "getHealth",
            "status",
            "GET",
            "/healthz",
            "Liveness: the process answers.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "Ready")],
        ..ep(
            "getReadiness",
            "status",
            "GET",
            "/readyz",
            "Readiness: the database answers and the writer runs; fan-out detail.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "")],
        ..ep(
            "getPrometheusMetrics",
            "status",
            "GET",
            "/metrics",
            "Prometheus metrics (process-wide, no tenant data).",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "Object")],
        ..ep(
            "getOpenApiDocument",
            "status",
            "GET",
            "/v1/openapi.json",
            "This document.",
            Access::Public,
        )
    },
    Endpoint {
        ok: &[(200, "Metrics")],
        ..ep(
            "getMetrics",
            "status",
            "GET",
            "/v1/metrics",
            "The caller's tenant only: its requests, the real error rate, recorded and refused activities, pending fan-out.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Session")],
        ..ep(
            "getSession",
            "access",
            "GET",
            "/v1/session",
            "The caller and the users and departments it may read.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "DirectoryDocument")],
        ..ep(
            "getDirectory",
            "directory",
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
            "replaceDirectory",
            "directory",
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
            "patchDirectory",
            "directory",
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
            "checkPermissions",
            "permissions",
            "POST",
            "/v1/permissions/check",
            "Permission decision(s) with their source: one, or `{checks: [...]}`.",
            INGEST,
        )
    },
    Endpoint {
        ok: &[(200, "PolicyDocument")],
        ..ep(
            "getPolicy",
            "policy",
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
            "replacePolicy",
            "policy",
            "PUT",
            "/v1/policy",
            "Replace the tenant policy (validated first).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Prices")],
        ..ep(
            "getPrices",
            "credits",
            "GET",
            "/v1/credits/prices",
            "The price table.",
            READ,
        )
    },
    Endpoint {
        body: Some("Prices"),
        ok: &[(200, "Prices")],
        ..ep(
            "replacePrices",
            "credits",
            "PUT",
            "/v1/credits/prices",
            "Replace the price table.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "Price")],
        ..ep(
            "getOperationPrice",
            "credits",
            "GET",
            "/v1/credits/prices/{operation}",
            "What the engine would charge for one operation, and the price entry that decides it (`null`: the default).",
            READ,
        )
    },
    Endpoint {
        body: Some("ProvisionRequest"),
        ok: &[(201, "Provisioned")],
        ..ep(
            "provisionTenant",
            "operator",
            "POST",
            "/v1/operator/tenants",
            "Create a tenant with its opening balance (a grant) and its first admin key, whose text is shown once. Needs the operator's secret, not an API key.",
            Access::Operator,
        )
    },
    Endpoint {
        ok: &[(200, "Balance")],
        ..ep(
            "getBalance",
            "credits",
            "GET",
            "/v1/credits/balance",
            "The credit balance now: the sum of the remainders of the grants in effect, listed in the order they are spent; grants still to take effect apart.",
            READ,
        )
    },
    Endpoint {
        query: &["status", "limit", "cursor"],
        ok: &[(200, "GrantPage")],
        ..ep(
            "listCreditGrants",
            "credits",
            "GET",
            "/v1/credits/grants",
            "The tenant's grants with their remainders and status (`pending`, `active`, `exhausted`, `expired`, `voided`), newest first, paged by `cursor`.",
            READ,
        )
    },
    Endpoint {
        query: &["limit", "cursor"],
        ok: &[(200, "AlertPage")],
        ..ep(
            "listCreditAlerts",
            "credits",
            "GET",
            "/v1/credits/alerts",
            "Every crossing of the tenant's credit alert rules (policy `creditAlerts`: `balanceBelow`, `grantConsumedPercent`), newest first: each written in the transaction whose charge, grant, expiry or adjustment crossed it, so none is missed or repeated.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "WalletAnswer")],
        idempotent: true,
        ..ep(
            "voidCreditGrant",
            "credits",
            "POST",
            "/v1/credits/grants/{id}/void",
            "Void an open grant: its remainder is forfeited (a `void` ledger entry).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("Adjustment"),
        ok: &[(200, "WalletAnswer")],
        idempotent: true,
        ..ep(
            "adjustCredits",
            "credits",
            "POST",
            "/v1/credits/adjustments",
            "Take credits off (a refund, a correction), spent from the grants in burn-down order; refused (402) past the balance.",
            ADMIN,
        )
    },
    Endpoint {
        query: &["since", "from", "to", "kind", "limit", "cursor"],
        ok: &[(200, "LedgerPage")],
        ..ep(
            "listCreditLedger",
            "credits",
            "GET",
            "/v1/credits/ledger",
            "Every balance change (grants taking effect, each batch's usage, expiries, voids, adjustments), newest first, with the balance after it; the whole ledger unless `since`/`from`/`to` narrow it, `kind` = grant, usage, expiry, void or adjustment, paged by `cursor`.",
            READ,
        )
    },
    Endpoint {
        body: Some("Grant"),
        ok: &[(200, "WalletAnswer")],
        idempotent: true,
        ..ep(
            "grantCredits",
            "credits",
            "POST",
            "/v1/credits/grants",
            "Grant credits: an amount, when it takes effect (`effectiveAt`, default now), when its remainder is forfeited (`expiresAt`, default never), a `priority` (0–100, lower spent first; then earliest expiry, then age). A `grant` ledger entry when it takes effect.",
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
            "ingestActivities",
            "activities",
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
            "listActivities",
            "activities",
            "GET",
            "/v1/activities",
            "The tenant's activities, newest first, with a cursor; filtered by user, department subtree, operation, outcome, entity, session, IP address (or an IPv4 network on an octet boundary), location and one metadata value (`metadata=key:value`).",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "Activity")],
        ..ep(
            "getActivity",
            "activities",
            "GET",
            "/v1/activities/{id}",
            "One activity record, exactly as stored and hashed (404 when it is not in the caller's view).",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, "Page")],
        ..ep(
            "listEntityActivities",
            "activities",
            "GET",
            "/v1/entities/{type}/{id}/activities",
            "An entity's history, newest first: who touched it, when and how (a limited viewer token sees its own user or subtree).",
            READ,
        )
    },
    Endpoint {
        query: LIST_QUERY,
        ok: &[(200, "Page")],
        ..ep(
            "listUserActivities",
            "activities",
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
            "listDepartmentActivities",
            "activities",
            "GET",
            "/v1/departments/{id}/activities",
            "A department subtree's activities.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Report")],
        ..ep(
            "getTenantReport",
            "reports",
            "GET",
            "/v1/reports",
            "Report over the whole tenant.",
            READ,
        )
    },
    Endpoint {
        query: REPORT_QUERY,
        ok: &[(200, "Report")],
        ..ep(
            "getUserReport",
            "reports",
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
            "getDepartmentReport",
            "reports",
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
            "getUserDashboard",
            "reports",
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
            "meterOperation",
            "operations",
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
            "createLead",
            "leads",
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
            "listLeads",
            "leads",
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
            "getLead",
            "leads",
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
            "updateLead",
            "leads",
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
            "entityType",
            "entityId",
            "sessionId",
            "ipAddress",
            "location",
            "metadata",
            "since",
            "from",
            "to",
            "afterSeq",
        ],
        ok: &[(200, "")],
        ..ep(
            "exportActivities",
            "audit",
            "GET",
            "/v1/export",
            "Records in chain order after `afterSeq`: NDJSON (as hashed) or CSV. crm-host streams them all; the edge answers pages (header `x-next-after-seq`).",
            READ,
        )
    },
    Endpoint {
        query: &["checkpointSeq", "checkpointHash", "limit", "resume"],
        ok: &[(200, "Verification")],
        ..ep(
            "verifyAuditChain",
            "audit",
            "GET",
            "/v1/audit/verify",
            "Recompute the hash chain; name the first bad sequence number. Recount the credit ledger and the balance against the chain; name the first entry that disagrees. At most `limit` records per call (default and cap 100,000): a longer chain answers `complete: false` and a `resume` token for the next call. With a kept checkpoint (`checkpointSeq` and `checkpointHash`, from `GET /v1/audit/checkpoint`), also check that the record at that seq still has that hash: a chain rewritten by someone who could write the whole database fails here.",
            READ,
        )
    },
    Endpoint {
        ok: &[(200, "Checkpoint")],
        ..ep(
            "getAuditCheckpoint",
            "audit",
            "GET",
            "/v1/audit/checkpoint",
            "The chain's head (seq, hash, time) signed with Ed25519 by a key the database does not hold. Keep these: `verify` with one detects a rewritten chain.",
            READ,
        )
    },
    Endpoint {
        query: &["limit"],
        ..ep(
            "listDeadLetters",
            "edge",
            "GET",
            "/v1/dead-letters",
            "The edge's dead letters (activities its consumer could not write), oldest first. crm-host writes before it answers and has none: always empty there (its fan-out spools instead).",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(202, "Object")],
        ..ep(
            "redriveDeadLetter",
            "edge",
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
            "archiveHistory",
            "edge",
            "POST",
            "/v1/archive",
            "Move the tenant's oldest records (received more than `olderThanDays` days ago, at least 7) out of the edge's database into R2, a few segments per call (`more` says whether to call again). Export and audit verify read them from there; reports keep their rollups. crm-host keeps its history in its database (retention removes it): 501.",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("ViewerTokenRequest"),
        ok: &[(200, "ViewerToken")],
        idempotent: true,
        ..ep(
            "createViewerToken",
            "access",
            "POST",
            "/v1/viewer-tokens",
            "Issue a short-lived read-only token for a dashboard (tenant, user or department). A retry under the same `Idempotency-Key` answers the same token.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, "")],
        ..ep(
            "rotateViewerTokenSecret",
            "access",
            "POST",
            "/v1/viewer-tokens/rotate",
            "Replace the tenant's viewer-token signing secret: every viewer token issued before is refused from the next request on.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, "")],
        ..ep(
            "revokeViewerToken",
            "access",
            "DELETE",
            "/v1/viewer-tokens/{id}",
            "Revoke one viewer token by its id (from its issue answer): refused from the next request on; the others keep working. Revoking an unknown or already revoked id changes nothing.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(200, "KeyList")],
        ..ep(
            "listKeys",
            "access",
            "GET",
            "/v1/keys",
            "The tenant's API keys (never their secrets).",
            ADMIN,
        )
    },
    Endpoint {
        body: Some("KeyRequest"),
        ok: &[(201, "NewKey"), (200, "NewKey")],
        idempotent: true,
        ..ep(
            "createKey",
            "access",
            "POST",
            "/v1/keys",
            "Create a key; its text is shown once. A retry under the same `Idempotency-Key` answers 200 with the key it made and no text.",
            ADMIN,
        )
    },
    Endpoint {
        ok: &[(204, "")],
        ..ep(
            "revokeKey",
            "access",
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
        (
            "Named",
            obj(
                &["id", "name"],
                json!({ "id": { "type": "string" }, "name": { "type": "string" } }),
            ),
        ),
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
            "tenantWide": { "type": "boolean" }, "users": { "type": "array", "items": r("Named") }, "departments": { "type": "array", "items": r("Named") } }),
            ),
        ),
        (
            "Directory",
            obj(
                &[],
                json!({ "organizations": { "type": "array", "items": { "type": "object" } }, "departments": { "type": "array", "items": { "type": "object" } }, "users": { "type": "array", "items": { "type": "object" } }, "roles": { "type": "array", "items": { "type": "object" } } }),
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
            obj(&["checks"], json!({ "checks": { "type": "array", "maxItems": 1000, "items": obj(&["userId", "permission"], json!({ "userId": { "type": "string" }, "permission": { "type": "string" } })) } }))] }),
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
            "retentionDays": { "type": "integer", "minimum": 1 },
            "creditAlerts": { "type": "array", "maxItems": 20, "items": r("AlertRule") } }),
            ),
        ),
        (
            "AlertRule",
            obj(
                &["id"],
                json!({ "id": { "type": "string" }, "balanceBelow": r("Credits"),
            "grantConsumedPercent": { "type": "integer", "minimum": 1, "maximum": 100 } }),
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
                &["archived", "more", "heldBackBySink"],
                json!({ "archived": { "type": "array", "items": { "type": "object" } }, "more": { "type": "boolean" },
            "heldBackBySink": { "type": "boolean", "description": "Older records wait because a configured sink (the upstream) has not delivered them yet." } }),
            ),
        ),
        (
            "Price",
            obj(
                &["operation", "price", "matched"],
                json!({ "operation": { "type": "string" }, "price": r("Credits"), "matched": nullable("string") }),
            ),
        ),
        (
            "ProvisionRequest",
            obj(
                &["id", "name"],
                json!({ "id": { "type": "string" }, "name": { "type": "string" }, "timezone": { "type": "string" },
            "balance": { "type": ["string", "number"] }, "shard": { "type": "integer", "minimum": 0 } }),
            ),
        ),
        (
            "Provisioned",
            obj(
                &["tenantId", "shard", "balance", "adminKey"],
                json!({ "tenantId": { "type": "string" }, "shard": { "type": "integer" }, "balance": r("Credits"), "adminKey": r("NewKey") }),
            ),
        ),
        (
            "BalancePart",
            obj(
                &["grantId", "remaining", "priority"],
                json!({ "grantId": { "type": "string" }, "remaining": r("Credits"), "expiresAt": r("Timestamp"),
            "priority": { "type": "integer", "minimum": 0, "maximum": 100 } }),
            ),
        ),
        (
            "Balance",
            obj(
                &["balance", "grants", "pending"],
                json!({ "balance": r("Credits"), "grants": { "type": "array", "items": r("BalancePart") },
            "pending": { "type": "array", "items": r("BalancePart") } }),
            ),
        ),
        (
            "CreditGrant",
            obj(
                &[
                    "id",
                    "amount",
                    "remaining",
                    "effectiveAt",
                    "priority",
                    "status",
                    "reason",
                    "createdAt",
                ],
                json!({ "id": { "type": "string" }, "amount": r("Credits"), "remaining": r("Credits"),
            "effectiveAt": r("Timestamp"), "expiresAt": r("Timestamp"), "priority": { "type": "integer", "minimum": 0, "maximum": 100 },
            "status": { "type": "string", "enum": ["pending", "active", "exhausted", "expired", "voided"] },
            "reason": { "type": "string" }, "externalId": { "type": "string" }, "createdAt": r("Timestamp"), "closedAt": r("Timestamp") }),
            ),
        ),
        (
            "AlertEvent",
            obj(
                &["entry", "at", "ruleId", "state", "balance"],
                json!({ "entry": { "type": "integer", "minimum": 1 }, "at": r("Timestamp"), "ruleId": { "type": "string" },
            "state": { "type": "string", "enum": ["fired", "resolved"] }, "grantId": { "type": "string" }, "balance": r("Credits") }),
            ),
        ),
        (
            "AlertPage",
            obj(
                &["alerts"],
                json!({ "alerts": { "type": "array", "items": r("AlertEvent") }, "nextCursor": { "type": "string" } }),
            ),
        ),
        (
            "GrantPage",
            obj(
                &["grants"],
                json!({ "grants": { "type": "array", "items": r("CreditGrant") }, "nextCursor": { "type": "string" } }),
            ),
        ),
        (
            "WalletAnswer",
            obj(
                &["balance"],
                json!({ "balance": r("Credits"), "grant": r("CreditGrant") }),
            ),
        ),
        (
            "Adjustment",
            obj(
                &["amount", "reason"],
                json!({ "amount": { "type": ["string", "number"], "description": "What to take off (positive)." }, "reason": { "type": "string" } }),
            ),
        ),
        (
            "LedgerEntry",
            obj(
                &["entry", "at", "delta", "balance", "kind", "detail"],
                json!({ "entry": { "type": "integer", "minimum": 1 }, "at": r("Timestamp"),
            "delta": r("Credits"), "balance": r("Credits"),
            "kind": { "type": "string", "enum": ["grant", "usage", "expiry", "void", "adjustment"] }, "detail": { "type": "string" } }),
            ),
        ),
        (
            "LedgerPage",
            obj(
                &["entries"],
                json!({ "entries": { "type": "array", "items": r("LedgerEntry") }, "nextCursor": { "type": "string" } }),
            ),
        ),
        (
            "Grant",
            obj(
                &["amount"],
                json!({ "amount": { "type": ["string", "number"] }, "reason": { "type": "string" },
            "effectiveAt": r("Timestamp"), "expiresAt": r("Timestamp"),
            "priority": { "type": "integer", "minimum": 0, "maximum": 100 }, "externalId": { "type": "string" } }),
            ),
        ),
        (
            "ActivityItem",
            json!({ "type": "object", "required": ["userId", "operation"], "additionalProperties": false, "properties": {
                "id": { "type": "string" }, "userId": { "type": "string" }, "operation": { "type": "string" },
                "outcome": { "enum": ["success", "failed"] }, "entityType": { "type": "string" }, "entityId": { "type": "string" },
                "sessionId": { "type": "string" }, "occurredAt": r("Timestamp"), "metadata": { "type": "object", "additionalProperties": true },
                "compliance": { "type": "object", "additionalProperties": false, "properties": {
                    "userAgent": { "type": "string" }, "location": { "type": "string" }, "authenticationMethod": { "type": "string" } } } } }),
        ),
        (
            "ActivityInput",
            json!({ "oneOf": [r("ActivityItem"), { "type": "array", "minItems": 1, "maxItems": 1000, "items": r("ActivityItem") }] }),
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
                json!({ "totalActivities": { "type": "integer" }, "totalCreditsUsed": r("Credits"), "operationBreakdown": { "type": "array", "items": { "type": "object" } },
                "temporalBreakdown": { "type": "array", "items": { "type": "object" } }, "entityBreakdown": { "type": "array", "items": { "type": "object" } }, "outcomeBreakdown": { "type": "object" },
                "complianceSummary": { "type": "object" }, "userBreakdown": { "type": "array", "items": { "type": "object" } }, "departmentBreakdown": { "type": "array", "items": { "type": "object" } },
                "mostActiveUser": { "type": ["object", "null"] }, "groupBy": { "enum": ["hour", "day", "week", "month"] }, "timezone": { "type": "string" },
                "period": obj(&["from", "to"], json!({ "from": r("Timestamp"), "to": r("Timestamp") })) }),
            ),
        ),
        (
            "Dashboard",
            obj(
                &[
                    "userId",
                    "context",
                    "report",
                    "recent",
                    "recentSummary",
                    "lastUpdated",
                ],
                json!({ "userId": { "type": "string" }, "context": { "type": "object" },
            "report": r("Report"), "recent": { "type": "array", "items": r("Activity") }, "recentSummary": { "type": "object" },
            "lastUpdated": r("Timestamp") }),
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
            "creditsCharged": r("Credits"), "lead": { "type": "object" }, "leads": { "type": "array", "items": { "type": "object" } }, "nextCursor": nullable("string") }),
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
                &[
                    "ok",
                    "verified",
                    "anchorSeq",
                    "headSeq",
                    "ledgerEntries",
                    "rollupPeriods",
                    "complete",
                ],
                json!({ "ok": { "type": "boolean" }, "verified": { "type": "integer" },
            "anchorSeq": { "type": "integer" }, "headSeq": { "type": "integer" }, "firstBadSeq": { "type": "integer" }, "reason": { "type": "string" },
            "ledgerEntries": { "type": "integer", "description": "Credit ledger entries recounted against the chain." },
            "firstBadEntry": { "type": "integer", "description": "The first credit ledger entry that disagrees with the chain or the balance." },
            "rollupPeriods": { "type": "integer", "description": "Rollup periods recounted against the stored records (in the call that completes the verification)." },
            "firstBadRollup": { "type": "object", "required": ["tier"], "properties": { "tier": { "type": "string", "enum": ["d", "h", "th", "tq"] }, "periodStart": r("Timestamp") }, "description": "The first rollup that disagrees with the records: its tier and period, or the tier's total when no period is to blame." },
            "complete": { "type": "boolean", "description": "False when the call stopped at `limit` records with no break so far: continue with `resume`." },
            "resume": { "type": "string", "description": "Pass as `resume` to continue this verification (signed; this tenant only)." },
            "checkpoint": { "type": "string", "enum": ["matched", "beforeAnchor"], "description": "A kept checkpoint: its record still has its hash, or it lies before the retention anchor (nothing left to compare)." } }),
            ),
        ),
        (
            "Checkpoint",
            obj(
                &["tenantId", "seq", "hash", "at", "publicKey", "signature"],
                json!({ "tenantId": { "type": "string" }, "seq": { "type": "integer", "minimum": 0 },
            "hash": { "type": "string" }, "at": r("Timestamp"),
            "publicKey": { "type": "string", "description": "Ed25519 public key, hex: pin it." },
            "signature": { "type": "string", "description": "Ed25519, hex, over `crm-checkpoint-v1\\n{tenantId}\\n{seq}\\n{hash}\\n{at as Unix ms}`." } }),
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
                &["id", "token", "expiresAt", "scope", "dashboardPath"],
                json!({ "id": { "type": "string", "description": "Revoke this token alone with `DELETE /v1/viewer-tokens/{id}`." }, "token": { "type": "string" }, "expiresAt": r("Timestamp"),
            "scope": {}, "dashboardPath": { "type": "string" } }),
            ),
        ),
        (
            "KeyList",
            obj(
                &["keys"],
                json!({ "keys": { "type": "array", "items": obj(&["id", "scopes", "createdAt"], json!({ "id": { "type": "string" },
            "scopes": { "type": "array", "items": { "type": "string" } }, "label": nullable("string"), "createdAt": { "type": "integer" }, "expiresAt": nullable("integer"), "revokedAt": nullable("integer") })) } }),
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
                &["id", "scopes"],
                json!({ "id": { "type": "string" }, "key": { "type": "string", "description": "The key's text: only in the answer that made it." }, "scopes": { "type": "array", "items": { "type": "string" } },
            "label": nullable("string"), "expiresAt": { "type": ["string", "null"] } }),
            ),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
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

/// An object schema that names no properties is free-form: `additionalProperties: true`
/// says so, so generated clients type it as a map rather than an empty object.
fn free_form_objects_say_so(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("type") == Some(&json!("object"))
                && !o.contains_key("properties")
                && !o.contains_key("additionalProperties")
            {
                o.insert("additionalProperties".to_owned(), json!(true));
            }
            o.values_mut().for_each(free_form_objects_say_so);
        }
        Value::Array(a) => a.iter_mut().for_each(free_form_objects_say_so),
        _ => {}
    }
}

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
            "operationId": e.id,
            "tags": [e.tag],
            "parameters": params,
            "responses": responses,
        });
        match e.access {
            Access::Public => op["security"] = json!([]),
            Access::Scope(s) => op["x-required-scope"] = json!(s),
            Access::Operator => op["security"] = json!([{ "operator": [] }]),
        }
        if let Some(body) = e.body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": r(body) } } });
        }
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.to_lowercase()] = op;
    }
    let mut schemas = Value::Object(schemas());
    free_form_objects_say_so(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM activity engine",
            "version": version,
            "description": "Permission checks, credit metering, enriched tamper-evident activity logs and reports. Served identically by crm-host and crm-worker.",
        },
        "servers": [{ "url": "/" }],
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (`crm_…`) or a viewer token (`vt1.…`)." },
                "operator": { "type": "http", "scheme": "bearer", "description": "The operator's secret (Worker secret `OPERATOR_SECRET`, crm-host `--operator-secret`): provisioning only." } },
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_route_to_their_endpoint_or_404_or_405() {
        let r = route("GET", "/v1/users/u%201/activities").expect("routed");
        assert_eq!(r.endpoint.id, "listUserActivities");
        assert_eq!(r.param("id").expect("decoded"), "u 1");
        assert_eq!(
            route("POST", "/v1/activities").expect("routed").endpoint.id,
            "ingestActivities"
        );
        assert_eq!(
            route("DELETE", "/v1/activities")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(405)
        );
        assert_eq!(
            route("GET", "/v1/nowhere")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("GET", "/v1/users//activities")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
        assert_eq!(
            route("GET", "/v1/reports/")
                .map(|_| ())
                .map_err(|e| e.status()),
            Err(404)
        );
    }

    #[test]
    fn every_operation_has_a_unique_method_name_and_a_tag() {
        let mut ids = std::collections::BTreeSet::new();
        for e in ENDPOINTS {
            assert!(ids.insert(e.id), "operationId {} twice", e.id);
            assert!(
                e.id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && e.id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{} is no method name",
                e.id
            );
            assert!(!e.tag.is_empty());
        }
    }

    #[test]
    fn every_array_in_the_document_says_what_it_holds() {
        fn walk(v: &Value, at: &str) {
            match v {
                Value::Object(o) => {
                    if o.get("type") == Some(&json!("array")) {
                        assert!(o.contains_key("items"), "array without items at {at}");
                    }
                    for (k, v) in o {
                        walk(v, &format!("{at}/{k}"));
                    }
                }
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, &format!("{at}/{i}"))),
                _ => {}
            }
        }
        walk(&document("test"), "");
    }

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
